#!/usr/bin/python3
"""Pipelines whose model steps batch (src/pipeline/pipeline_run.c with
src/models/batcher.c) through a real `inferd serve` on 127.0.0.1.

A model step whose version batches joins the version's batch queue and
gives its thread back; the run goes on from the batch's completion on a
branch thread. So with ONE worker and many clients, the pipeline requests
all wait in the queue together and run as one batch — which a worker held
per request could never do (it would hold the only worker while its
request waited, and every batch would hold one request). The tests check:
the answers equal an unbatched server's (each request its own rows), the
requests merged into batches of more than one, and a failure in a step (a
full queue, a deadline passed in the queue) answers every caller, naming
the step.

To make requests queue at all on these small models the batcher is kept
busy by one large request straight to the slow model (as
tests/models/test_batching.py does): the pipeline requests arrive while it
runs and form the next batch.
"""
import concurrent.futures
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import numpy as np
from onnx import TensorProto, helper, numpy_helper, save

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "serve"))
from serve_harness import SLOW, SOURCE, Server, free_port  # noqa: E402

GENERATOR = os.path.join(SOURCE, "tools", "gen_pipeline_examples.py")
WIDTH, LAYERS = 256, 100
OCCUPY_ROWS = 3000
CLIENTS = 16


def slow_net():
    """x [N,4] -> probabilities [N,3]: LAYERS tanh layers of WIDTH, so a
    batch of OCCUPY_ROWS rows runs for a good part of a second while a
    batch of a few rows takes milliseconds."""
    rng = np.random.default_rng(5)
    inits, nodes, prev = [], [], "x"
    shapes = [(4, WIDTH)] + [(WIDTH, WIDTH)] * LAYERS + [(WIDTH, 3)]
    for i, (rows, cols) in enumerate(shapes):
        w = (rng.standard_normal((rows, cols)) / np.sqrt(rows)).astype(np.float32)
        inits.append(numpy_helper.from_array(w, f"w{i}"))
        nodes.append(helper.make_node("MatMul", [prev, f"w{i}"], [f"m{i}"]))
        if i + 1 < len(shapes):
            nodes.append(helper.make_node("Tanh", [f"m{i}"], [f"h{i}"]))
            prev = f"h{i}"
    nodes.append(helper.make_node("Softmax", [f"m{len(shapes) - 1}"], ["probabilities"], axis=1))
    graph = helper.make_graph(nodes, "slow_net",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
                              [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 3])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


SERIAL = {
    "root": "main",
    "steps": {
        "main": {"kind": "sequence", "steps": ["prep", "slow", "calibrate"]},
        "prep": {"kind": "model", "model": "iris_scaler"},
        "slow": {"kind": "model", "model": "slow_net", "map": {"x": "scaled"}},
        "calibrate": {"kind": "model", "model": "iris_temperature"},
    },
}

PARALLEL = {
    "root": "main",
    "steps": {
        "main": {"kind": "sequence", "steps": ["prep", "both"]},
        "prep": {"kind": "model", "model": "iris_scaler"},
        "both": {"kind": "parallel", "branches": [{"step": "slow"}, {"step": "pred"}],
                 "combine": {"kind": "mean", "output": "probabilities", "name": "mean_probabilities"}},
        "slow": {"kind": "model", "model": "slow_net", "map": {"x": "scaled"}},
        "pred": {"kind": "model", "model": "iris_classifier", "map": {"x": "scaled"}},
    },
}


def write_json(path, value):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(value, f)


def v2_body(rows):
    return {"inputs": [{"name": "x", "datatype": "FP32", "shape": [len(rows), 4],
                        "data": [float(v) for row in rows for v in row]}]}


def post(port, path, body, headers=None, timeout=120):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout * SLOW)
    try:
        conn.request("POST", path, body if isinstance(body, bytes) else json.dumps(body).encode(),
                     {"Content-Type": "application/json", **(headers or {})})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def metric(server, name, labels=""):
    text = server.get("/metrics").body.decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + "{") and labels in line)


