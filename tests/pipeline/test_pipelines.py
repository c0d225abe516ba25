#!/usr/bin/python3
"""Pipelines (src/pipeline) through a real `inferd serve` on 127.0.0.1.

The example repository is written by tools/gen_pipeline_examples.py into a
temporary directory: prep-pred (scaler -> classifier), serial (scaler ->
classifier -> temperature) and the book's parallel pattern (three
one-vs-rest classifiers). Every pipeline answer is compared, exactly, with
the answer of running each model by hand on the same server; the same
pipelines with remote steps go to a second inferd process. Timeouts, the
circuit breaker, retries and optional/required branches run against a tiny
V2 server in this process (http.server) that can be slow, fail or answer
garbage on request. Bad pipeline.json files are refused by `inferd pipeline
check` and by the server, which keeps serving everything else.
"""
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "serve"))
from serve_harness import INFERD, SLOW, SOURCE, Server, free_port  # noqa: E402

GENERATOR = os.path.join(SOURCE, "tools", "gen_pipeline_examples.py")
TOKEN = "pipeline-test-token-8d2a61"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5], [4.6, 3.1, 1.5, 0.2]]
CLASSES = ["setosa", "versicolor", "virginica"]


def v2_body(rows, name="x", parameters=None):
    body = {"inputs": [{"name": name, "datatype": "FP32", "shape": [len(rows), len(rows[0])],
                        "data": [v for row in rows for v in row]}]}
    if parameters:
        body["parameters"] = parameters
    return body


def outputs_of(answer):
    return {o["name"]: o for o in answer["outputs"]}


def write_pipeline(repo, name, spec):
    os.makedirs(os.path.join(repo, name), exist_ok=True)
    text = spec if isinstance(spec, str) else json.dumps(spec, indent=1)
    tmp = os.path.join(repo, name, "pipeline.json.tmp")
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, os.path.join(repo, name, "pipeline.json"))


# ---- a deliberately slow / failing V2 server ------------------------------

