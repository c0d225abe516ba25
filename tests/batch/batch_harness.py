"""Shared pieces of the `inferd batch` tests: running the binary, the
reference predictions of `inferd predict` on the same rows, small test
models written with onnx.helper, and a real PostgreSQL server (initdb +
pg_ctl in a temporary directory on a free 127.0.0.1 port, as an
unprivileged user: `nobody` when the tests run as root), started by the
tests and stopped after by its PID.

Environment:
  INFERD            the binary under test (default: build/inferd)
  INFERD_BOOK_DIR   the book's model files (default: ../shared/book or ../../shared/book)
  INFERD_TEST_SLOW  a factor for every time limit (sanitizer builds are slower)
  INFERD_TEST_REQUIRE  comma-separated tools that must exist (postgresql):
                    a test needing one fails instead of skipping
"""
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

SOURCE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
INFERD = os.path.abspath(os.environ.get("INFERD", os.path.join(SOURCE, "build", "inferd")))
# the book's files sit beside the main checkout (../shared/book); worktrees
# one level deeper find them one more level up
BOOK = os.environ.get("INFERD_BOOK_DIR") or next(
    (d for d in (os.path.join(os.path.dirname(SOURCE), "shared", "book"),
                 os.path.join(os.path.dirname(os.path.dirname(SOURCE)), "shared", "book"))
     if os.path.isdir(d)), os.path.join(os.path.dirname(SOURCE), "shared", "book"))
BOOK_MODEL = os.path.join(BOOK, "iris_svc.onnx")
BOOK_LABELS = os.path.join(BOOK, "label.json")
DEMO_MODEL = os.path.join(SOURCE, "models", "iris_svc.onnx")
DEMO_LABELS = os.path.join(SOURCE, "models", "iris_labels.json")
SLOW = float(os.environ.get("INFERD_TEST_SLOW", "1"))
REQUIRED = set(filter(None, os.environ.get("INFERD_TEST_REQUIRE", "").split(",")))
PG_BIN = "/usr/lib/postgresql/15/bin"
SANITIZER_REPORT = re.compile(r"ERROR: (Address|Leak)Sanitizer|runtime error:|SUMMARY: \w+Sanitizer")


def book_rows():
    with open(os.path.join(BOOK, "data.json")) as f:
        return json.load(f)


def book_labels():
    with open(BOOK_LABELS) as f:
        return json.load(f)


def run_batch(args, timeout=120, env=None):
    """`inferd batch ARGS`; returns the CompletedProcess (text)."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    r = subprocess.run([INFERD, "batch", *args], capture_output=True, text=True,
                       timeout=timeout * SLOW, env=full_env, stdin=subprocess.DEVNULL)
    assert not SANITIZER_REPORT.search(r.stderr), r.stderr
    return r


def predict(model, rows):
    """`inferd predict` on all rows at once: {output: [per-row value]}."""
    r = subprocess.run([INFERD, "predict", model, "--data", json.dumps(rows)], capture_output=True,
                       text=True, timeout=60 * SLOW)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def skip_or_fail(test, tool, message):
    if tool in REQUIRED:
        test.fail(f"{message} (required: INFERD_TEST_REQUIRE={','.join(sorted(REQUIRED))})")
    test.skipTest(message)


def fixed_batch_model(path, batch=1):
    """y = x * 2 + 1 on float32 [batch, 4]: a model whose batch dim is fixed."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "two"], ["m"]), helper.make_node("Add", ["m", "one"], ["y"])],
        "fixed_batch",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 4])],
        [numpy_helper.from_array(np.array(2, dtype=np.float32), "two"),
         numpy_helper.from_array(np.array(1, dtype=np.float32), "one")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)


class Postgres:
    """A throw-away PostgreSQL cluster: initdb + pg_ctl in a temporary
    directory on a free port, listening on 127.0.0.1 only, trust auth for
    the superuser `postgres`. Runs as `nobody` when the tests run as root."""

    def __init__(self):
        self.port = free_port()
        self.root = tempfile.mkdtemp(prefix="inferd-pg-")
        os.chmod(self.root, 0o755)
        self.data = os.path.join(self.root, "data")
        self.user = None
        if os.geteuid() == 0:
            self.user = "nobody"
            os.chown(self.root, pwd.getpwnam("nobody").pw_uid, pwd.getpwnam("nobody").pw_gid)
        self._as_user([os.path.join(PG_BIN, "initdb"), "-D", self.data, "-U", "postgres",
                       "--auth=trust", "--no-sync", "-E", "UTF8"], timeout=120)
        log = os.path.join(self.root, "server.log")
        self._as_user([os.path.join(PG_BIN, "pg_ctl"), "-D", self.data, "-l", log, "-w", "-t",
                       str(int(60 * SLOW)), "-o",
                       f"-p {self.port} -h 127.0.0.1 -k {self.root} -c fsync=off", "start"],
                      timeout=90)
        with open(os.path.join(self.data, "postmaster.pid")) as f:
            self.pid = int(f.readline())
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _as_user(self, argv, timeout):
        if self.user:
            argv = ["runuser", "-u", self.user, "--", *argv]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout * SLOW,
                           cwd=self.root, stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)}: {r.stdout}{r.stderr}")
        return r

    def sql(self, statement):
        """Run SQL with psql (given on stdin); rows as lists of strings."""
        r = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1",
                            self.url], input=statement, capture_output=True, text=True,
                           timeout=120 * SLOW)
        if r.returncode != 0:
            raise RuntimeError(f"psql: {statement[:200]}: {r.stderr}")
        return [line.split("\t") for line in r.stdout.splitlines() if line]

    def stop(self):
        # SIGINT is PostgreSQL's "fast shutdown"; sent to the postmaster by PID
        try:
            os.kill(self.pid, signal.SIGINT)
        except ProcessLookupError:
            pass
        deadline = time.time() + 30 * SLOW
        while time.time() < deadline:
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            os.kill(self.pid, signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)


def postgres_available():
    return os.path.exists(os.path.join(PG_BIN, "initdb")) and shutil.which("psql") is not None