def in_parallel(calls):
    """Run every call at once (a barrier releases them together)."""
    barrier = threading.Barrier(len(calls))

    def run(call):
        try:
            barrier.wait(timeout=30 * SLOW)
        except threading.BrokenBarrierError:
            pass
        return call()

    with concurrent.futures.ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


class PipelineBatching(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.plain_repo = tempfile.mkdtemp(prefix="inferd-pipeline-batching-")
        r = subprocess.run([sys.executable, GENERATOR, "--out", cls.plain_repo], capture_output=True, text=True,
                           timeout=300)
        if r.returncode != 0:
            raise AssertionError(f"the generator failed:\n{r.stderr}")
        os.makedirs(os.path.join(cls.plain_repo, "slow_net", "1"))
        save(slow_net(), os.path.join(cls.plain_repo, "slow_net", "1", "model.onnx"))
        write_json(os.path.join(cls.plain_repo, "batched_serial", "pipeline.json"), SERIAL)
        write_json(os.path.join(cls.plain_repo, "batched_parallel", "pipeline.json"), PARALLEL)
        rng = np.random.default_rng(17)
        # each client its own row, around the iris measurements
        cls.rows = [(rng.random(4) * [3.6, 2.4, 5.9, 2.4] + [4.3, 2.0, 1.0, 0.1]).astype(np.float32).tolist()
                    for _ in range(CLIENTS)]
        cls.expected = {}
        plain = Server(["--repository", cls.plain_repo, "--workers", "1"])
        try:
            for name, output in (("batched_serial", "calibrated"), ("batched_parallel", "mean_probabilities")):
                cls.expected[name] = []
                for row in cls.rows:
                    r = plain.post(f"/v2/models/{name}/infer", v2_body([row]))
                    if r.status != 200:
                        raise AssertionError(f"the unbatched server answered {r}")
                    out = {o["name"]: o for o in r.json()["outputs"]}[output]
                    cls.expected[name].append((output, out["data"]))
        finally:
            plain.stop()
            plain.close()

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.plain_repo, ignore_errors=True)

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="inferd-pipeline-batching-")
        self.servers = []

    def tearDown(self):
        for srv in self.servers:
            status = srv.stop()
            report = srv.sanitizer_report()
            srv.close()
            self.assertIsNone(report, report)
            self.assertEqual(status, 0)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def batched_server(self, slow_config, *extra):
        """The plain repository with slow_net, iris_classifier and
        iris_temperature batching (iris_scaler does not: its step runs on
        whichever thread the run is on), one worker."""
        repo = os.path.join(self.tmp, "repo")
        shutil.copytree(self.plain_repo, repo)
        write_json(os.path.join(repo, "slow_net", "config.json"), slow_config)
        for name in ("iris_classifier", "iris_temperature"):
            write_json(os.path.join(repo, name, "config.json"), {"max_batch_size": 64})
        srv = Server(["--repository", repo, "--workers", "1", "--pipeline-threads", "2", *extra])
        self.servers.append(srv)
        return srv

    def occupy(self, srv):
        """One request of OCCUPY_ROWS rows straight to slow_net: it runs as
        a batch of its own, and what queues meanwhile forms the next batch.
        Returns when that batch runs; join the thread it returns."""
        big = np.full((OCCUPY_ROWS, 4), 0.3, np.float32).tolist()
        body = json.dumps(v2_body(big)).encode()
        outcome = {}

        def send():
            outcome["status"] = post(srv.port, "/v2/models/slow_net/infer", body)[0]

        t = threading.Thread(target=send)
        t.start()
        deadline = time.monotonic() + 60 * SLOW
        while metric(srv, "inferd_batch_running_rows", 'model="slow_net"') != OCCUPY_ROWS:
            self.assertLess(time.monotonic(), deadline, "the occupying request never ran")
            time.sleep(0.002)
        t.outcome = outcome
        return t

    def check_answers(self, name, answers, book=False):
        for i, (status, _, body) in enumerate(answers):
            self.assertEqual(status, 200, body)
            output, want = self.expected[name][i]
            if book:  # the book's /predict: the first float output, one row
                got = json.loads(body)["prediction"]
            else:
                got = {o["name"]: o for o in json.loads(body)["outputs"]}[output]["data"]
            # a batch runs the GEMMs at another row count: float32 sums may reassociate
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=2e-6, err_msg=f"{name}, client {i}")

    def test_concurrent_pipelines_share_batches_with_one_worker(self):
        srv = self.batched_server({"max_batch_size": 4096})
        for name, book in (("batched_serial", False), ("batched_parallel", False), ("batched_serial", True)):
            before = metric(srv, "inferd_batch_size_rows_count", 'model="slow_net"')
            busy = self.occupy(srv)
            if book:
                calls = [lambda i=i: post(srv.port, f"/models/{name}/predict", {"data": [self.rows[i]]})
                         for i in range(CLIENTS)]
            else:
                calls = [lambda i=i: post(srv.port, f"/v2/models/{name}/infer", v2_body([self.rows[i]]))
                         for i in range(CLIENTS)]
            answers = in_parallel(calls)
            busy.join()
            self.assertEqual(busy.outcome.get("status"), 200)
            self.check_answers(name, answers, book)
            batches = metric(srv, "inferd_batch_size_rows_count", 'model="slow_net"') - before - 1
            rows = metric(srv, "inferd_batch_size_rows_sum", 'model="slow_net"')
            self.assertGreaterEqual(batches, 1)
            # with one worker held per request, each of the 16 would be a batch of its own
            self.assertLess(batches, CLIENTS / 2, f"{name}: {CLIENTS} requests ran as {batches} batches")
            self.assertGreater(rows, 0)
        # the one worker is never held: while pipeline requests wait for
        # slow_net, another pipeline (on models nothing occupies) is answered
        busy = self.occupy(srv)
        waiting = [threading.Thread(target=post, args=(srv.port, "/v2/models/batched_serial/infer",
                                                       v2_body([self.rows[0]])))
                   for _ in range(4)]
        for t in waiting:
            t.start()
        time.sleep(0.05)
        r = srv.post("/v2/models/iris_prep_pred/infer", v2_body([self.rows[0]]))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(metric(srv, "inferd_batch_running_rows", 'model="slow_net"'), OCCUPY_ROWS,
                         "the occupying batch ended before the other pipeline was answered")
        busy.join()
        for t in waiting:
            t.join(60 * SLOW)

    def test_without_branch_threads_the_worker_waits_and_answers_the_same(self):
        """--pipeline-threads 0: no thread could go on after a batch, so the
        worker runs the pipeline as pipeline_run does, waiting for each batch
        and running the steps resumed from the batcher's thread itself."""
        repo_server = self.batched_server({"max_batch_size": 4096}, "--pipeline-threads", "0", "--workers", "3")
        for name in ("batched_serial", "batched_parallel"):
            busy = self.occupy(repo_server)
            answers = in_parallel([lambda i=i: post(repo_server.port, f"/v2/models/{name}/infer",
                                                    v2_body([self.rows[i]])) for i in range(6)])
            busy.join()
            self.check_answers(name, answers)

    def test_grpc_pipelines_share_batches_with_one_worker(self):
        """gRPC ModelInfer on a pipeline gives the worker back as REST does:
        the same answers, and the calls merge into batches."""
        try:
            import grpc
            from grpc_tools import protoc  # noqa: F401
        except ImportError:
            self.skipTest("python3-grpcio / python3-grpc-tools missing")
        stubs = os.path.join(self.tmp, "stubs")
        os.makedirs(stubs)
        subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I", os.path.join(SOURCE, "proto"),
                        f"--python_out={stubs}", f"--grpc_python_out={stubs}", "kserve/grpc_predict_v2.proto"],
                       check=True)
        sys.path.insert(0, stubs)
        try:
            from kserve import grpc_predict_v2_pb2 as pb
            from kserve import grpc_predict_v2_pb2_grpc as pb_grpc
        finally:
            sys.path.remove(stubs)
        grpc_port = free_port()
        srv = self.batched_server({"max_batch_size": 4096}, "--grpc-port", str(grpc_port))
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=30 * SLOW)
            stub = pb_grpc.GRPCInferenceServiceStub(channel)

            def infer(i):
                req = pb.ModelInferRequest(model_name="batched_parallel")
                req.inputs.add(name="x", datatype="FP32", shape=[1, 4]).contents.fp32_contents.extend(self.rows[i])
                r = stub.ModelInfer(req, timeout=60 * SLOW)
                out = {o.name: i for i, o in enumerate(r.outputs)}["mean_probabilities"]
                return np.frombuffer(r.raw_output_contents[out], np.float32) if r.raw_output_contents \
                    else np.asarray(r.outputs[out].contents.fp32_contents, np.float32)

            for occupied in (False, True):
                before = metric(srv, "inferd_batch_size_rows_count", 'model="slow_net"')
                busy = self.occupy(srv) if occupied else None
                got = in_parallel([lambda i=i: infer(i) for i in range(CLIENTS)])
                if busy:
                    busy.join()
                for i, values in enumerate(got):
                    np.testing.assert_allclose(values, self.expected["batched_parallel"][i][1], rtol=1e-4,
                                               atol=2e-6, err_msg=f"client {i}")
            batches = metric(srv, "inferd_batch_size_rows_count", 'model="slow_net"') - before - 1
            self.assertLess(batches, CLIENTS / 2, f"{CLIENTS} gRPC calls ran as {batches} batches")

    def test_a_full_batch_queue_answers_each_caller_429_naming_the_step(self):
        srv = self.batched_server({"max_batch_size": 4096, "max_queue_size": 4})
        busy = self.occupy(srv)
        answers = in_parallel([lambda i=i: post(srv.port, "/v2/models/batched_serial/infer",
                                                v2_body([self.rows[i]])) for i in range(12)])
        busy.join()
        refused = [(h, json.loads(b)) for s, h, b in answers if s == 429]
        fine = [(i, a) for i, a in enumerate(answers) if a[0] == 200]
        self.assertEqual(len(refused) + len(fine), 12, [a[0] for a in answers])
        # how many arrive while the occupying batch runs depends on the
        # machine: at least one beyond the 4 places, and each its own 429
        self.assertGreaterEqual(len(refused), 1)
        self.assertEqual(metric(srv, "inferd_batch_queue_full_total", 'model="slow_net"'), len(refused))
        for headers, body in refused:
            self.assertIn("step 'slow'", body["error"])
            self.assertIn("max_queue", body["error"])
            self.assertEqual(headers.get("retry-after"), "1")
        for i, (status, _, body) in fine:
            output, want = self.expected["batched_serial"][i]
            got = {o["name"]: o for o in json.loads(body)["outputs"]}[output]["data"]
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=2e-6)

    def test_a_deadline_passed_in_the_queue_answers_each_caller_504_at_the_deadline(self):
        srv = self.batched_server({"max_batch_size": 4096})
        busy = self.occupy(srv)
        started = time.monotonic()
        answers = in_parallel([lambda i=i: post(srv.port, "/v2/models/batched_parallel/infer",
                                                v2_body([self.rows[i]]), {"X-Request-Timeout-Ms": "100"})
                               for i in range(8)])
        took = time.monotonic() - started
        still_busy = metric(srv, "inferd_batch_running_rows", 'model="slow_net"') == OCCUPY_ROWS
        busy.join()
        for status, _, body in answers:
            self.assertEqual(status, 504, body)
            self.assertIn("step 'slow'", json.loads(body)["error"])
            self.assertIn("deadline", json.loads(body)["error"])
        if still_busy:  # answered at their deadline, not when the batch ahead ended
            self.assertLess(took, 60 * SLOW)
        # the pipeline serves on after every caller got its error
        status, _, body = post(srv.port, "/v2/models/batched_parallel/infer", v2_body([self.rows[0]]))
        self.assertEqual(status, 200, body)


if __name__ == "__main__":
    unittest.main(verbosity=2)
