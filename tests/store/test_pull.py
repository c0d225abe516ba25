#!/usr/bin/python3
"""`inferd pull` and `inferd serve --model-uri` (the model-load pattern)
against real servers on 127.0.0.1: Python's http.server serving a model (with
Range support), one that cuts the connection midway, one that ignores Range,
one that answers 503, one that serves the wrong bytes, file:// URIs, the
cache (a second pull with the same --sha256 sends no request), npm's s3rver
as an S3-compatible store, and a recording server that checks the SigV4
signature itself (s3rver 3.7 parses SigV4 headers but does not verify the
signature: it only checks the access key id and x-amz-content-sha256).

Environment: INFERD (the binary), INFERD_TEST_REQUIRE (comma list; when it
names s3rver a missing s3rver fails instead of skipping).
"""
import hashlib
import hmac
import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
INFERD = os.environ.get("INFERD", os.path.join(ROOT, "build", "inferd"))
MODEL_PATH = os.path.join(ROOT, "models", "iris_svc.onnx")
S3RVER = os.path.join(ROOT, "node_modules", ".bin", "s3rver")
REQUIRED = set(filter(None, os.environ.get("INFERD_TEST_REQUIRE", "").split(",")))
SLOW = float(os.environ.get("INFERD_TEST_SLOW", "1"))

with open(MODEL_PATH, "rb") as f:
    MODEL = f.read()
MODEL_SHA = hashlib.sha256(MODEL).hexdigest()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ModelServer:
    """A threaded http.server on 127.0.0.1 serving `body` at any path.

    behaviour: "ok" (Range honoured), "cut" (the first answer stops halfway
    and closes the connection), "cut-norange" (same, and Range is ignored),
    "503" (always Service Unavailable), "sigv4" (records and verifies an AWS
    SigV4 signature with `secret` before answering).
    """

    def __init__(self, body, behaviour="ok", secret=None):
        self.body, self.behaviour, self.secret = body, behaviour, secret
        self.requests = []  # (path, headers dict)
        self.signature_errors = []
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                with outer.lock:
                    outer.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
                    first = len(outer.requests) == 1
                if "missing" in self.path:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if outer.behaviour == "503":
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if outer.behaviour == "sigv4":
                    problem = outer.check_sigv4(self)
                    if problem:
                        outer.signature_errors.append(problem)
                        payload = ("<Error><Code>SignatureDoesNotMatch</Code><Message>%s</Message></Error>"
                                   % problem).encode()
                        self.send_response(403)
                        self.send_header("Content-Length", str(len(payload)))
                        self.end_headers()
                        self.wfile.write(payload)
                        return
                body = outer.body
                start = 0
                ranged = self.headers.get("Range")
                m = re.fullmatch(r"bytes=(\d+)-", ranged or "")
                if m and outer.behaviour != "cut-norange" and int(m.group(1)) < len(body):
                    start = int(m.group(1))
                    self.send_response(206)
                    self.send_header("Content-Range", "bytes %d-%d/%d" % (start, len(body) - 1, len(body)))
                else:
                    self.send_response(200)
                if outer.behaviour != "cut-norange":
                    self.send_header("Accept-Ranges", "bytes")
                self.send_header("ETag", '"model-v1"')
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                if first and outer.behaviour in ("cut", "cut-norange"):
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(body[start:])

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path="/models/iris_svc.onnx"):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def check_sigv4(self, handler):
        """Recompute the AWS Signature V4 of a GET the way S3 does."""
        auth = handler.headers.get("Authorization", "")
        m = re.fullmatch(r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/s3/aws4_request, "
                         r"SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})", auth)
        if not m:
            return "Authorization header has the wrong shape: %r" % auth
        key_id, day, region, signed, signature = m.groups()
        amz_date = handler.headers.get("x-amz-date", "")
        if not amz_date.startswith(day):
            return "x-amz-date %r does not match the credential date %s" % (amz_date, day)
        names = signed.split(";")
        for required in ("host", "x-amz-date", "x-amz-content-sha256"):
            if required not in names:
                return "%s is not signed" % required
        if "x-amz-security-token" in handler.headers and "x-amz-security-token" not in names:
            return "x-amz-security-token is not signed"
        path, _, query = handler.path.partition("?")
        canonical_headers = "".join("%s:%s\n" % (n, " ".join(handler.headers.get(n, "").split())) for n in names)
        canonical = "\n".join(["GET", path, query, canonical_headers, signed,
                               handler.headers.get("x-amz-content-sha256", "")])
        scope = "%s/%s/s3/aws4_request" % (day, region)
        to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                             hashlib.sha256(canonical.encode()).hexdigest()])
        k = ("AWS4" + self.secret).encode()
        for part in (day, region, "s3", "aws4_request"):
            k = hmac.new(k, part.encode(), hashlib.sha256).digest()
        expected = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
        if expected != signature:
            return "signature does not verify (key id %s)" % key_id
        return None


class PullTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="inferd-pull-")
        self.store = os.path.join(self.tmp, "store")
        self.servers = []

    def tearDown(self):
        for s in self.servers:
            s.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def serve(self, body=MODEL, behaviour="ok", secret=None):
        s = ModelServer(body, behaviour, secret)
        self.servers.append(s)
        return s

    def inferd(self, *args, env=None, timeout=60):
        full_env = dict(os.environ)
        for k in list(full_env):
            if k.startswith("AWS_"):
                del full_env[k]
        full_env.update(env or {})
        return subprocess.run([INFERD, *args], capture_output=True, text=True, timeout=timeout * SLOW,
                              env=full_env)

    def pull(self, uri, *extra, env=None):
        return self.inferd("pull", uri, "--store", self.store, *extra, env=env)

    def stored(self, name, version="1"):
        folder = os.path.join(self.store, name, version)
        with open(os.path.join(folder, "model.onnx"), "rb") as f:
            data = f.read()
        with open(os.path.join(folder, "model.json")) as f:
            manifest = json.load(f)
        return data, manifest

    def assert_store_has_no_leftovers(self):
        tmp = os.path.join(self.store, ".tmp")
        self.assertEqual(os.listdir(tmp) if os.path.isdir(tmp) else [], [])

    # ---- http ----

    def test_pull_over_http_stores_model_and_manifest(self):
        server = self.serve()
        r = self.pull(server.url(), "--name", "iris")
        self.assertEqual(r.returncode, 0, r.stderr)
        data, manifest = self.stored("iris")
        self.assertEqual(data, MODEL)
        self.assertEqual(manifest["sha256"], MODEL_SHA)
        self.assertEqual(manifest["source"], server.url())
        self.assertIn("stored iris:1", r.stdout)
        self.assertEqual(r.stderr, "", "no progress bar when stderr is not a terminal")
        self.assert_store_has_no_leftovers()

    def test_pull_resumes_with_range_after_cut_connection(self):
        server = self.serve(behaviour="cut")
        r = self.pull(server.url(), "--name", "iris", "--sha256", MODEL_SHA)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.stored("iris")[0], MODEL)
        self.assertEqual(len(server.requests), 2)
        self.assertNotIn("range", server.requests[0][1])
        self.assertEqual(server.requests[1][1].get("range"), "bytes=%d-" % (len(MODEL) // 2))
        self.assertEqual(server.requests[1][1].get("if-range"), '"model-v1"')
        self.assertIn("resuming at byte %d" % (len(MODEL) // 2), r.stderr)

    def test_pull_starts_over_when_server_ignores_range(self):
        server = self.serve(behaviour="cut-norange")
        r = self.pull(server.url(), "--name", "iris", "--sha256", MODEL_SHA)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.stored("iris")[0], MODEL)
        self.assertEqual(len(server.requests), 2)
        self.assertIn("started over", r.stderr)

    def test_pull_gives_up_after_bounded_retries_on_5xx(self):
        server = self.serve(behaviour="503")
        started = time.monotonic()
        r = self.pull(server.url(), "--name", "iris", "--retries", "2")
        self.assertEqual(r.returncode, 1)
        self.assertEqual(len(server.requests), 3)
        self.assertIn("giving up after 3 attempts: HTTP 503", r.stderr)
        self.assertGreaterEqual(time.monotonic() - started, 1.5, "backoff 0.5 s then 1 s")
        self.assertFalse(os.path.exists(os.path.join(self.store, "iris")))
        self.assert_store_has_no_leftovers()

    def test_pull_fails_at_once_on_404(self):
        server = self.serve()
        r = self.pull(server.url("/missing.onnx"), "--name", "iris")
        self.assertEqual(r.returncode, 1)
        self.assertIn("missing.onnx: HTTP 404", r.stderr)
        self.assertEqual(len(server.requests), 1)

    def test_pull_refuses_wrong_bytes_and_stores_nothing(self):
        wrong = MODEL[:-1] + bytes([MODEL[-1] ^ 1])
        server = self.serve(body=wrong)
        r = self.pull(server.url(), "--name", "iris", "--sha256", MODEL_SHA)
        self.assertEqual(r.returncode, 1)
        self.assertIn("sha256 mismatch", r.stderr)
        self.assertIn(MODEL_SHA, r.stderr)
        self.assertIn(hashlib.sha256(wrong).hexdigest(), r.stderr)
        self.assertIn(server.url(), r.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.store, "iris")))
        self.assert_store_has_no_leftovers()

    def test_pull_refuses_a_file_that_is_not_a_model(self):
        server = self.serve(body=b"<html>not a model</html>")
        r = self.pull(server.url(), "--name", "iris")
        self.assertEqual(r.returncode, 1)
        self.assertIn(server.url() + ": ", r.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.store, "iris")))
        self.assert_store_has_no_leftovers()

    def test_cache_hit_sends_no_request(self):
        server = self.serve()
        r = self.pull(server.url(), "--name", "iris", "--sha256", MODEL_SHA.upper())
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(server.requests), 1)
        r = self.pull(server.url(), "--name", "iris", "--sha256", MODEL_SHA)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("cache hit", r.stdout)
        self.assertEqual(len(server.requests), 1, "the second pull must not reach the server")
        self.assertFalse(os.path.exists(os.path.join(self.store, "iris", "2")))
        # the same bytes under another name: copied from the store, still no request
        r = self.pull(server.url(), "--name", "iris-copy", "--sha256", MODEL_SHA)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(server.requests), 1)
        self.assertEqual(self.stored("iris-copy")[0], MODEL)

    def test_pull_without_sha256_does_not_store_a_duplicate(self):
        server = self.serve()
        for _ in range(2):
            r = self.pull(server.url(), "--name", "iris")
            self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(sorted(os.listdir(os.path.join(self.store, "iris"))), ["1"])
        self.assertIn("already holds", r.stdout)

    def test_pull_rejects_bad_arguments(self):
        for args, message in [
            (("ftp://example/x.onnx", "--name", "iris"), "unsupported URI scheme"),
            (("http://127.0.0.1:1/x.onnx", "--name", "../etc"), "not a valid model name"),
            (("http://127.0.0.1:1/x.onnx", "--name", "iris", "--sha256", "abc"), "64 hexadecimal"),
            (("s3://bucket-only", "--name", "iris"), "s3://BUCKET/KEY"),
            (("file://relative/x.onnx", "--name", "iris"), "file:///ABSOLUTE/PATH"),
        ]:
            r = self.pull(*args)
            self.assertEqual(r.returncode, 1, args)
            self.assertIn(message, r.stderr, args)

    # ---- file ----

    def test_pull_file_uri(self):
        path = os.path.join(self.tmp, "my model.onnx")
        shutil.copy(MODEL_PATH, path)
        r = self.pull("file://" + path.replace(" ", "%20"), "--name", "iris", "--version", "7")
        self.assertEqual(r.returncode, 0, r.stderr)
        data, manifest = self.stored("iris", "7")
        self.assertEqual(data, MODEL)
        r = self.pull("file://" + os.path.join(self.tmp, "absent.onnx"), "--name", "iris")
        self.assertEqual(r.returncode, 1)
        self.assertIn("absent.onnx", r.stderr)
        self.assert_store_has_no_leftovers()

    # ---- s3 ----

    def test_pull_s3_from_s3rver(self):
        if not os.path.exists(S3RVER) or not shutil.which("curl"):
            if "s3rver" in REQUIRED:
                self.fail("s3rver (npm ci at the root) or curl is missing")
            self.skipTest("s3rver (npm ci at the root) or curl not installed")
        port = free_port()
        data_dir = os.path.join(self.tmp, "s3data")
        os.mkdir(data_dir)
        proc = subprocess.Popen([S3RVER, "-d", data_dir, "-a", "127.0.0.1", "-p", str(port), "--silent",
                                 "--configure-bucket", "models"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            endpoint = "http://127.0.0.1:%d" % port
            deadline = time.monotonic() + 30 * SLOW
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        self.fail("s3rver did not start: %s" % proc.stderr.read().decode(errors="replace"))
                    time.sleep(0.1)
            # upload with curl's own SigV4 signer (s3rver's default account is S3RVER/S3RVER)
            up = subprocess.run(["curl", "-sS", "--fail", "--aws-sigv4", "aws:amz:us-east-1:s3",
                                 "--user", "S3RVER:S3RVER", "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD",
                                 "-T", MODEL_PATH, endpoint + "/models/iris/v1/model.onnx"],
                                capture_output=True, text=True, timeout=30)
            self.assertEqual(up.returncode, 0, up.stderr)
            env = {"AWS_ACCESS_KEY_ID": "S3RVER", "AWS_SECRET_ACCESS_KEY": "S3RVER",
                   "AWS_ENDPOINT_URL": endpoint, "AWS_REGION": "us-east-1"}
            r = self.pull("s3://models/iris/v1/model.onnx", "--name", "iris", "--sha256", MODEL_SHA, env=env)
            self.assertEqual(r.returncode, 0, r.stderr)
            data, manifest = self.stored("iris")
            self.assertEqual(data, MODEL)
            self.assertEqual(manifest["source"], "s3://models/iris/v1/model.onnx")
            # s3rver knows one access key: another is refused, with S3's own words
            r = self.pull("s3://models/iris/v1/model.onnx", "--name", "other",
                          env=dict(env, AWS_ACCESS_KEY_ID="NOT-A-KEY"))
            self.assertEqual(r.returncode, 1)
            self.assertIn("InvalidAccessKeyId", r.stderr)
            r = self.pull("s3://models/iris/v2/model.onnx", "--name", "other", env=env)
            self.assertEqual(r.returncode, 1)
            self.assertIn("NoSuchKey", r.stderr)
            self.assertFalse(os.path.exists(os.path.join(self.store, "other")))
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            proc.stderr.close()

    def test_s3_request_carries_a_valid_sigv4_signature(self):
        server = self.serve(behaviour="sigv4", secret="fake/secret+key")
        env = {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "fake/secret+key",
               "AWS_SESSION_TOKEN": "session-token-123", "AWS_DEFAULT_REGION": "eu-west-3",
               "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:%d/" % server.port,
               "AWS_ENDPOINT_URL": "http://127.0.0.1:1"}
        r = self.pull("s3://my-bucket/dir/iris svc+1.onnx", "--name", "iris", env=env)
        self.assertEqual(r.returncode, 0, r.stderr + " | " + "; ".join(server.signature_errors))
        self.assertEqual(server.signature_errors, [])
        path, headers = server.requests[0]
        self.assertEqual(path, "/my-bucket/dir/iris%20svc%2B1.onnx", "path-style, key encoded once")
        self.assertRegex(headers["authorization"],
                         r"^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/\d{8}/eu-west-3/s3/aws4_request, "
                         r"SignedHeaders=[a-z0-9;-]*x-amz-security-token[a-z0-9;-]*, Signature=[0-9a-f]{64}$")
        self.assertEqual(headers["x-amz-security-token"], "session-token-123")
        self.assertRegex(headers["x-amz-content-sha256"], r"^[0-9a-f]{64}$")
        self.assertEqual(self.stored("iris")[0], MODEL)
        # a wrong secret is caught by the verifying server: 403, no retry
        r = self.pull("s3://my-bucket/dir/iris svc+1.onnx", "--name", "iris2",
                      env=dict(env, AWS_SECRET_ACCESS_KEY="wrong"))
        self.assertEqual(r.returncode, 1)
        self.assertIn("HTTP 403 (SignatureDoesNotMatch", r.stderr)
        self.assertEqual(len(server.requests), 2)

    # ---- serve --model-uri ----

    def test_serve_model_uri_reaches_ready(self):
        server = self.serve()
        port = free_port()
        env = dict(os.environ, INFERD_HOME=self.store)
        for k in [k for k in env if k.startswith("AWS_")]:
            del env[k]
        log = open(os.path.join(self.tmp, "serve.log"), "w+")
        proc = subprocess.Popen([INFERD, "serve", "--model-uri", server.url("/m/Iris_SVC.onnx"), "--sha256",
                                 MODEL_SHA, "--port", str(port), "--workers", "1"],
                                stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            deadline = time.monotonic() + 60 * SLOW
            status = None
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    with urllib.request.urlopen("http://127.0.0.1:%d/v2/health/ready" % port, timeout=2) as resp:
                        status = resp.status
                        break
                except OSError:
                    time.sleep(0.1)
            log.seek(0)
            output = log.read()
            self.assertEqual(status, 200, output)
            self.assertIn(server.url("/m/Iris_SVC.onnx"), output)
            self.assertIn(MODEL_SHA, output)
            self.assertEqual(self.stored("iris_svc")[0], MODEL)
            with urllib.request.urlopen("http://127.0.0.1:%d/v2/models/iris_svc/ready" % port, timeout=5) as resp:
                self.assertEqual(resp.status, 200)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20 * SLOW)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()
        # a restart with the same sha256 is a cache hit: no second request
        self.assertEqual(len(server.requests), 1)
        proc = subprocess.Popen([INFERD, "serve", "--model-uri", server.url("/m/Iris_SVC.onnx"), "--sha256",
                                 MODEL_SHA, "--port", str(port), "--workers", "1"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        try:
            deadline = time.monotonic() + 60 * SLOW
            status = None
            while time.monotonic() < deadline and proc.poll() is None and status is None:
                try:
                    with urllib.request.urlopen("http://127.0.0.1:%d/v2/health/ready" % port, timeout=2) as resp:
                        status = resp.status
                except OSError:
                    time.sleep(0.1)
            self.assertEqual(status, 200)
            self.assertEqual(len(server.requests), 1)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20 * SLOW)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            proc.stderr.close()

    def test_serve_model_uri_sha_mismatch_exits_with_reason(self):
        server = self.serve(body=MODEL + b"x")
        env = dict(os.environ, INFERD_HOME=self.store)
        r = subprocess.run([INFERD, "serve", "--model-uri", server.url(), "--sha256", MODEL_SHA,
                            "--port", str(free_port())], capture_output=True, text=True, timeout=60 * SLOW,
                           env=env)
        self.assertEqual(r.returncode, 1)
        self.assertIn("sha256 mismatch", r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
