"""Adaptive batching (src/models/batcher.c) through a real `inferd serve`:
real fixture models (tools/gen_fixtures.py's digits CNN and MLP, trained
with torch) and onnx.helper models, concurrent clients on real sockets, the
answers checked against an unbatched server's, and the batcher's own
metrics read from /metrics.

Environment: INFERD (the binary), REAL_FIXTURES (gen_fixtures.py --out
DIR), IMAGE_FIXTURES (gen_image_fixtures.py --out DIR), INFERD_TEST_SLOW
(a factor for time limits).
"""
import concurrent.futures
import http.client
import json
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import unittest

import numpy as np
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from live_harness import (AUTH, SLOW, TOKEN, Server, failing_classifier, save,  # noqa: E402
                          slow_classifier, write_config)
from serve_harness import INFERD, v2_binary_request  # noqa: E402

FIXTURES = os.environ.get("REAL_FIXTURES", "")
IMAGE_FIXTURES = os.environ.get("IMAGE_FIXTURES", "")


def fixture(name):
    path = os.path.join(FIXTURES, name, "model.onnx")
    if not os.path.exists(path):
        raise unittest.SkipTest(f"{path} missing: run tools/gen_fixtures.py --out $REAL_FIXTURES")
    return path


def slow_adder_model(k, width=256, depth=60):
    """y = x + k for x float32 [N, 3], exactly (as adder_model), but x goes
    through `depth` MatMuls by the identity at `width` first (embedded and
    taken back by [I 0] and its transpose), so each row costs depth *
    width^2 multiply-adds: calls take long enough that requests arrive
    while one runs and batches form."""
    embed = np.zeros((3, width), np.float32)
    embed[:, :3] = np.eye(3, dtype=np.float32)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])
    nodes, last = [helper.make_node("MatMul", ["x", "embed"], ["h"])], "h"
    for i in range(depth):
        nodes.append(helper.make_node("MatMul", [last, "eye"], [f"m{i}"]))
        last = f"m{i}"
    nodes += [helper.make_node("MatMul", [last, "back"], ["z"]), helper.make_node("Add", ["z", "bias"], ["y"])]
    inits = [numpy_helper.from_array(embed, "embed"), numpy_helper.from_array(np.eye(width, dtype=np.float32), "eye"),
             numpy_helper.from_array(np.ascontiguousarray(embed.T), "back"),
             numpy_helper.from_array(np.full([3], k, dtype=np.float32), "bias")]
    graph = helper.make_graph(nodes, f"slow_adder{k}", [x], [y], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def slow_image_classifier(layers=200, width=256):
    """input float32 [N,1,28,28] (the digits images' preprocessing) ->
    probabilities [N,10]: Flatten, MatMul to `width`, `layers` MatMul+Tanh
    with one shared weight, MatMul to 10 classes, Softmax. About as slow per
    row as live_harness.slow_classifier, so a 1000-row batch takes about a
    second."""
    rng = np.random.default_rng(7)
    w_in = (rng.normal(size=(784, width)) / np.sqrt(784)).astype(np.float32)
    w = (rng.normal(size=(width, width)) / np.sqrt(width)).astype(np.float32)
    w_out = rng.normal(size=(width, 10)).astype(np.float32)
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 28, 28])
    y = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 10])
    nodes = [helper.make_node("Flatten", ["input"], ["flat"], axis=1),
             helper.make_node("MatMul", ["flat", "w_in"], ["h"])]
    last = "h"
    for i in range(layers):
        nodes.append(helper.make_node("MatMul", [last, "w"], [f"m{i}"]))
        nodes.append(helper.make_node("Tanh", [f"m{i}"], [f"t{i}"]))
        last = f"t{i}"
    nodes += [helper.make_node("MatMul", [last, "w_out"], ["logits"]),
              helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1)]
    graph = helper.make_graph(nodes, "slow_digits", [x], [y], [numpy_helper.from_array(w_in, "w_in"),
                                                              numpy_helper.from_array(w, "w"),
                                                              numpy_helper.from_array(w_out, "w_out")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def v2_body(name, array, datatype="FP32", **extra):
    array = np.asarray(array)
    body = {"inputs": [{"name": name, "shape": list(array.shape), "datatype": datatype,
                        "data": array.ravel().tolist()}]}
    body.update(extra)
    return body


def post_raw(port, path, data, timeout=120):
    """POST an already encoded JSON body: (status, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout * SLOW)
    try:
        conn.request("POST", path, data, {"Content-Type": "application/json"})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def post(port, path, body, headers=None, timeout=60):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout * SLOW)
    try:
        conn.request("POST", path, json.dumps(body).encode(),
                     {"Content-Type": "application/json", **(headers or {})})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def metric(server, name, labels=""):
    text = server.get("/metrics").body.decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and labels in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def in_parallel(calls, workers=64):
    """Run every call at once (a barrier releases them together)."""
    barrier = threading.Barrier(min(len(calls), workers))

    def run(call):
        try:
            barrier.wait(timeout=30 * SLOW)
        except threading.BrokenBarrierError:
            pass
        return call()

    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        return list(pool.map(run, calls))


def echo_model():
    """x float32 [N, M] -> y = x * 2: the non-batch dimension M is free, so
    requests of different widths must never share a batch."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "M"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", "M"])
    graph = helper.make_graph([helper.make_node("Add", ["x", "x"], ["y"])], "twice", [x], [y])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