class FlakyV2:
    """A tiny KServe V2 server: /v2/models/{m} metadata and /infer answering
    probabilities [N,2] = [0.25, 0.75] per row, unless the mode of model m
    says otherwise: "slow" (sleeps `delay` seconds), "fail" (HTTP 500),
    "garbage" (200 with text that is not JSON), "fail_first" (HTTP 503 for
    the first `remaining` calls). It counts calls and keeps the headers."""

    def __init__(self, port=0):
        self.modes, self.calls, self.headers = {}, {}, []
        self.delay, self.remaining = 0.0, 0
        self.lock = threading.Lock()
        flaky = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def reply(self, status, body, content_type="application/json"):
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                m = re.fullmatch(r"/v2/models/([^/]+)", self.path)
                if not m:
                    return self.reply(404, {"error": "no route"})
                self.reply(200, {"name": m.group(1), "versions": ["1"], "platform": "test",
                                 "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}],
                                 "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 2]}]})

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                m = re.fullmatch(r"/v2/models/([^/]+)/infer", self.path)
                if not m:
                    return self.reply(404, {"error": "no route"})
                name = m.group(1)
                with flaky.lock:
                    flaky.calls[name] = flaky.calls.get(name, 0) + 1
                    flaky.headers.append(dict(self.headers))
                    mode = flaky.modes.get(name, "ok")
                    if mode == "fail_first":
                        if flaky.remaining > 0:
                            flaky.remaining -= 1
                            mode = "unavailable"
                        else:
                            mode = "ok"
                if mode == "slow":
                    time.sleep(flaky.delay)
                if mode == "fail":
                    return self.reply(500, {"error": "deliberate failure"})
                if mode == "unavailable":
                    return self.reply(503, {"error": "not yet"})
                if mode == "garbage":
                    return self.reply(200, b"<html>this is not an inference answer</html>", "text/html")
                rows = json.loads(body)["inputs"][0]["shape"][0]
                self.reply(200, {"model_name": name, "outputs": [
                    {"name": "probabilities", "datatype": "FP32", "shape": [rows, 2], "data": [0.25, 0.75] * rows}]})

        class Quiet(http.server.ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                pass  # a client that gave up on a slow answer closed its socket: expected here

        self.server = Quiet(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class PipelineTestCase(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.examples = tempfile.mkdtemp(prefix="inferd-pipeline-examples-")
        r = subprocess.run([sys.executable, GENERATOR, "--out", cls.examples], capture_output=True, text=True,
                           timeout=300)
        if r.returncode != 0:
            raise AssertionError(f"the generator failed:\n{r.stderr}")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.examples, ignore_errors=True)

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="inferd-pipeline-")
        self.repo = os.path.join(self.tmp, "repo")
        shutil.copytree(self.examples, self.repo)
        self.servers = []
        self.flaky = None

    def tearDown(self):
        for srv in self.servers:
            status = srv.stop()
            report = srv.sanitizer_report()
            srv.close()
            self.assertIsNone(report, report)
            self.assertEqual(status, 0)
        if self.flaky:
            self.flaky.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def start(self, *extra, repo=None, control="none", workers=2):
        args = ["--repository", repo or self.repo, "--model-control", control, "--workers", str(workers), *extra]
        if control != "none":
            args += ["--admin-token", TOKEN]
        srv = Server(args)
        self.servers.append(srv)
        return srv

    def infer(self, srv, name, rows=ROWS, **kw):
        r = srv.post(f"/v2/models/{name}/infer", v2_body(rows, **kw))
        self.assertEqual(r.status, 200, r)
        return outputs_of(r.json())

    def by_hand(self, srv, name, value, input_name="x"):
        """One model run on its own: the reference for a pipeline step."""
        flat = np.asarray(value, dtype=np.float32)
        body = {"inputs": [{"name": input_name, "datatype": "FP32", "shape": list(flat.shape),
                            "data": flat.ravel().tolist()}]}
        r = srv.post(f"/v2/models/{name}/infer", body)
        self.assertEqual(r.status, 200, r)
        out = r.json()["outputs"][0]
        return np.asarray(out["data"], dtype=np.float32).reshape(out["shape"])

    def exact(self, got, expected):
        got = np.asarray(got["data"], dtype=np.float32).reshape(got["shape"])
        self.assertEqual(got.shape, expected.shape)
        self.assertTrue(np.array_equal(got, expected), f"{got} != {expected}")

    # ---- local pipelines ---------------------------------------------------

    def test_prep_pred_equals_the_models_run_by_hand(self):
        srv = self.start()
        scaled = self.by_hand(srv, "iris_scaler", ROWS)
        expected = self.by_hand(srv, "iris_classifier", scaled)
        self.exact(self.infer(srv, "iris_prep_pred")["probabilities"], expected)
        # and it is the scikit-learn classifier's answer: setosa, virginica, versicolor, setosa
        self.assertEqual(expected.argmax(axis=1).tolist(), [0, 2, 1, 0])
        r = srv.post("/models/iris_prep_pred/predict/label", {"data": ROWS[:2]})
        self.assertEqual(r.json(), {"prediction": ["setosa", "virginica"]})
        self.assertEqual(r.headers["x-model-version"], "iris_prep_pred:1")

    def test_serial_three_steps_equal_the_models_run_by_hand(self):
        srv = self.start()
        expected = self.by_hand(srv, "iris_temperature",
                                self.by_hand(srv, "iris_classifier", self.by_hand(srv, "iris_scaler", ROWS)),
                                input_name="probabilities")
        self.exact(self.infer(srv, "iris_serial")["calibrated"], expected)
        r = srv.post("/v1/models/iris_serial:predict", {"instances": ROWS})
        self.assertEqual(r.status, 200, r)
        self.assertTrue(np.array_equal(np.asarray(r.json()["predictions"], np.float32), expected))

    def test_parallel_one_vs_rest_answers_the_books_shapes(self):
        srv = self.start()
        yes = {c: self.by_hand(srv, f"iris_{c}", ROWS) for c in CLASSES}
        out = self.infer(srv, "iris_ovr")
        best = np.stack([yes[c][:, 0] for c in CLASSES], axis=1)
        self.assertEqual(out["label"]["data"], [CLASSES[i] for i in best.argmax(axis=1)])
        self.assertEqual(out["label"]["data"], ["setosa", "virginica", "versicolor", "setosa"])
        self.assertTrue(np.array_equal(np.asarray(out["label_score"]["data"], np.float32), best.max(axis=1)))
        # the book's proxy: POST /predict -> {"setosa": {"prediction": [p_yes, p_no]}, ...}
        r = srv.post("/models/iris_ovr/predict", {"data": [ROWS[0]]})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(sorted(r.json()), CLASSES)
        for c in CLASSES:  # by hand on the same rows: a batch of one may round differently from four
            self.assertEqual(np.asarray(r.json()[c]["prediction"], np.float32).tolist(),
                             self.by_hand(srv, f"iris_{c}", [ROWS[0]])[0].tolist())
        # POST /predict/label -> {"prediction": {"proba": 0.97, "label": "setosa"}}
        r = srv.post("/models/iris_ovr/predict/label", {"data": [ROWS[1]]})
        self.assertEqual(r.json()["prediction"]["label"], "virginica")
        self.assertEqual(np.float32(r.json()["prediction"]["proba"]), self.by_hand(srv, "iris_virginica", [ROWS[1]])[0, 0])
        # and at the root, as the book's proxy serves it
        book = self.start("--book-model", "iris_ovr")
        self.assertEqual(book.post("/predict/label", {"data": [ROWS[0]]}).json()["prediction"]["label"], "setosa")

    def test_parallel_ovr_classifies_iris_well(self):
        from sklearn.datasets import load_iris
        iris = load_iris()
        srv = self.start()
        labels = self.infer(srv, "iris_ovr", rows=iris.data.tolist())["label"]["data"]
        accuracy = np.mean([CLASSES[t] == label for t, label in zip(iris.target, labels)])
        self.assertGreater(accuracy, 0.9)

    def test_metadata_is_the_first_inputs_and_last_outputs(self):
        srv = self.start()
        r = srv.get("/v2/models/iris_serial")
        self.assertEqual(r.json(), {"name": "iris_serial", "versions": ["1"], "platform": "inferd_pipeline",
                                    "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}],
                                    "outputs": [{"name": "calibrated", "datatype": "FP32", "shape": [-1, 3]}]})
        self.assertEqual(srv.get("/v2/models/iris_ovr/ready").status, 200)
        self.assertEqual(srv.get("/v1/models/iris_ovr").json()["model_version_status"][0]["state"], "AVAILABLE")

    def test_switch_chooses_a_branch_by_an_earlier_label(self):
        write_pipeline(self.repo, "iris_switch", {
            "root": "main",
            "steps": {
                "main": {"kind": "sequence", "steps": ["iris_ovr_copy", "route"]},
                "iris_ovr_copy": {"kind": "parallel", "branches": [
                    {"step": {"kind": "model", "model": f"iris_{c}"}, "label": c} for c in CLASSES],
                    "combine": {"kind": "max_score", "output": "probabilities", "index": 0}},
                "route": {"kind": "switch", "on": "label", "cases": [
                    {"equals": "setosa", "step": {"kind": "model", "model": "iris_setosa", "name": "yes_setosa"}}],
                    "default": {"kind": "model", "model": "iris_virginica", "name": "yes_virginica"}},
            }})
        srv = self.start()
        self.exact(self.infer(srv, "iris_switch", rows=[ROWS[0]])["probabilities"],
                   self.by_hand(srv, "iris_setosa", [ROWS[0]]))
        self.exact(self.infer(srv, "iris_switch", rows=[ROWS[1]])["probabilities"],
                   self.by_hand(srv, "iris_virginica", [ROWS[1]]))
        r = srv.post("/v2/models/iris_switch/infer", v2_body(ROWS[:2]))
        self.assertEqual(r.status, 400)
        self.assertIn("step 'route'", r.json()["error"])

    def test_concat_mean_vote_and_object_combine(self):
        branches = [{"step": {"kind": "model", "model": f"iris_{c}"}, "label": c} for c in CLASSES]
        for kind in ("concat", "mean", "vote", "object"):
            write_pipeline(self.repo, f"iris_{kind}", {"root": {"kind": "parallel", "name": kind,
                                                                "branches": branches, "combine": {"kind": kind}}})
        srv = self.start()
        yes = [self.by_hand(srv, f"iris_{c}", ROWS) for c in CLASSES]
        self.exact(self.infer(srv, "iris_concat")["output"], np.concatenate(yes, axis=1))
        mean = self.infer(srv, "iris_mean")["output"]
        self.assertTrue(np.allclose(np.asarray(mean["data"]).reshape(4, 2), sum(yes) / 3, atol=1e-6))
        votes = np.stack([y.argmax(axis=1) for y in yes], axis=1)
        expected_vote = [int(np.bincount(v, minlength=2).argmax()) for v in votes]
        self.assertEqual(self.infer(srv, "iris_vote")["output"]["data"], expected_vote)
        named = self.infer(srv, "iris_object")
        for c, y in zip(CLASSES, yes):
            self.exact(named[f"{c}.probabilities"], y)

    def test_step_timings_metrics_and_request_id_in_logs(self):
        srv = self.start()
        r = srv.post("/v2/models/iris_ovr/infer?trace=1", v2_body(ROWS), headers={"X-Request-ID": "trace-me-42"})
        steps = {t["step"] for t in r.json()["parameters"]["trace"]}
        self.assertEqual(steps, {"classify", "setosa", "versicolor", "virginica"})
        r = srv.post("/v2/models/iris_serial/infer", v2_body(ROWS, parameters={"trace": True}))
        self.assertEqual([t["step"] for t in r.json()["parameters"]["trace"]],
                         ["prep", "pred", "calibrate", "main"])
        self.assertNotIn("parameters", srv.post("/v2/models/iris_serial/infer", v2_body(ROWS)).json())
        metrics = srv.get("/metrics").body.decode()
        m = re.search(r'inferd_pipeline_step_duration_seconds_count\{pipeline="iris_ovr",step="setosa"\} (\d+)',
                      metrics)
        self.assertIsNotNone(m, metrics)
        self.assertEqual(int(m.group(1)), 1)
        self.assertIn('inferd_pipeline_step_errors_total{pipeline="iris_ovr",step="setosa"} 0', metrics)

    def test_branches_never_deadlock_the_workers(self):
        """One worker, no branch threads, and many concurrent parallel
        requests: the caller runs every branch no thread took, so none waits
        for a queue it blocks."""
        for threads in ("0", "1"):
            srv = self.start("--pipeline-threads", threads, workers=1)
            results = []

            def client():
                for _ in range(20):
                    results.append(srv.post("/v2/models/iris_ovr/infer", v2_body(ROWS), timeout=20).status)

            clients = [threading.Thread(target=client) for _ in range(8)]
            for c in clients:
                c.start()
            for c in clients:
                c.join(120 * SLOW)
            self.assertEqual(results, [200] * 160)

    # ---- remote steps --------------------------------------------------------

    def test_remote_steps_to_a_second_inferd_give_the_same_answers(self):
        backend = self.start()
        front_repo = os.path.join(self.tmp, "front")
        shutil.copytree(self.repo, front_repo)
        url = f"http://127.0.0.1:{backend.port}"
        write_pipeline(front_repo, "remote_prep_pred", {"root": {"kind": "sequence", "name": "main", "steps": [
            {"kind": "model", "model": "iris_scaler", "name": "prep"},
            {"kind": "remote", "name": "pred", "url": url, "model": "iris_classifier", "map": {"x": "scaled"},
             "timeout_ms": 5000}]}})
        write_pipeline(front_repo, "remote_ovr", {"root": {"kind": "parallel", "name": "classify", "branches": [
            {"step": {"kind": "remote", "name": c, "url": url, "model": f"iris_{c}"}, "label": c}
            if c != "setosa" else {"step": {"kind": "model", "model": "iris_setosa", "name": c}, "label": c}
            for c in CLASSES], "combine": {"kind": "max_score", "output": "probabilities"}}})
        write_pipeline(front_repo, "remote_serial", {"root": {"kind": "sequence", "name": "main", "steps": [
            {"kind": "remote", "name": "prep", "url": url, "model": "iris_scaler"},
            {"kind": "model", "model": "iris_classifier", "name": "pred", "map": {"x": "scaled"}},
            {"kind": "remote", "name": "calibrate", "url": url, "model": "iris_temperature"}]}})
        front = self.start(repo=front_repo)
        self.assertEqual(self.infer(front, "remote_prep_pred")["probabilities"],
                         self.infer(backend, "iris_prep_pred")["probabilities"])
        self.assertEqual(self.infer(front, "remote_serial")["calibrated"],
                         self.infer(backend, "iris_serial")["calibrated"])
        self.assertEqual(self.infer(front, "remote_ovr"), self.infer(backend, "iris_ovr"))
        for c in CLASSES:
            r = front.post("/models/remote_ovr/predict", {"data": ROWS})
            self.assertEqual(np.asarray(r.json()[c]["prediction"], np.float32).tolist(),
                             self.by_hand(backend, f"iris_{c}", ROWS).tolist())
        # the caller's request id reaches the remote server
        front.post("/v2/models/remote_prep_pred/infer", v2_body(ROWS), headers={"X-Request-ID": "through-both-99"})
        self.assertRegex(backend.log(), r"request_id=through-both-99 .*path=/v2/models/iris_classifier/infer")

    def flaky_pipeline(self, name, mode, **remote):
        if not self.flaky:
            self.flaky = FlakyV2()
        self.flaky.modes[name] = mode
        write_pipeline(self.repo, f"p_{name}", {"root": {"kind": "remote", "name": f"call_{name}",
                                                         "url": self.flaky.url, "model": name, **remote}})

    def test_remote_timeout_is_504_and_failures_are_502_naming_the_step(self):
        self.flaky_pipeline("slow", "slow", timeout_ms=200)
        self.flaky_pipeline("fail", "fail")
        self.flaky_pipeline("garbage", "garbage")
        self.flaky.delay = 2.0
        srv = self.start()
        t0 = time.monotonic()
        r = srv.post("/v2/models/p_slow/infer", v2_body(ROWS))
        self.assertEqual(r.status, 504, r)
        self.assertIn("step 'call_slow'", r.json()["error"])
        self.assertLess(time.monotonic() - t0, 1.5 * SLOW)
        r = srv.post("/v2/models/p_fail/infer", v2_body(ROWS), headers={"X-Request-ID": "failing-7"})
        self.assertEqual(r.status, 502, r)
        self.assertIn("pipeline 'p_fail': step 'call_fail'", r.json()["error"])
        self.assertIn("HTTP 500", r.json()["error"])
        # logged with the request id, counted per step
        self.assertRegex(srv.log(), r"pipeline step failed request_id=failing-7 pipeline=p_fail step=call_fail")
        self.assertIn('inferd_pipeline_step_errors_total{pipeline="p_fail",step="call_fail"} 1',
                      srv.get("/metrics").body.decode())
        r = srv.post("/v2/models/p_garbage/infer", v2_body(ROWS))
        self.assertEqual(r.status, 502, r)
        self.assertIn("garbage", r.json()["error"])
        # the local pipelines keep serving
        self.assertEqual(srv.post("/v2/models/iris_ovr/infer", v2_body(ROWS)).status, 200)

    def test_retries_with_backoff_recover_a_flaky_remote(self):
        self.flaky_pipeline("flaky", "fail_first", retries=2, backoff_ms=20)
        srv = self.start()
        self.flaky.remaining = 2
        r = srv.post("/v2/models/p_flaky/infer", v2_body(ROWS))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.flaky.calls["flaky"], 3)
        self.flaky.remaining = 3  # one more failure than retries
        self.assertEqual(srv.post("/v2/models/p_flaky/infer", v2_body(ROWS)).status, 502)

    def test_circuit_breaker_opens_then_half_open_probe_closes_it(self):
        self.flaky_pipeline("breaker", "fail", circuit_breaker={"failures": 3, "reset_ms": 600})
        srv = self.start()
        for _ in range(3):
            self.assertEqual(srv.post("/v2/models/p_breaker/infer", v2_body(ROWS)).status, 502)
        self.assertEqual(self.flaky.calls["breaker"], 3)
        r = srv.post("/v2/models/p_breaker/infer", v2_body(ROWS))
        self.assertEqual(r.status, 502)
        self.assertIn("circuit breaker open", r.json()["error"])
        self.assertEqual(self.flaky.calls["breaker"], 3, "an open breaker must not call the remote")
        time.sleep(0.8)
        self.flaky.modes["breaker"] = "ok"
        self.assertEqual(srv.post("/v2/models/p_breaker/infer", v2_body(ROWS)).status, 200)
        self.assertEqual(self.flaky.calls["breaker"], 4)
        self.assertEqual(srv.post("/v2/models/p_breaker/infer", v2_body(ROWS)).status, 200)
        # a failed probe opens it again at once
        self.flaky.modes["breaker"] = "fail"
        for _ in range(3):
            srv.post("/v2/models/p_breaker/infer", v2_body(ROWS))
        calls = self.flaky.calls["breaker"]
        time.sleep(0.8)
        self.assertEqual(srv.post("/v2/models/p_breaker/infer", v2_body(ROWS)).status, 502)  # the probe
        self.assertEqual(self.flaky.calls["breaker"], calls + 1)
        self.assertIn("circuit breaker open", srv.post("/v2/models/p_breaker/infer", v2_body(ROWS)).json()["error"])

    def test_parallel_branches_run_concurrently(self):
        """Three remote branches that each take 0.4 s answer in about 0.4 s,
        not 1.2 s: the branch threads run them side by side."""
        self.flaky = FlakyV2()
        self.flaky.delay = 0.4
        write_pipeline(self.repo, "slow3", {"root": {"kind": "parallel", "name": "fan", "branches": [
            {"step": {"kind": "remote", "name": f"slow{i}", "url": self.flaky.url, "model": f"slow{i}",
                      "timeout_ms": 5000}, "label": f"b{i}"} for i in range(3)],
            "combine": {"kind": "concat"}}})
        for i in range(3):
            self.flaky.modes[f"slow{i}"] = "slow"
        srv = self.start("--pipeline-threads", "2")
        t0 = time.monotonic()
        r = srv.post("/v2/models/slow3/infer", v2_body(ROWS))
        elapsed = time.monotonic() - t0
        self.assertEqual(r.status, 200, r)
        self.assertEqual(outputs_of(r.json())["output"]["shape"], [4, 6])
        self.assertLess(elapsed, 1.0 * SLOW)
        trace = srv.post("/v2/models/slow3/infer?trace=1", v2_body(ROWS)).json()["parameters"]["trace"]
        seconds = {t["step"]: t["seconds"] for t in trace}
        self.assertLess(seconds["fan"], 0.8 * SLOW)
        self.assertTrue(all(seconds[f"slow{i}"] >= 0.39 for i in range(3)), seconds)

    def test_optional_branch_is_left_out_and_flagged_required_fails(self):
        self.flaky = FlakyV2()
        self.flaky.modes["down"] = "fail"
        for name, optional in (("opt", True), ("req", False)):
            write_pipeline(self.repo, name, {"root": {"kind": "parallel", "name": "fan", "branches": [
                {"step": {"kind": "model", "model": "iris_setosa", "name": "setosa"}, "label": "setosa"},
                {"step": {"kind": "remote", "name": "down", "url": self.flaky.url, "model": "down"},
                 "label": "down", "optional": optional}],
                "combine": {"kind": "max_score", "output": "probabilities"}}})
        srv = self.start()
        r = srv.post("/v2/models/opt/infer", v2_body(ROWS))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(outputs_of(r.json())["label"]["data"], ["setosa"] * 4)
        self.assertEqual(len(r.json()["parameters"]["skipped_steps"]), 1)
        self.assertIn("down: step 'down'", r.json()["parameters"]["skipped_steps"][0])
        r = srv.post("/models/opt/predict", {"data": [ROWS[0]]})
        self.assertEqual(sorted(r.json()), ["setosa", "skipped_steps"])
        r = srv.post("/v2/models/req/infer", v2_body(ROWS))
        self.assertEqual(r.status, 502)
        self.assertIn("step 'down'", r.json()["error"])

    def test_traceparent_and_request_id_are_propagated(self):
        self.flaky_pipeline("echo", "ok")
        srv = self.start()
        trace = "4bf92f3577b34da6a3ce929d0e0e4736"
        r = srv.post("/v2/models/p_echo/infer", v2_body(ROWS),
                     headers={"X-Request-ID": "rid-123", "traceparent": f"00-{trace}-00f067aa0ba902b7-01"})
        self.assertEqual(r.status, 200, r)
        sent = {k.lower(): v for k, v in self.flaky.headers[-1].items()}
        self.assertEqual(sent["x-request-id"], "rid-123")
        self.assertRegex(sent["traceparent"], rf"^00-{trace}-[0-9a-f]{{16}}-01$")
        self.assertNotIn("00f067aa0ba902b7", sent["traceparent"])
        srv.post("/v2/models/p_echo/infer", v2_body(ROWS))
        self.assertRegex({k.lower(): v for k, v in self.flaky.headers[-1].items()}["traceparent"],
                         r"^00-[0-9a-f]{32}-[0-9a-f]{16}-01$")

    def test_unreachable_remote_at_load_is_not_ready_then_502(self):
        closed = free_port()
        write_pipeline(self.repo, "nowhere", {"root": {"kind": "sequence", "name": "main", "steps": [
            {"kind": "model", "model": "iris_scaler", "name": "prep"},
            {"kind": "remote", "name": "far", "model": "m", "url": f"http://127.0.0.1:{closed}", "timeout_ms": 300}]}})
        write_pipeline(self.repo, "nowhere_first", {"root": {"kind": "remote", "name": "first", "model": "m",
                                                             "url": f"http://127.0.0.1:{closed}"}})
        srv = self.start()  # allowed even with --model-control none
        index = self.start(control="explicit")
        rows = {row["name"]: row for row in index.post("/v2/repository/index", {}, headers=AUTH).json()}
        self.assertEqual(rows["nowhere"]["state"], "UNAVAILABLE")
        self.assertIn("remote step 'far'", rows["nowhere"]["reason"])
        self.assertEqual(rows["iris_ovr"]["state"], "READY")
        r = srv.post("/v2/models/nowhere/infer", v2_body(ROWS))
        self.assertEqual(r.status, 502, r)
        self.assertIn("step 'far'", r.json()["error"])
        self.assertIn("unreachable", r.json()["error"])
        # an unreachable entry step: its inputs are unknown, so it waits (503) and is retried
        r = srv.post("/v2/models/nowhere_first/infer", v2_body(ROWS))
        self.assertEqual(r.status, 503, r)
        self.assertIn("remote step 'first'", r.json()["error"])
        self.flaky = FlakyV2()
        write_pipeline(self.repo, "nowhere_first", {"root": {"kind": "remote", "name": "first", "model": "m",
                                                             "url": self.flaky.url}})
        self.assertEqual(index.post("/v2/repository/models/nowhere_first/load", {}, headers=AUTH).status, 200)
        self.assertEqual(index.post("/v2/models/nowhere_first/infer", v2_body(ROWS)).status, 200)

    def test_a_remote_that_comes_up_later_is_taken_into_use(self):
        port = free_port()
        write_pipeline(self.repo, "later", {"root": {"kind": "sequence", "name": "main", "steps": [
            {"kind": "model", "model": "iris_scaler", "name": "prep"},
            {"kind": "remote", "name": "far", "model": "m", "url": f"http://127.0.0.1:{port}", "map": {"x": "scaled"},
             "timeout_ms": 300}]}})
        srv = self.start(control="explicit")
        self.assertEqual(srv.post("/v2/models/later/infer", v2_body(ROWS)).status, 502)
        self.flaky = FlakyV2(port)
        self.assertTrue(self.wait_for(lambda: srv.post("/v2/models/later/infer", v2_body(ROWS)).status == 200))
        # the requests for it retry the load (at most once a second): then it is READY
        self.assertTrue(self.wait_for(lambda: srv.post("/v2/models/later/infer", v2_body(ROWS)).status == 200 and {
            row["name"]: row["state"] for row in srv.post("/v2/repository/index", {}, headers=AUTH).json()}["later"]
            == "READY"))
        self.assertEqual(self.infer(srv, "later")["probabilities"]["data"], [0.25, 0.75] * 4)

    # ---- bad pipelines -------------------------------------------------------

    BAD = {
        "not_json": ('{"root": "main", "steps": {', r"line \d+ column \d+: not JSON"),
        "unknown_model": ({"root": {"kind": "model", "model": "no_such_model", "name": "m"}},
                          r"step 'm': model 'no_such_model'.*unknown model"),
        "unknown_step": ({"root": "main", "steps": {"main": {"kind": "sequence", "steps": ["prep", "ghost"]},
                                                    "prep": {"kind": "model", "model": "iris_scaler"}}},
                         r"references unknown step 'ghost'"),
        "cycle": ({"root": "a", "steps": {"a": {"kind": "sequence", "steps": ["b"]},
                                          "b": {"kind": "sequence", "steps": ["a"]}}},
                  r"cycle: a -> b -> a"),
        "unknown_name": ({"root": {"kind": "sequence", "name": "main", "steps": [
            {"kind": "model", "model": "iris_scaler", "name": "prep"},
            {"kind": "model", "model": "iris_classifier", "name": "pred", "map": {"x": "scaled_typo"}}]}},
            r"step 'pred': input 'x' needs the value 'scaled_typo', which no earlier step produces"),
        "shape_mismatch": ({"root": {"kind": "sequence", "name": "main", "steps": [
            {"kind": "model", "model": "iris_classifier", "name": "pred"},
            {"kind": "model", "model": "iris_setosa", "name": "again", "map": {"x": "probabilities"}}]}},
            r"step 'again': input 'x' is fed by 'probabilities'.*dimension 1 differs"),
        "dtype_mismatch": ({"root": {"kind": "sequence", "name": "main", "steps": [
            {"kind": "parallel", "name": "ovr", "combine": {"kind": "max_score", "output": "probabilities"},
             "branches": [{"kind": "model", "model": "iris_setosa"}]},
            {"kind": "model", "model": "iris_setosa", "name": "again", "map": {"x": "label"}}]}},
            r"step 'again': input 'x' is fed by 'label', but it is string"),
        "unknown_kind": ({"root": {"kind": "ensemble", "name": "e"}}, r"step 'e': unknown kind \"ensemble\""),
        "unknown_field": ({"root": {"kind": "model", "model": "iris_scaler", "name": "m", "timeout": 3}},
                          r"step 'm': unknown field \"timeout\""),
        "bad_combine": ({"root": {"kind": "parallel", "name": "p", "branches": ["a"], "combine": {"kind": "sum"}},
                         "steps": {"a": {"kind": "model", "model": "iris_setosa"}}}, r"combine \"kind\" must be"),
        "switch_outputs_differ": ({"root": {"kind": "sequence", "name": "main", "steps": [
            {"kind": "model", "model": "iris_scaler", "name": "prep"},
            {"kind": "switch", "name": "route", "on": "scaled", "index": 0,
             "cases": [{"above": 0, "step": {"kind": "model", "model": "iris_setosa", "name": "a"}}],
             "default": {"kind": "model", "model": "iris_scaler", "name": "b"}}]}},
            r"step 'route': case step 'b' answers with other outputs"),
    }

    def test_bad_pipelines_are_refused_by_check_naming_step_and_reason(self):
        for name, (spec, message) in self.BAD.items():
            with self.subTest(name):
                write_pipeline(self.repo, name, spec)
                r = subprocess.run([INFERD, "pipeline", "check", os.path.join(self.repo, name)], capture_output=True,
                                   text=True, timeout=60 * SLOW)
                self.assertEqual(r.returncode, 1, r.stdout)
                self.assertIn(os.path.join(self.repo, name, "pipeline.json"), r.stderr)
                self.assertRegex(r.stderr, message)
                shutil.rmtree(os.path.join(self.repo, name))

    def test_bad_pipelines_never_serve_and_the_rest_keeps_serving(self):
        for name, (spec, _) in self.BAD.items():
            write_pipeline(self.repo, name, spec)
        srv = self.start(control="poll")
        rows = {row["name"]: row for row in srv.post("/v2/repository/index", {}, headers=AUTH).json()}
        for name, (_, message) in self.BAD.items():
            self.assertEqual(rows[name]["state"], "UNAVAILABLE")
            self.assertRegex(rows[name]["reason"], message)
            r = srv.post(f"/v2/models/{name}/infer", v2_body(ROWS))
            self.assertEqual(r.status, 503, r)
        self.assertEqual(srv.post("/v2/models/iris_ovr/infer", v2_body(ROWS)).status, 200)
        # with --model-control none a bad pipeline stops the start
        r = subprocess.run([INFERD, "serve", "--repository", self.repo, "--port", str(free_port())],
                           capture_output=True, text=True, timeout=60 * SLOW)
        self.assertEqual(r.returncode, 1)
        self.assertIn("cannot load pipeline", r.stderr)

    def test_a_request_that_fails_the_first_steps_signature_is_400(self):
        srv = self.start()
        for body, fragment in [(v2_body([[1.0, 2.0, 3.0]]), "input 'x': dimension 1 must be 4"),
                               (v2_body(ROWS, name="y"), "has no input 'y'"),
                               ({"inputs": [{"name": "x", "datatype": "INT64", "shape": [1, 4],
                                             "data": [1, 2, 3, 4]}]}, "x")]:
            r = srv.post("/v2/models/iris_prep_pred/infer", body)
            self.assertEqual(r.status, 400, r)
            self.assertIn(fragment, r.json()["error"])

    # ---- hot reload -----------------------------------------------------------

    def wait_for(self, condition, timeout=10):
        deadline = time.monotonic() + timeout * SLOW
        while time.monotonic() < deadline:
            if condition():
                return True
            time.sleep(0.05)
        return False

    def test_poll_mode_loads_reloads_keeps_the_old_on_a_bad_edit_and_drops_removed(self):
        srv = self.start("--poll-interval", "0.1", control="poll")
        self.assertEqual(srv.post("/v2/models/hot/infer", v2_body(ROWS)).status, 404)
        write_pipeline(self.repo, "hot", {"root": {"kind": "model", "model": "iris_setosa", "name": "only"}})
        self.assertTrue(self.wait_for(lambda: srv.post("/v2/models/hot/infer", v2_body(ROWS)).status == 200))
        expected = self.by_hand(srv, "iris_virginica", ROWS)
        write_pipeline(self.repo, "hot", {"root": {"kind": "model", "model": "iris_virginica", "name": "only"}})
        self.assertTrue(self.wait_for(lambda: np.array_equal(np.asarray(
            self.infer(srv, "hot")["probabilities"]["data"], np.float32).reshape(4, 2), expected)))
        write_pipeline(self.repo, "hot", {"root": {"kind": "model", "model": "iris_missing", "name": "only"}})
        self.assertTrue(self.wait_for(lambda: "iris_missing" in json.dumps(
            srv.post("/v2/repository/index", {}, headers=AUTH).json())))
        self.exact(self.infer(srv, "hot")["probabilities"], expected)  # the old one still serves
        shutil.rmtree(os.path.join(self.repo, "hot"))
        self.assertTrue(self.wait_for(lambda: srv.post("/v2/models/hot/infer", v2_body(ROWS)).status == 503))

    def test_explicit_mode_loads_and_unloads_by_the_repository_api(self):
        srv = self.start(control="explicit")
        r = srv.post("/v2/repository/models/iris_ovr/unload", {}, headers=AUTH)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(srv.post("/v2/models/iris_ovr/infer", v2_body(ROWS)).status, 503)
        self.assertEqual(srv.post("/v2/repository/models/iris_ovr/load", {}, headers=AUTH).status, 200)
        self.assertEqual(srv.post("/v2/models/iris_ovr/infer", v2_body(ROWS)).status, 200)

    # ---- the command line -------------------------------------------------------

    def test_check_prints_the_graph_and_predict_runs_a_pipeline_dir(self):
        r = subprocess.run([INFERD, "pipeline", "check", os.path.join(self.repo, "iris_serial")], capture_output=True,
                           text=True, timeout=60 * SLOW)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("inputs: x float32[-1,4]", r.stdout)
        self.assertIn("pred [model] model iris_classifier map x<-scaled -> probabilities float32[-1,3]", r.stdout)
        r = subprocess.run([INFERD, "pipeline", "check", "--dot", os.path.join(self.repo, "iris_ovr")],
                           capture_output=True, text=True, timeout=60 * SLOW)
        self.assertTrue(r.stdout.startswith('digraph "iris_ovr" {'), r.stdout)
        self.assertEqual(r.stdout.count("->"), 3)
        r = subprocess.run([INFERD, "predict", os.path.join(self.repo, "iris_ovr"), "--data", json.dumps(ROWS)],
                           capture_output=True, text=True, timeout=60 * SLOW)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["label"], ["setosa", "virginica", "versicolor", "setosa"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
