"""Shared pieces of the release-pattern tests (test_bundle.py, test_image.py,
test_inventory.py): a temporary store holding the iris model, processes
started on free 127.0.0.1 ports and always stopped, bounded waits, and
small HTTP helpers on urllib.

Environment:
  INFERD               the binary under test (default: build/inferd)
  INFERD_TEST_SLOW     a factor for every time limit (sanitizer builds)
  INFERD_TEST_REQUIRE  comma-separated tools (umoci, skopeo, yamllint) whose
                       absence fails a test instead of skipping it
"""
import hashlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
INFERD = os.path.abspath(os.environ.get("INFERD", os.path.join(ROOT, "build", "inferd")))
IRIS = os.path.join(ROOT, "models", "iris_svc.onnx")
IRIS_LABELS = os.path.join(ROOT, "models", "iris_labels.json")
SLOW = float(os.environ.get("INFERD_TEST_SLOW", "1"))
REQUIRED = set(filter(None, os.environ.get("INFERD_TEST_REQUIRE", "").split(",")))
SETOSA = [5.1, 3.5, 1.4, 0.2]
VIRGINICA = [6.3, 3.3, 6.0, 2.5]


def need_tool(test, tool):
    """The tool's path; skip (or fail when required) without it."""
    path = shutil.which(tool) or (os.path.exists(f"/usr/sbin/{tool}") and f"/usr/sbin/{tool}")
    if not path:
        if tool in REQUIRED:
            test.fail(f"{tool} is required (INFERD_TEST_REQUIRE) but not installed")
        test.skipTest(f"{tool} is not installed")
    return path


SWAGGER_UI_DIST = os.path.join(ROOT, "node_modules", "swagger-ui-dist")


def check_docs_in_binary(test, server):
    """/docs works wherever the binary goes (issue 12): when the build had
    swagger-ui-dist in node_modules (CMake then requires "swagger-ui"), the
    page and its files are served from the binary itself, byte for byte.
    Nothing to check on a build without it. The dashboard (/ui) always is:
    its files are part of the source tree."""
    ui_dir = os.path.join(ROOT, "src", "serve", "ui")
    for path, name in (("/ui", "index.html"), ("/ui/app.js", "app.js"), ("/ui/app.css", "app.css")):
        with urllib.request.urlopen(server.url(path), timeout=30 * SLOW) as r:
            test.assertIn("default-src 'none'", r.headers["Content-Security-Policy"])
            served = r.read()
        with open(os.path.join(ui_dir, name), "rb") as f:
            test.assertEqual(served, f.read(), path)
    if "swagger-ui" not in REQUIRED:
        return
    status, page = http("GET", server.url("/docs"))
    test.assertEqual(status, 200, page)
    test.assertIn("/docs/swagger-ui-bundle.js", page)
    for name in ("swagger-ui.css", "swagger-ui-bundle.js"):
        with urllib.request.urlopen(server.url("/docs/" + name), timeout=30 * SLOW) as r:
            served = r.read()
        with open(os.path.join(SWAGGER_UI_DIST, name), "rb") as f:
            test.assertEqual(served, f.read(), name)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(args, env=None, cwd=None, timeout=60):
    return subprocess.run(args, env=env, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=timeout * SLOW)


class Store:
    """A temporary store ($INFERD_HOME) holding iris:1 with its labels."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="inferd-release-")
        self.root = os.path.join(self.dir, "store")
        self.env = dict(os.environ, INFERD_HOME=self.root)
        r = run([INFERD, "models", "import", IRIS, "--name", "iris", "--labels", IRIS_LABELS,
                 "--task", "classification"], env=self.env)
        if r.returncode != 0:
            raise RuntimeError(f"models import failed: {r.stderr}")
        self.model_dir = os.path.join(self.root, "iris", "1")

    def inferd(self, *args, cwd=None, timeout=120):
        return run([INFERD, *args], env=self.env, cwd=cwd, timeout=timeout)

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def http(method, url, body=None, timeout=10):
    """(status, parsed JSON or text) of one request."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout * SLOW) as r:
            status, text = r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode()
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


class Process:
    """A server process whose output goes to a file; stopped by stop()."""

    def __init__(self, argv, port, env=None, cwd=None):
        self.port = port
        self.log = tempfile.NamedTemporaryFile(prefix="inferd-release-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=subprocess.STDOUT)

    def url(self, path=""):
        return f"http://127.0.0.1:{self.port}{path}"

    def output(self):
        self.log.flush()
        with open(self.log.name, errors="replace") as f:
            return f.read()

    def wait_ready(self, timeout=30):
        deadline = time.monotonic() + timeout * SLOW
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"exited with {self.proc.returncode}: {self.output()}")
            try:
                status, _ = http("GET", self.url("/v2/health/ready"), timeout=2)
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"not ready after {timeout}s: {self.output()}")

    def wait_exit(self, timeout=30):
        try:
            return self.proc.wait(timeout=timeout * SLOW)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running after {timeout}s: {self.output()}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15 * SLOW)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        os.unlink(self.log.name)