class Batching(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="inferd-batching-")
        self.servers = []

    def tearDown(self):
        for s in self.servers:
            report = s.sanitizer_report()
            s.stop()
            s.close()
            if report:
                self.fail("sanitizer report:\n" + report)
        shutil.rmtree(self.dir, ignore_errors=True)

    def serve(self, args, **kw):
        s = Server(args, **kw)
        self.servers.append(s)
        return s

    def check_distinct_answers(self, model_path, input_name, shape, clients=64, rounds=3):
        """64 clients, each its own rows, get exactly the unbatched server's
        answers from merged batches. On these fast models a worker that
        finds no batch running runs a request at once, so each round is
        sent while a batch of OCCUPY rows (a binary V2 request, max_batch_size
        of them) runs: the clients' requests queue behind it and merge."""
        rng = np.random.default_rng(11)
        # each client its own input, of 1 to 3 rows
        inputs = [rng.random((1 + i % 3, *shape), dtype=np.float32) for i in range(clients)]
        plain = self.serve([model_path, "--name", "m"])
        expected = []
        for x in inputs:
            status, _, body = post(plain.port, "/v2/models/m/infer", v2_body(input_name, x))
            self.assertEqual(status, 200, body)
            expected.append({o["name"]: o["data"] for o in json.loads(body)["outputs"]})
        occupy_rows = 200000
        batched = self.serve([model_path, "--name", "m", "--max-batch-size", str(occupy_rows),
                              "--max-queue-delay-us", "5000"])
        big = np.full((occupy_rows, *shape), 0.5, np.float32)
        occupying, headers = v2_binary_request(
            {"inputs": [{"name": input_name, "shape": list(big.shape), "datatype": "FP32",
                         "parameters": {"binary_data_size": big.nbytes}}]}, [big.tobytes()])

        def occupy():
            def send():
                conn = http.client.HTTPConnection("127.0.0.1", batched.port, timeout=120 * SLOW)
                conn.request("POST", "/v2/models/m/infer", occupying, headers)
                self.assertEqual(conn.getresponse().status, 200)
                conn.close()
            t = threading.Thread(target=send)
            t.start()
            deadline = time.monotonic() + 60 * SLOW
            while metric(batched, "inferd_batch_running_rows", 'model="m"') != occupy_rows:
                self.assertLess(time.monotonic(), deadline, "the occupying request never ran")
                time.sleep(0.002)
            return t

        calls = [(lambda i=i: (i, post(batched.port, "/v2/models/m/infer", v2_body(input_name, inputs[i]))))
                 for i in range(clients)]
        for _ in range(rounds):
            busy = occupy()
            answers = in_parallel(calls, workers=clients)
            busy.join()
            for i, (status, _, body) in answers:
                self.assertEqual(status, 200, body)
                got = {o["name"]: o["data"] for o in json.loads(body)["outputs"]}
                self.assertEqual(set(got), set(expected[i]))
                for name in got:
                    self.assertEqual(len(got[name]), len(expected[i][name]), (i, name))
                    # a batch runs the GEMMs at another row count: float32 sums may reassociate
                    np.testing.assert_allclose(got[name], expected[i][name], rtol=1e-4, atol=2e-5,
                                               err_msg=f"client {i} output {name}")
        batches = metric(batched, "inferd_batch_size_rows_count", 'model="m"') - rounds
        rows = metric(batched, "inferd_batch_size_rows_sum", 'model="m"') - rounds * occupy_rows
        self.assertEqual(rows, sum(len(x) for x in inputs) * rounds)
        self.assertLess(batches, clients * rounds / 2, "the clients' requests did not merge into batches")
        # the engine's time is counted per batch, and is a part of the wall time the clients waited
        run = metric(batched, "inferd_batch_run_seconds_total", 'model="m"')
        self.assertGreater(run, 0)

    def test_concurrent_clients_each_get_their_own_rows_cnn(self):
        self.check_distinct_answers(fixture("digits_cnn"), "input", (1, 8, 8))

    def test_concurrent_clients_each_get_their_own_rows_mlp(self):
        self.check_distinct_answers(fixture("digits_mlp"), "input", (64,))

    def test_every_api_queues_together(self):
        """The book's /predict (queued without holding a worker, like V2) and
        /predict/label, and TF Serving's :predict (a worker waits on the
        queue), batch too and answer what the unbatched server answers."""
        path = fixture("digits_mlp")
        rng = np.random.default_rng(3)
        rows = [rng.random((1, 64), dtype=np.float32).tolist() for _ in range(24)]
        plain = self.serve([path, "--name", "m"])
        batched = self.serve([path, "--name", "m", "--max-batch-size", "32", "--workers", "2"])
        want = [post(plain.port, "/predict", {"data": r})[2] for r in rows]
        got = in_parallel([lambda r=r: post(batched.port, "/predict", {"data": r}) for r in rows], workers=24)
        for (status, _, body), expected in zip(got, want):
            self.assertEqual(status, 200, body)
            np.testing.assert_allclose(json.loads(body)["prediction"] if "prediction" in json.loads(body)
                                       else json.loads(body), json.loads(expected)["prediction"]
                                       if "prediction" in json.loads(expected) else json.loads(expected),
                                       rtol=1e-5, atol=1e-6)
        want_labels = [json.loads(post(plain.port, "/predict/label", {"data": r})[2]) for r in rows]
        got_labels = in_parallel([lambda r=r: post(batched.port, "/predict/label", {"data": r}) for r in rows],
                                 workers=24)
        self.assertEqual([json.loads(b) for _, _, b in got_labels], want_labels)
        v1 = in_parallel([lambda r=r: post(batched.port, "/v1/models/m:predict", {"instances": r})
                          for r in rows], workers=24)
        for status, _, body in v1:
            self.assertEqual(status, 200, body)
        self.assertEqual(metric(batched, "inferd_batch_size_rows_sum", 'model="m"'), 72)

    def test_lone_request_is_not_delayed(self):
        """With a long max_queue_delay_us, requests that come one at a time
        still run at once: waiting only happens while batches form."""
        server = self.serve([fixture("digits_cnn"), "--name", "m", "--max-batch-size", "32",
                             "--max-queue-delay-us", "400000"])
        x = np.zeros((1, 1, 8, 8), np.float32)
        # a burst first, so the batcher has measured arrivals and runs
        in_parallel([lambda: post(server.port, "/v2/models/m/infer", v2_body("input", x))] * 64)
        time.sleep(0.3)
        times = []
        for _ in range(10):
            t = time.monotonic()
            status, _, body = post(server.port, "/v2/models/m/infer", v2_body("input", x))
            times.append(time.monotonic() - t)
            self.assertEqual(status, 200, body)
            time.sleep(0.05)
        self.assertLess(sorted(times)[5], 0.1 * SLOW, f"lone requests waited: {times}")
        self.assertLess(max(times), 0.35 * SLOW, f"a lone request waited for a batch: {times}")

    def slow_server(self, *extra):
        path = save(slow_classifier(layers=200, width=256), os.path.join(self.dir, "slow.onnx"))
        return self.serve([path, "--name", "slow", "--max-batch-size", "1000", *extra])

    def occupy(self, server, rows=1000):
        """Keep the batcher busy: a request of max_batch_size rows runs as
        one batch of its own and takes about a second (its body is encoded
        before the clock starts, so it surely reaches the batcher first)."""
        body = json.dumps(v2_body("x", np.full((rows, 256), 0.25, np.float32))).encode()

        def send():
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120 * SLOW)
            conn.request("POST", "/v2/models/slow/infer", body, {"Content-Type": "application/json"})
            conn.getresponse().read()
            conn.close()

        t = threading.Thread(target=send)
        t.start()
        deadline = time.monotonic() + 30 * SLOW
        while metric(server, "inferd_batch_running_rows", 'model="slow"') != rows:
            self.assertLess(time.monotonic(), deadline, "the occupying request never ran")
            time.sleep(0.01)
        return t

    def test_every_api_queues_without_holding_a_worker(self):
        """With 2 workers, 12 requests that arrive while a batch runs all
        wait in the queue and run as one batch: no worker is held per
        waiting request (the blocking path would cap a batch at 2) — for
        the book's /predict, V2 REST and TF Serving's :predict alike."""
        server = self.slow_server("--workers", "2", "--max-queue-delay-us", "0")
        plain = self.serve([server.args[0], "--name", "slow"])
        rng = np.random.default_rng(9)
        rows = [rng.random((1, 256), dtype=np.float32) for _ in range(12)]
        expected = [json.loads(post(plain.port, "/v2/models/slow/infer", v2_body("x", r))[2])["outputs"][0]["data"]
                    for r in rows]
        apis = {
            "book": ("/predict", lambda r: {"data": r.tolist()}, lambda a: a["prediction"]),
            "v2": ("/v2/models/slow/infer", lambda r: v2_body("x", r), lambda a: a["outputs"][0]["data"]),
            "v1": ("/v1/models/slow:predict", lambda r: {"instances": r.tolist()}, lambda a: a["predictions"]),
        }
        for api, (path, encode, decode) in apis.items():
            before = server.get("/metrics").body.decode()
            busy = self.occupy(server)
            answers = in_parallel([lambda r=r: post(server.port, path, encode(r)) for r in rows], workers=12)
            busy.join()
            for (status, _, body), want in zip(answers, expected):
                self.assertEqual(status, 200, (api, body))
                np.testing.assert_allclose(np.ravel(decode(json.loads(body))), want, rtol=1e-4, atol=2e-5,
                                           err_msg=api)
            text = server.get("/metrics").body.decode()

            def batches_up_to(rows, text):
                return float(re.search(r'inferd_batch_size_rows_bucket\{model="slow",version="1",le="%d"\} (\S+)'
                                       % rows, text).group(1))

            # batches of 3..512 rows formed meanwhile (the occupying 1000 rows excluded)
            formed = (batches_up_to(512, text) - batches_up_to(2, text)) - \
                (batches_up_to(512, before) - batches_up_to(2, before))
            self.assertGreaterEqual(formed, 1, f"{api}: no batch of more than 2 rows formed:\n{text}")

    def test_image_requests_batch_without_holding_a_worker(self):
        """Raw PNG bodies on V2 infer and uploads on the tutorial's
        /prediction (decoded and preprocessed by a worker, top-k asked)
        queue like tensors: with 2 workers, 48 images sent while a 1000-row
        batch runs (about a second) all wait in the queue and form batches
        of more than 2 (a worker held per waiting request would cap them at
        2), and each answer is the unbatched server's. (A slow model with
        the digits preprocessing: on the fast digits CNN a worker that finds
        no batch running runs the image's batch at once, so batches seldom
        form whatever the path.)"""
        digits = os.path.join(IMAGE_FIXTURES, "digits")
        if not os.path.exists(os.path.join(digits, "model.onnx")):
            self.skipTest(f"{digits} missing: run tools/gen_image_fixtures.py --out $IMAGE_FIXTURES")
        import subprocess
        store = os.path.join(self.dir, "store")
        model = save(slow_image_classifier(), os.path.join(self.dir, "slow_digits.onnx"))
        r = subprocess.run([INFERD, "models", "--store", store, "import", model,
                            "--name", "digits", "--labels", os.path.join(digits, "labels.json"), "--task",
                            "classification", "--preprocess", os.path.join(digits, "preprocessing.json")],
                           capture_output=True, text=True, timeout=120 * SLOW)
        self.assertEqual(r.returncode, 0, r.stderr)
        pngs = sorted(f for f in os.listdir(digits) if f.endswith(".png"))[:16]
        images = []
        for name in pngs:
            with open(os.path.join(digits, name), "rb") as f:
                images.append(f.read())

        def send(port, data):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60 * SLOW)
            try:
                conn.request("POST", "/v2/models/digits/infer?top_k=3", data, {"Content-Type": "image/png"})
                r = conn.getresponse()
                return r.status, r.read()
            finally:
                conn.close()

        plain = self.serve(["digits", "--store", store])
        want = [json.loads(send(plain.port, data)[1]) for data in images]
        server = self.serve(["digits", "--store", store, "--max-batch-size", "1000", "--max-queue-delay-us", "0",
                             "--workers", "2"])
        occupying = json.dumps(v2_body("input", np.zeros((1000, 1, 28, 28), np.float32))).encode()

        def occupy():
            """A 1000-row batch, running once this returns (its thread)."""
            t = threading.Thread(target=lambda: self.assertEqual(
                post_raw(server.port, "/v2/models/digits/infer", occupying)[0], 200))
            t.start()
            deadline = time.monotonic() + 30 * SLOW
            while metric(server, "inferd_batch_running_rows", 'model="digits"') != 1000:
                self.assertLess(time.monotonic(), deadline, "the occupying request never ran")
                time.sleep(0.01)
            return t

        calls = [lambda i=i: (i, send(server.port, images[i])) for i in range(len(images))] * 3
        busy = occupy()
        answers = in_parallel(calls, workers=48)
        busy.join()
        for i, (status, body) in answers:
            self.assertEqual(status, 200, body)
            got = json.loads(body)
            self.assertEqual([c["index"] for c in got["parameters"]["top_k"]],
                             [c["index"] for c in want[i]["parameters"]["top_k"]], pngs[i])
            np.testing.assert_allclose(got["outputs"][0]["data"], want[i]["outputs"][0]["data"],
                                       rtol=1e-4, atol=2e-5)
        self.assertEqual(metric(server, "inferd_batch_size_rows_sum", 'model="digits"'), len(calls) + 1000)

        # the tutorial's upload on /prediction (top-k too) queues the same way
        def upload(port, data):
            boundary = "inferd-batching-test"
            body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"d.png\"\r\n"
                    "Content-Type: image/png\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60 * SLOW)
            try:
                conn.request("POST", "/prediction?top_k=2", body,
                             {"Content-Type": f"multipart/form-data; boundary={boundary}"})
                r = conn.getresponse()
                return r.status, r.read()
            finally:
                conn.close()

        want_uploads = [json.loads(upload(plain.port, data)[1]) for data in images]
        busy = occupy()
        answers = in_parallel([lambda i=i: (i, upload(server.port, images[i])) for i in range(len(images))],
                              workers=16)
        busy.join()
        for i, (status, body) in answers:
            self.assertEqual(status, 200, body)
            got = json.loads(body)
            self.assertEqual(got["index"], want_uploads[i]["index"], pngs[i])
            self.assertEqual([c["index"] for c in got["top_k"]], [c["index"] for c in want_uploads[i]["top_k"]])
        self.assertEqual(metric(server, "inferd_batch_size_rows_sum", 'model="digits"'),
                         len(calls) + len(images) + 2000)
        text = server.get("/metrics").body.decode()

        def batches_up_to(rows):
            return float(re.search(r'inferd_batch_size_rows_bucket\{model="digits",version="[^"]+",le="%d"\} (\S+)'
                                   % rows, text).group(1))
        # batches of 3..512 images (the two occupying 1000-row batches excluded)
        self.assertGreaterEqual(batches_up_to(512) - batches_up_to(2), 1,
                                f"no batch of more than 2 images formed:\n{text}")

    def test_request_larger_than_max_batch_size_runs_at_once_outside_the_queue(self):
        """A request of more rows than max_batch_size is neither refused
        (as Triton does: its max_batch_size is what the model accepts,
        inferd's only what one engine call batches) nor run on the batch
        thread ahead of the queue: it runs at once on the worker's own
        session, from every API, and answers what an unbatched server does."""
        path = fixture("digits_mlp")
        plain = self.serve([path, "--name", "m"])
        server = self.serve([path, "--name", "m", "--max-batch-size", "4"])
        x = np.random.default_rng(4).random((9, 64), dtype=np.float32)
        want = json.loads(post(plain.port, "/v2/models/m/infer", v2_body("input", x))[2])["outputs"]
        status, _, body = post(server.port, "/v2/models/m/infer", v2_body("input", x))
        self.assertEqual(status, 200, body)
        for got, expected in zip(json.loads(body)["outputs"], want):
            self.assertEqual(got["shape"], expected["shape"])
            np.testing.assert_allclose(got["data"], expected["data"], rtol=1e-5, atol=1e-6)
        status, _, body = post(server.port, "/v1/models/m:predict", {"instances": x.tolist()})
        self.assertEqual(status, 200, body)
        self.assertEqual(len(json.loads(body)["predictions"]), 9)
        status, _, body = post(server.port, "/predict", {"data": x.tolist()})
        self.assertEqual(status, 200, body)
        self.assertEqual(len(json.loads(body)["prediction"]), 9)
        # none of them went through the batch queue; a request within the limit does
        self.assertEqual(metric(server, "inferd_batch_size_rows_count", 'model="m"'), 0)
        status, _, body = post(server.port, "/v2/models/m/infer", v2_body("input", x[:4]))
        self.assertEqual(status, 200, body)
        self.assertEqual(metric(server, "inferd_batch_size_rows_sum", 'model="m"'), 4)

    def test_deadline_passed_in_the_queue_answers_504(self):
        server = self.slow_server()
        x = np.full((1, 256), 0.01, np.float32)
        busy = self.occupy(server)
        header = post(server.port, "/v2/models/slow/infer", v2_body("x", x), {"X-Request-Timeout-Ms": "20"})
        answered_while_busy = busy.is_alive()
        busy.join()
        self.assertEqual(header[0], 504, header[2])
        # answered when the deadline passed, not when the running batch ended
        self.assertTrue(answered_while_busy)
        self.assertIn("deadline", json.loads(header[2])["error"])
        busy = self.occupy(server)
        param = post(server.port, "/v2/models/slow/infer", v2_body("x", x, parameters={"timeout": 20000}))
        busy.join()
        self.assertEqual(param[0], 504, param[2])
        # TF Serving's :predict and the book's /predict queue the same way, with the same deadline
        for path, body in (("/v1/models/slow:predict", {"instances": x.tolist()}), ("/predict", {"data": x.tolist()})):
            busy = self.occupy(server)
            r = post(server.port, path, body, {"X-Request-Timeout-Ms": "20"})
            answered_while_busy = busy.is_alive()
            busy.join()
            self.assertEqual(r[0], 504, (path, r[2]))
            self.assertTrue(answered_while_busy, path)
        self.assertEqual(metric(server, "inferd_batch_deadline_expired_total", 'model="slow"'), 4)
        # a generous deadline is met
        ok = post(server.port, "/v2/models/slow/infer", v2_body("x", x), {"X-Request-Timeout-Ms": "60000"})
        self.assertEqual(ok[0], 200, ok[2])
        for bad in ("0", "-5", "abc", "99999999999"):
            r = post(server.port, "/v2/models/slow/infer", v2_body("x", x), {"X-Request-Timeout-Ms": bad})
            self.assertEqual(r[0], 400, (bad, r))
            self.assertIn("X-Request-Timeout-Ms", json.loads(r[2])["error"])
        r = post(server.port, "/v2/models/slow/infer", v2_body("x", x, parameters={"timeout": "soon"}))
        self.assertEqual(r[0], 400, r)

    def test_full_queue_answers_429(self):
        server = self.slow_server("--batch-queue", "2")
        x = np.full((1, 256), 0.01, np.float32)
        busy = self.occupy(server)
        # V2 and TF Serving's :predict share the one queue
        answers = in_parallel([lambda: post(server.port, "/v2/models/slow/infer", v2_body("x", x))] * 4 +
                              [lambda: post(server.port, "/v1/models/slow:predict", {"instances": x.tolist()})] * 4,
                              workers=8)
        busy.join()
        statuses = sorted(a[0] for a in answers)
        self.assertIn(429, statuses, answers)
        self.assertTrue(all(s in (200, 429) for s in statuses), statuses)
        self.assertGreaterEqual(statuses.count(200), 2, statuses)
        refused = [a for a in answers if a[0] == 429][0]
        self.assertIn("queue is full", json.loads(refused[2])["error"])
        self.assertEqual(refused[1].get("retry-after"), "1")
        self.assertEqual(metric(server, "inferd_batch_queue_full_total", 'model="slow"'), statuses.count(429))
        self.assertEqual(post(server.port, "/v2/models/slow/infer", v2_body("x", x))[0], 200)

    def test_failing_batch_answers_every_member_with_the_error(self):
        """Rows whose first feature is 6 or more make the engine fail; a
        batch holding one fails whole, and no member ever gets another's
        rows; the server keeps serving."""
        path = save(failing_classifier(), os.path.join(self.dir, "failing.onnx"))
        plain = self.serve([path, "--name", "f"])
        server = self.serve([path, "--name", "f", "--max-batch-size", "64", "--max-queue-delay-us", "20000"])
        good = [[[float(i % 6), 1.0, 2.0, 3.0]] for i in range(40)]
        bad = [[[7.0 + i, 1.0, 2.0, 3.0]] for i in range(8)]
        expected = [json.loads(post(plain.port, "/v2/models/f/infer", v2_body("x", r))[2])["outputs"][0]["data"]
                    for r in good]
        calls = [lambda r=r: ("good", r, post(server.port, "/v2/models/f/infer", v2_body("x", r))) for r in good]
        calls += [lambda r=r: ("bad", r, post(server.port, "/v2/models/f/infer", v2_body("x", r))) for r in bad]
        failed_good = 0
        for kind, rows, (status, _, body) in in_parallel(calls, workers=48):
            if kind == "bad":
                self.assertEqual(status, 400, body)
                self.assertTrue(json.loads(body)["error"])
            elif status == 200:
                data = json.loads(body)["outputs"][0]["data"]
                np.testing.assert_allclose(data, expected[good.index(rows)], rtol=1e-6)
            else:
                self.assertEqual(status, 400, body)
                failed_good += 1
        self.assertGreater(metric(server, "inferd_batch_failed_total", 'model="f"'), 0)
        status, _, body = post(server.port, "/v2/models/f/infer", v2_body("x", good[1]))
        self.assertEqual(status, 200, body)

    def test_signature_failures_never_enter_a_batch(self):
        server = self.serve([fixture("digits_mlp"), "--name", "m", "--max-batch-size", "16"])
        before = metric(server, "inferd_batch_size_rows_count", 'model="m"')
        for body in (v2_body("input", np.zeros((1, 63), np.float32)),   # wrong width
                     v2_body("input", np.zeros((1, 64), np.int64), "INT64"),  # wrong dtype
                     v2_body("nope", np.zeros((1, 64), np.float32))):     # unknown input
            status, _, text = post(server.port, "/v2/models/m/infer", body)
            self.assertEqual(status, 400, text)
            self.assertTrue(json.loads(text)["error"])
        # the same on the book's and TF Serving's routes
        for path, body in (("/predict", {"data": [[0.5] * 63]}),
                           ("/predict/label", {"data": "not rows"}),
                           ("/v1/models/m:predict", {"instances": [[0.5] * 65]}),
                           ("/v1/models/m:predict", {"inputs": {"nope": [[0.5] * 64]}})):
            status, _, text = post(server.port, path, body)
            self.assertEqual(status, 400, (path, text))
            self.assertTrue(json.loads(text)["error"])
        self.assertEqual(metric(server, "inferd_batch_size_rows_count", 'model="m"'), before)

    def test_shapes_never_merge(self):
        path = save(echo_model(), os.path.join(self.dir, "twice.onnx"))
        server = self.serve([path, "--name", "t", "--max-batch-size", "64", "--max-queue-delay-us", "20000"])
        rng = np.random.default_rng(5)
        inputs = [rng.random((1 + i % 2, 2 + i % 3), dtype=np.float32) for i in range(48)]
        answers = in_parallel([lambda x=x: post(server.port, "/v2/models/t/infer", v2_body("x", x))
                               for x in inputs], workers=48)
        for x, (status, _, body) in zip(inputs, answers):
            self.assertEqual(status, 200, body)
            out = json.loads(body)["outputs"][0]
            self.assertEqual(out["shape"], list(x.shape))
            np.testing.assert_allclose(out["data"], (x * 2).ravel(), rtol=1e-6)
        self.assertGreater(metric(server, "inferd_batch_size_rows_sum", 'model="t"'),
                           metric(server, "inferd_batch_size_rows_count", 'model="t"'))

    def test_client_disconnecting_while_queued_does_not_break_the_batch(self):
        server = self.slow_server()
        x = np.full((1, 256), 0.01, np.float32)
        body = json.dumps(v2_body("x", x)).encode()
        busy = self.occupy(server)
        # clients that send a request and hang up while it waits
        for _ in range(4):
            s = socket.create_connection(("127.0.0.1", server.port))
            s.sendall(b"POST /v2/models/slow/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: %d\r\n\r\n" % len(body) + body)
            s.close()
        stayed = in_parallel([lambda: post(server.port, "/v2/models/slow/infer", v2_body("x", x))] * 4,
                             workers=4)
        busy.join()
        for status, _, text in stayed:
            self.assertEqual(status, 200, text)
        self.assertEqual(post(server.port, "/v2/models/slow/infer", v2_body("x", x))[0], 200)

    def test_sigterm_answers_what_waits_in_the_batch_queue(self):
        # grace 0: the queued requests outlive the grace period, and are still answered
        server = self.slow_server("--grace", "0")
        x = np.full((1, 256), 0.01, np.float32)
        busy = self.occupy(server)
        results = []
        waiting = [threading.Thread(target=lambda: results.append(
            post(server.port, "/v2/models/slow/infer", v2_body("x", x)))) for _ in range(4)]
        for t in waiting:
            t.start()
        deadline = time.monotonic() + 30 * SLOW
        while metric(server, "inferd_batch_queue_length", 'model="slow"') < 4:
            self.assertLess(time.monotonic(), deadline, "the requests never queued")
            time.sleep(0.01)
        server.proc.send_signal(signal.SIGTERM)
        for t in waiting:
            t.join()
        busy.join()
        self.assertEqual([r[0] for r in results], [200] * 4, results)
        self.assertEqual(server.proc.wait(30 * SLOW), 0)

    def test_metrics_pass_promtool(self):
        promtool = shutil.which("promtool")
        if not promtool:
            self.skipTest("promtool (Debian prometheus) is not installed")
        server = self.serve([fixture("digits_mlp"), "--name", "m", "--max-batch-size", "16"])
        in_parallel([lambda: post(server.port, "/v2/models/m/infer",
                                  v2_body("input", np.zeros((1, 64), np.float32)))] * 16, workers=16)
        import subprocess
        text = server.get("/metrics").body
        self.assertIn(b"inferd_batch_queue_delay_seconds_bucket", text)
        r = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_config_json_sets_batching_and_bad_values_are_refused(self):
        repo = os.path.join(self.dir, "repo")
        save(echo_model(), os.path.join(repo, "t", "1", "model.onnx"))
        write_config(repo, "t", {"dynamic_batching": {"max_queue_delay_microseconds": 3000,
                                                      "preferred_batch_size": [4, 8]},
                                 "max_batch_size": 16})
        server = self.serve(["--repository", repo, "--model-control", "explicit", "--admin-token", TOKEN])
        in_parallel([lambda: post(server.port, "/v2/models/t/infer", v2_body("x", np.ones((1, 3), np.float32)))]
                    * 32, workers=32)
        self.assertEqual(metric(server, "inferd_batch_size_rows_sum", 'model="t"'), 32)
        for config, field in (({"max_batch_size": 8, "preferred_batch_sizes": [0]}, "preferred_batch_sizes"),
                              ({"max_batch_size": 8, "max_queue_delay_us": -1}, "max_queue_delay_us"),
                              ({"max_batch_size": 8, "max_queue_size": "many"}, "max_queue_size")):
            r = server.post("/v2/repository/models/t/load", {"parameters": {"config": json.dumps(config)}},
                            headers=AUTH)
            self.assertEqual(r.status, 400, r)
            self.assertIn(field, r.json()["error"])

    def test_bad_batching_flags_are_refused(self):
        import subprocess
        for flag, value in (("--max-batch-size", "-1"), ("--max-queue-delay-us", "x"),
                            ("--preferred-batch-sizes", "4,,8"), ("--batch-queue", "0")):
            r = subprocess.run([INFERD, "serve", fixture("digits_mlp"), flag, value], capture_output=True,
                               text=True, timeout=30)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn(flag, r.stderr)

    def test_live_swap_during_batching_never_mixes_versions(self):
        """Versions add their number to x: every answer must be x + the
        version it names, while loads swap versions under 32 concurrent
        clients; nothing is dropped. (Slow adders: a call long enough that
        requests queue while one runs, so batches surely form.)"""
        repo = os.path.join(self.dir, "repo")
        save(slow_adder_model(1), os.path.join(repo, "add", "1", "model.onnx"))
        write_config(repo, "add", {"version_policy": {"latest": 1}, "max_batch_size": 32,
                                   "max_queue_delay_us": 2000})
        server = self.serve(["--repository", repo, "--model-control", "explicit", "--admin-token", TOKEN])
        stop = threading.Event()
        errors, seen = [], set()

        def client(k):
            x = np.full((1, 3), float(k), np.float32)
            while not stop.is_set():
                status, headers, body = post(server.port, "/v2/models/add/infer", v2_body("x", x))
                if status != 200:
                    errors.append((status, body))
                    continue
                answer = json.loads(body)
                version = int(answer["model_version"])
                seen.add(version)
                if headers.get("x-model-version") != f"add:{version}" or \
                        answer["outputs"][0]["data"] != [float(k) + version] * 3:
                    errors.append((version, answer))

        threads = [threading.Thread(target=client, args=(k,)) for k in range(32)]
        for t in threads:
            t.start()
        try:
            for v in (2, 3, 4):
                time.sleep(0.4 * SLOW)
                save(slow_adder_model(v), os.path.join(repo, "add", str(v), "model.onnx"))
                r = server.post("/v2/repository/models/add/load", {}, headers=AUTH)
                self.assertEqual(r.status, 200, r)
            time.sleep(0.4 * SLOW)
        finally:
            stop.set()
            for t in threads:
                t.join()
        self.assertEqual(errors, [])
        self.assertEqual(seen, {1, 2, 3, 4})
        self.assertGreater(metric(server, "inferd_batch_size_rows_sum", 'model="add",version="4"'),
                           metric(server, "inferd_batch_size_rows_count", 'model="add",version="4"'))


if __name__ == "__main__":
    unittest.main(verbosity=2)
