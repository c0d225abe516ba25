#!/usr/bin/python3
"""Integration tests of how `inferd serve` runs: start-up from flags and the
book's environment variables (flags win), TEXT and JSON logs, the
--repository layout with several versions, readiness only after warm-up,
limits (body size, slow clients that dribble bytes), and graceful shutdown
with requests in flight. Each test starts its own server on 127.0.0.1.

Run: INFERD=build/inferd /usr/bin/python3 tests/serve/test_serve_ops.py
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_harness import (DEMO_LABELS, DEMO_MODEL, INFERD, SLOW, Server, adder_model, free_port,  # noqa: E402
                           save, slow_model, two_input_model, v2_binary_request, v2_binary_response)
from onnx import TensorProto, helper  # noqa: E402


def broken_model():
    """Two inputs; loads, but fails on its warm-up zeros: Gather from an
    empty tensor, so index 0 is out of range."""
    i = helper.make_tensor_value_info("i", TensorProto.INT64, ["N"])
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N"])
    z = helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N"])
    empty = helper.make_tensor("empty", TensorProto.FLOAT, [0], [])
    graph = helper.make_graph([helper.make_node("Gather", ["empty", "i"], ["y"]),
                               helper.make_node("Identity", ["x"], ["z"])], "broken", [i, x], [y, z], [empty])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


SAMPLE = [[5.1, 3.5, 1.4, 0.2]]


class ServerTestCase(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="inferd-serve-ops-")
        self.servers = []

    def tearDown(self):
        for srv in self.servers:
            srv.kill()
            srv.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def start(self, args, **kw):
        srv = Server(args, **kw)
        self.servers.append(srv)
        return srv

    def stop_cleanly(self, srv, timeout=30):
        rc = srv.stop(timeout=timeout)
        self.assertEqual(rc, 0, srv.log()[-4000:])
        self.assertIsNone(srv.sanitizer_report())
        return rc

    def run_inferd(self, args, env=None, timeout=30):
        full = dict(os.environ)
        for key in ("MODEL_FILEPATH", "LABEL_FILEPATH", "PORT", "LOG_LEVEL", "LOG_FORMAT"):
            full.pop(key, None)
        full.update(env or {})
        return subprocess.run([INFERD, "serve", *args], capture_output=True, text=True, env=full,
                              timeout=timeout * SLOW)


# ---- start-up, environment, logs --------------------------------------------------

class StartupTest(ServerTestCase):
    def test_env_model_label_port(self):
        port = free_port()
        srv = self.start([], env={"MODEL_FILEPATH": DEMO_MODEL, "LABEL_FILEPATH": DEMO_LABELS, "PORT": str(port)},
                         port=port)
        self.assertEqual(srv.get("/predict/test/label").body, b'{"prediction":"setosa"}')
        self.assertEqual(srv.get("/label").status, 200)
        self.stop_cleanly(srv)

    def test_flags_win_over_env(self):
        env_port, flag_port = free_port(), free_port()
        other_labels = os.path.join(self.tmp, "labels.json")
        with open(other_labels, "w") as f:
            json.dump({"0": "A", "1": "B", "2": "C"}, f)
        adder = save(adder_model(1), os.path.join(self.tmp, "adder.onnx"))
        srv = self.start([DEMO_MODEL, "--labels", other_labels, "--port", str(flag_port)],
                         env={"MODEL_FILEPATH": adder, "LABEL_FILEPATH": DEMO_LABELS, "PORT": str(env_port)},
                         port=flag_port)
        self.assertEqual(srv.get("/v2/models/iris_svc").status, 200, "the command line's model is served")
        self.assertEqual(srv.get("/v2/models/adder").status, 404)
        self.assertEqual(srv.get("/predict/test/label").body, b'{"prediction":"A"}')
        with self.assertRaises(OSError):
            socket.create_connection(("127.0.0.1", env_port), timeout=1).close()
        self.stop_cleanly(srv)

    def test_default_host_is_loopback_and_port_8000_is_the_default(self):
        srv = self.start([DEMO_MODEL, "--port", "0"], add_port=False, ready=False)
        deadline = time.monotonic() + 20 * SLOW
        while "listening" not in srv.log() and time.monotonic() < deadline:
            time.sleep(0.02)
        self.assertRegex(srv.log(), r"listening host=127\.0\.0\.1 port=\d+")
        self.stop_cleanly(srv)
        proc = self.run_inferd(["--help"])
        self.assertEqual(proc.returncode, 0)
        self.assertIn("default 8000", proc.stdout)
        self.assertIn("default 127.0.0.1", proc.stdout)

    def test_name_version_and_localhost(self):
        srv = self.start([DEMO_MODEL, "--name", "flowers", "--model-version", "7", "--host", "localhost"])
        self.assertEqual(srv.get("/v2/models/flowers/versions/7/ready").status, 200)
        self.assertEqual(srv.get("/v2/models/flowers").json()["versions"], ["7"])
        self.assertEqual(srv.get("/v2/models/iris_svc").status, 404)
        self.stop_cleanly(srv)

    def test_json_logs_parse_as_json(self):
        srv = self.start([DEMO_MODEL, "--labels", DEMO_LABELS], env={"LOG_FORMAT": "JSON", "LOG_LEVEL": "DEBUG"})
        srv.get("/health", headers={"X-Request-ID": "json-log-1"})
        srv.post("/predict", {"data": [[1, 2]]})
        srv.raw(b"GET /nope\xc3\xa9\x01\"%0a HTTP/1.1\r\nHost: t\r\nX-Request-ID: q\"uote\r\n\r\n")
        self.stop_cleanly(srv)
        lines = [line for line in srv.log().splitlines() if line.strip()]
        self.assertGreater(len(lines), 4)
        events = [json.loads(line) for line in lines]  # every line is one JSON object
        for e in events:
            self.assertIn("time", e)
            self.assertIn(e["level"], ("DEBUG", "INFO", "WARNING", "ERROR"))
            self.assertIn("message", e)
        access = [e for e in events if e.get("message") == "request"]
        self.assertTrue(any(e.get("request_id") == "json-log-1" and e.get("status") == "200" for e in access), access)
        self.assertTrue(any(e.get("status") == "400" for e in access))
        self.assertTrue(any(e["message"] == "stopped" for e in events))

    def test_log_level_filters(self):
        srv = self.start([DEMO_MODEL], env={"LOG_LEVEL": "ERROR"})
        srv.get("/health")
        self.stop_cleanly(srv)
        self.assertNotIn("INFO", srv.log())
        self.assertNotIn("request", srv.log())
        srv = self.start([DEMO_MODEL], env={"LOG_LEVEL": "WARNING", "LOG_FORMAT": "TEXT"})
        srv.get("/health")
        self.stop_cleanly(srv)
        self.assertEqual(srv.log().strip(), "")

    def test_bad_env_and_flags_are_refused_with_a_message(self):
        for env, args, text in (({"LOG_LEVEL": "LOUD"}, [DEMO_MODEL], "LOG_LEVEL"),
                                ({"LOG_FORMAT": "XML"}, [DEMO_MODEL], "LOG_FORMAT"),
                                ({"PORT": "http"}, [DEMO_MODEL], "PORT"),
                                ({}, [DEMO_MODEL, "--port", "70000"], "--port"),
                                ({}, [], "MODEL_FILEPATH"),
                                ({}, [os.path.join(self.tmp, "missing.onnx")], "missing.onnx"),
                                ({}, [DEMO_MODEL, "--labels", os.path.join(self.tmp, "nolabels.json")],
                                 "nolabels.json"),
                                ({}, [DEMO_MODEL, "--bogus"], "--bogus")):
            with self.subTest(env=env, args=args):
                proc = self.run_inferd(args + (["--port", str(free_port())] if "--port" not in args else []), env)
                self.assertEqual(proc.returncode, 1, proc.stderr)
                self.assertIn(text, proc.stderr)

    def test_port_in_use_is_a_clear_error(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen(1)
            proc = self.run_inferd([DEMO_MODEL, "--port", str(s.getsockname()[1])])
        self.assertEqual(proc.returncode, 1)
        self.assertIn("cannot listen", proc.stderr)

    def test_a_second_server_cannot_take_a_served_port(self):
        srv = self.start([DEMO_MODEL])
        proc = self.run_inferd([DEMO_MODEL, "--port", str(srv.port)])
        self.assertEqual(proc.returncode, 1, "two servers shared one port (SO_REUSEPORT)")
        self.assertIn("cannot listen", proc.stderr)
        self.stop_cleanly(srv)


class ReadinessTest(ServerTestCase):
    def test_ready_only_after_every_model_loaded_and_warmed_up(self):
        port = free_port()
        srv = self.start([DEMO_MODEL, "--workers", "2"], port=port, ready=False)
        seen = []
        deadline = time.monotonic() + 30 * SLOW
        while time.monotonic() < deadline:
            try:
                r = srv.get("/v2/health/ready", timeout=2)
                seen.append(r.status)
                if r.status == 200:
                    break
            except OSError:
                seen.append("refused")
            time.sleep(0.002)
        # nothing answers before the models are ready, and the first answer is "ready"
        self.assertEqual([s for s in seen if s != "refused"], [200], seen)
        # the "listening" line may be written just after the first answer
        log = srv.log()
        deadline = time.monotonic() + 5 * SLOW
        while "listening" not in log and time.monotonic() < deadline:
            time.sleep(0.01)
            log = srv.log()
        self.assertIn("listening", log)
        self.assertLess(log.index("model ready"), log.index("listening"), log)
        text = srv.get("/metrics").body.decode()
        self.assertIn('inferd_model_ready{model="iris_svc",version="1"} 1', text)
        self.stop_cleanly(srv)

    def test_models_with_several_inputs_are_warmed_up_too(self):
        path = save(two_input_model(), os.path.join(self.tmp, "two.onnx"))
        srv = self.start([path, "--workers", "2"])
        text = srv.get("/metrics").body.decode()
        self.assertIn('inferd_model_ready{model="two",version="1"} 1', text)
        self.stop_cleanly(srv)
        # a model that cannot run on its warm-up input is refused, not served unready
        bad = save(broken_model(), os.path.join(self.tmp, "broken.onnx"))
        proc = self.run_inferd([bad, "--port", str(free_port())])
        self.assertEqual(proc.returncode, 1, proc.stderr)
        self.assertIn("warm-up", proc.stderr)

    def test_a_model_whose_warm_up_fails_never_becomes_ready(self):
        # a sample that does not fit the model: the warm-up fails, the server does not start
        proc = self.run_inferd([DEMO_MODEL, "--sample", "[[1, 2, 3]]", "--port", str(free_port())])
        self.assertEqual(proc.returncode, 1)
        self.assertIn("warm-up", proc.stderr)


# ---- --repository ----------------------------------------------------------------------

class RepositoryTest(ServerTestCase):
    def setUp(self):
        super().setUp()
        repo = os.path.join(self.tmp, "repo")
        save(adder_model(1), os.path.join(repo, "adder", "1", "model.onnx"))
        save(adder_model(2), os.path.join(repo, "adder", "2", "model.onnx"))
        os.makedirs(os.path.join(repo, "iris", "3"))
        shutil.copy(DEMO_MODEL, os.path.join(repo, "iris", "3", "model.onnx"))
        shutil.copy(DEMO_LABELS, os.path.join(repo, "iris", "3", "labels.json"))
        os.makedirs(os.path.join(repo, "adder", "notes"))  # not a version: ignored
        self.repo = repo

    def infer_adder(self, srv, path):
        return srv.post(path, {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [0, 1, 2]}]})

    def test_two_versions_latest_by_default(self):
        srv = self.start(["--repository", self.repo, "--workers", "2"])
        r = self.infer_adder(srv, "/v2/models/adder/infer")
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.json()["model_version"], r.json()["outputs"][0]["data"]), ("2", [2.0, 3.0, 4.0]))
        r = self.infer_adder(srv, "/v2/models/adder/versions/1/infer")
        self.assertEqual((r.json()["model_version"], r.json()["outputs"][0]["data"]), ("1", [1.0, 2.0, 3.0]))
        r = self.infer_adder(srv, "/v2/models/adder/versions/2/infer")
        self.assertEqual(r.json()["outputs"][0]["data"], [2.0, 3.0, 4.0])
        self.assertEqual(self.infer_adder(srv, "/v2/models/adder/versions/3/infer").status, 404)
        meta = srv.get("/v2/models/adder").json()
        self.assertEqual(sorted(meta["versions"]), ["1", "2"])
        self.assertEqual(srv.get("/v2/models/adder/versions/1/ready").status, 200)
        self.assertEqual(srv.get("/v2/models/iris/versions/3/ready").status, 200)
        self.assertEqual(srv.get("/v2/models/iris/versions/1/ready").status, 404)
        status = srv.get("/v1/models/adder").json()["model_version_status"]
        self.assertEqual(sorted(s["version"] for s in status), ["1", "2"])
        self.assertEqual([s["version"] for s in srv.get("/v1/models/adder/versions/1").json()["model_version_status"]],
                         ["1"])
        r = srv.post("/v1/models/adder:predict", {"instances": [[0, 0, 0]]})
        self.assertEqual(r.json(), {"predictions": [[2.0, 2.0, 2.0]]})
        r = srv.post("/v1/models/adder/versions/1:predict", {"instances": [[0, 0, 0]]})
        self.assertEqual(r.json(), {"predictions": [[1.0, 1.0, 1.0]]})
        # labels.json of a version is read
        self.assertEqual(srv.post("/v1/models/iris:predict", {"instances": SAMPLE}).status, 200)
        self.stop_cleanly(srv)

    def test_book_api_serves_the_first_model_by_name_latest_version(self):
        # "adder" < "iris": the default is the same whatever order the directory lists in
        srv = self.start(["--repository", self.repo])
        r = srv.post("/predict", {"data": [[0, 0, 0]]})
        self.assertEqual(r.json(), {"prediction": [2.0, 2.0, 2.0]})
        self.assertEqual(srv.get("/predict/test").json(), {"prediction": [2.0, 2.0, 2.0]})
        self.stop_cleanly(srv)

    def test_empty_or_missing_repository_is_an_error(self):
        empty = os.path.join(self.tmp, "empty")
        os.makedirs(empty)
        for path in (empty, os.path.join(self.tmp, "absent")):
            proc = self.run_inferd(["--repository", path, "--port", str(free_port())])
            self.assertEqual(proc.returncode, 1)
            self.assertIn(path, proc.stderr)


# ---- limits -------------------------------------------------------------------------------

class LimitsTest(ServerTestCase):
    def test_body_limit_with_and_without_content_length(self):
        srv = self.start([DEMO_MODEL, "--max-body", "1000"])
        big = json.dumps({"data": SAMPLE * 100}).encode()
        r = srv.post("/predict", big, headers={"Content-Type": "application/json"})
        self.assertEqual(r.status, 413, r)
        self.assertIn("error", r.json())
        # chunked: no length to check up front, refused once the limit is passed
        chunked = b"".join(b"%x\r\n%s\r\n" % (len(big[i:i + 100]), big[i:i + 100]) for i in range(0, len(big), 100))
        r = srv.raw(b"POST /predict HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                    b"Transfer-Encoding: chunked\r\n\r\n" + chunked + b"0\r\n\r\n")
        self.assertEqual(r.status, 413, r)
        small = json.dumps({"data": SAMPLE}).encode()
        r = srv.raw(b"POST /predict HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                    b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(small), small))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(srv.post("/predict", {"data": SAMPLE}).status, 200)
        self.stop_cleanly(srv)

    def dribble(self, srv, data, interval, results, key):
        """Send data one byte per interval; record what came back and when."""
        start = time.monotonic()
        got = b""
        try:
            with socket.create_connection(("127.0.0.1", srv.port), timeout=30 * SLOW) as s:
                s.settimeout(interval)
                for i in range(len(data)):
                    try:
                        s.sendall(data[i:i + 1])
                    except OSError:
                        break
                    try:
                        chunk = s.recv(4096)
                        if not chunk:
                            break
                        got += chunk
                        break
                    except socket.timeout:
                        pass
                    except OSError:
                        break
                s.settimeout(5)
                try:
                    while True:
                        chunk = s.recv(4096)
                        if not chunk:
                            break
                        got += chunk
                except OSError:
                    pass
        except OSError as e:
            got += repr(e).encode()
        results[key] = (got, time.monotonic() - start)

    def test_slow_clients_are_cut_off_and_others_are_served_meanwhile(self):
        timeout = 2
        srv = self.start([DEMO_MODEL, "--timeout", str(timeout)])
        body = json.dumps({"data": SAMPLE}).encode()
        head = (b"POST /predict HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n" % len(body))
        results = {}
        # one client dribbles its headers, one its body, at 5 bytes/s: each would take > 10 s
        threads = [threading.Thread(target=self.dribble, args=(srv, head + body, 0.2, results, "headers")),
                   threading.Thread(target=self.dribble_body, args=(srv, head, body, results))]
        for t in threads:
            t.start()
        # meanwhile others are served promptly
        latencies = []
        for _ in range(10):
            t0 = time.monotonic()
            self.assertEqual(srv.post("/predict", {"data": SAMPLE}).status, 200)
            latencies.append(time.monotonic() - t0)
            time.sleep(0.1)
        self.assertLess(max(latencies), 1.0 * SLOW, latencies)
        for t in threads:
            t.join(60 * SLOW)
        for key in ("headers", "body"):
            got, seconds = results[key]
            with self.subTest(client=key):
                # cut off within the per-request deadline (plus the idle-timeout check granularity)
                self.assertLess(seconds, timeout + 3 * SLOW, (key, got, seconds))
                if got.startswith(b"HTTP/1.1"):
                    self.assertIn(b" 408 ", got.split(b"\r\n")[0], got)
                    self.assertIn(b'"error"', got)
        self.assertEqual(srv.post("/predict", {"data": SAMPLE}).status, 200)
        self.stop_cleanly(srv)

    def dribble_body(self, srv, head, body, results):
        start = time.monotonic()
        got = b""
        with socket.create_connection(("127.0.0.1", srv.port), timeout=30 * SLOW) as s:
            s.sendall(head)
            s.settimeout(0.2)
            for i in range(len(body)):
                try:
                    s.sendall(body[i:i + 1])
                except OSError:
                    break
                try:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    got += chunk
                    break
                except socket.timeout:
                    pass
                except OSError:
                    break
            s.settimeout(5)
            try:
                while True:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    got += chunk
            except OSError:
                pass
        results["body"] = (got, time.monotonic() - start)

    def test_idle_connections_do_not_starve_others(self):
        srv = self.start([DEMO_MODEL, "--max-connections", "8", "--timeout", "2"])
        idle = [socket.create_connection(("127.0.0.1", srv.port)) for _ in range(6)]
        try:
            self.assertEqual(srv.post("/predict", {"data": SAMPLE}).status, 200)
        finally:
            for s in idle:
                s.close()
        self.stop_cleanly(srv)


# ---- graceful shutdown ----------------------------------------------------------------------

def wait_in_flight(srv, n):
    """Until n requests (besides the /metrics one asking) are in the server."""
    deadline = time.monotonic() + 30 * SLOW
    while time.monotonic() < deadline:
        text = srv.get("/metrics").body.decode()
        inflight = [line for line in text.splitlines() if line.startswith("inferd_requests_in_flight ")]
        if inflight and float(inflight[0].split()[1]) >= n + 1:
            return
        time.sleep(0.01)
    raise AssertionError(f"{n} requests never were in flight together")


class ShutdownTest(ServerTestCase):
    WIDTH = 256

    def setUp(self):
        super().setUp()
        # 48 MatMuls a row: 0.3 s of work is a few thousand rows even on a fast
        # engine, well under calibrate()'s cap of 16384 (a capped request would
        # be shorter than the shutdown tests assume)
        self.model = save(slow_model(self.WIDTH, depth=48), os.path.join(self.tmp, "slow.onnx"))

    def slow_request(self, rows, seed):
        x = (np.arange(rows * self.WIDTH, dtype=np.float32).reshape(rows, self.WIDTH) % 97) + seed
        body, headers = v2_binary_request(
            {"id": f"r{seed}", "inputs": [{"name": "x", "shape": [rows, self.WIDTH], "datatype": "FP32",
                                           "parameters": {"binary_data_size": x.nbytes}}],
             "parameters": {"binary_data_output": True}}, [x.tobytes()])
        return x, body, headers

    def calibrate(self, srv):
        """Rows that keep one worker busy for about 0.3 s."""
        rows = 64
        while True:
            _, body, headers = self.slow_request(rows, 0)
            t0 = time.monotonic()
            r = srv.post("/v2/models/slow/infer", body, headers=headers)
            self.assertEqual(r.status, 200, r)
            took = time.monotonic() - t0
            if took > 0.1 or rows >= 16384:
                return max(16, min(16384, int(rows * 0.3 / took)))
            rows *= 4

    def test_sigterm_finishes_requests_in_flight_and_exits_zero(self):
        grace = 30
        srv = self.start([self.model, "--workers", "2", "--grace", str(grace)])
        rows = self.calibrate(srv)
        n = 8
        results = {}

        def client(i):
            x, body, headers = self.slow_request(rows, i)
            try:
                r = srv.post("/v2/models/slow/infer", body, headers=headers, timeout=120)
                header, blobs = v2_binary_response(r) if r.status == 200 else (None, None)
                ok = r.status == 200 and header["id"] == f"r{i}" and blobs["y"] == x.tobytes()
                results[i] = (r.status, ok)
            except Exception as e:  # noqa: BLE001 - any failure is a dropped request
                results[i] = ("exception", repr(e))

        # a keep-alive connection opened before the signal
        keep = srv.connection()
        keep.request("GET", "/v2/health/ready")
        first = keep.getresponse()
        first.read()
        self.assertEqual(first.status, 200)

        threads = [threading.Thread(target=client, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        wait_in_flight(srv, n)
        t_signal = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        time.sleep(0.05)
        # no new connections once stopping
        refused = False
        try:
            with socket.create_connection(("127.0.0.1", srv.port), timeout=2) as s:
                s.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
                refused = s.recv(100) == b""
        except OSError:
            refused = True
        # the kept-alive connection may still ask, and hears "not ready" and "close"
        try:
            keep.request("GET", "/v2/health/ready")
            r = keep.getresponse()
            r.read()
            self.assertNotEqual(r.status, 200)
            self.assertEqual(r.getheader("Connection", "").lower(), "close")
        except (OSError, ConnectionError):
            pass  # closed before it asked: also fine
        keep.close()
        for t in threads:
            t.join(120 * SLOW)
        rc = srv.proc.wait(grace * SLOW + 10)
        elapsed = time.monotonic() - t_signal
        self.assertEqual(results, {i: (200, True) for i in range(n)}, srv.log()[-3000:])
        self.assertTrue(refused, "a new connection was served after SIGTERM")
        self.assertEqual(rc, 0, srv.log()[-3000:])
        self.assertLess(elapsed, grace)
        self.assertIn("stopping", srv.log())
        self.assertIsNone(srv.sanitizer_report())

    def test_sigint_with_nothing_in_flight_exits_at_once(self):
        srv = self.start([DEMO_MODEL, "--grace", "20"])
        t0 = time.monotonic()
        self.assertEqual(srv.stop(signal.SIGINT), 0, srv.log())
        self.assertLess(time.monotonic() - t0, 2 * SLOW)
        self.assertIn("SIGINT", srv.log())

    def test_grace_period_bounds_the_exit(self):
        grace = 1
        srv = self.start([self.model, "--workers", "1", "--grace", str(grace)])
        rows = self.calibrate(srv)
        statuses = []

        def client(i):
            _, body, headers = self.slow_request(rows, i)
            try:
                statuses.append(srv.post("/v2/models/slow/infer", body, headers=headers, timeout=60).status)
            except OSError:
                statuses.append("closed")

        n = 12  # ~3.6 s of work for one worker
        threads = [threading.Thread(target=client, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        wait_in_flight(srv, n)
        t0 = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        rc = srv.proc.wait(30 * SLOW)
        elapsed = time.monotonic() - t0
        for t in threads:
            t.join(60)
        self.assertEqual(rc, 0, srv.log()[-3000:])
        # the grace period plus at most one inference that had already started
        self.assertLess(elapsed, grace + 1.0 * SLOW, srv.log()[-2000:])
        self.assertIn("grace period over", srv.log())
        self.assertIn(200, statuses)
        self.assertIsNone(srv.sanitizer_report())

    def test_the_port_is_free_for_a_new_server_while_the_old_one_finishes(self):
        srv = self.start([self.model, "--workers", "1", "--grace", "30"])
        rows = self.calibrate(srv)
        result = {}

        def client():
            x, body, headers = self.slow_request(rows * 4, 7)  # about 1.2 s of work
            r = srv.post("/v2/models/slow/infer", body, headers=headers, timeout=120)
            header, blobs = v2_binary_response(r) if r.status == 200 else (None, None)
            result["ok"] = r.status == 200 and blobs["y"] == x.tobytes()

        t = threading.Thread(target=client)
        t.start()
        wait_in_flight(srv, 1)
        srv.proc.send_signal(signal.SIGTERM)
        # the port is released at once: a successor listens on it while the
        # old server still finishes its request (a restart in place). Like
        # inferd it sets SO_REUSEADDR, without which the old server's open
        # connection alone would keep the port from being bound.
        deadline = time.monotonic() + 5 * SLOW
        while True:
            try:
                with socket.socket() as probe:
                    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    probe.bind(("127.0.0.1", srv.port))
                    probe.listen()
                break
            except OSError:
                self.assertLess(time.monotonic(), deadline, "the port stayed bound after SIGTERM")
                time.sleep(0.01)
        self.assertIsNone(srv.proc.poll(), "the old server should still be finishing its request")
        t.join(120 * SLOW)
        self.assertEqual(srv.proc.wait(60 * SLOW), 0, srv.log()[-3000:])
        self.assertEqual(result, {"ok": True}, srv.log()[-3000:])

    def test_sigterm_under_connection_churn_always_exits_zero(self):
        # libmicrohttpd's MHD_quiesce_daemon raced its own polling threads and
        # sometimes aborted the process on SIGTERM ("Failed to remove listen
        # FD from epoll set"); several polling threads (--workers 2) and
        # clients opening connections all the time are where it struck
        for attempt in range(12):
            srv = self.start([DEMO_MODEL, "--workers", "2", "--grace", "10"])
            stop = threading.Event()

            def churn():
                while not stop.is_set():
                    try:
                        with socket.create_connection(("127.0.0.1", srv.port), timeout=2) as s:
                            s.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
                            s.recv(4096)
                    except OSError:
                        pass

            clients = [threading.Thread(target=churn) for _ in range(4)]
            for c in clients:
                c.start()
            time.sleep(0.1)
            srv.proc.send_signal(signal.SIGTERM)
            rc = srv.proc.wait(30 * SLOW)
            stop.set()
            for c in clients:
                c.join(10)
            self.assertEqual(rc, 0, f"attempt {attempt}: " + srv.log()[-2000:])
            self.assertNotIn("Fatal error", srv.log())
            self.assertIsNone(srv.sanitizer_report())


if __name__ == "__main__":
    unittest.main(verbosity=2)
