"""KServe V2 over gRPC (`inferd serve --grpc-port`, src/serve/grpc): a real
server on free 127.0.0.1 ports driven by an independent client, Debian's
python3-grpcio, with stubs generated here by python3-grpc-tools from
proto/kserve/grpc_predict_v2.proto. Every RPC, every datatype raw and
typed, the answers checked against the REST V2 route on the same server,
version selection, the bad inputs of issue 15 (each a status with a
non-empty message, the server answering afterwards), metrics and logs, and
SIGTERM with a call in flight.
"""
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import numpy as np
from onnx import TensorProto, helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_harness import (DEMO_MODEL, ECHO_TYPES, SLOW, SOURCE, Server, adder_model, free_port,  # noqa: E402
                           save, slow_model)

import grpc  # noqa: E402  (Debian: python3-grpcio)

STUBS = tempfile.mkdtemp(prefix="inferd-grpc-stubs-")
subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I", os.path.join(SOURCE, "proto"),
                f"--python_out={STUBS}", f"--grpc_python_out={STUBS}", "kserve/grpc_predict_v2.proto"],
               check=True)
sys.path.insert(0, STUBS)
from kserve import grpc_predict_v2_pb2 as pb  # noqa: E402
from kserve import grpc_predict_v2_pb2_grpc as pb_grpc  # noqa: E402

TMP = tempfile.mkdtemp(prefix="inferd-grpc-test-")
SERVICE = "/inference.GRPCInferenceService/"
TIMEOUT = 30 * SLOW

# datatype -> the InferTensorContents field its elements travel in
TYPED_FIELD = {"BOOL": "bool_contents", "UINT8": "uint_contents", "UINT16": "uint_contents",
               "UINT32": "uint_contents", "UINT64": "uint64_contents", "INT8": "int_contents",
               "INT16": "int_contents", "INT32": "int_contents", "INT64": "int64_contents",
               "FP32": "fp32_contents", "FP64": "fp64_contents", "BYTES": "bytes_contents"}
# rows of two, values every type holds exactly
SAMPLE = {"BOOL": [True, False, False, True], "BYTES": [b"a", b"", b"\x00\xff binary", "\u00e9t\u00e9".encode()],
          "FP16": [0.5, -2.0, 1024.0, 3.25], "BF16": [0.5, -2.0, 1024.0, 3.25]}


def sample(datatype):
    return SAMPLE.get(datatype, [1, 2, 100, 7])


def raw_bytes(datatype, values):
    if datatype == "BYTES":
        return b"".join(struct.pack("<I", len(v)) + v for v in values)
    if datatype == "BF16":  # the high halves of float32 (the values are exact)
        return (np.array(values, dtype=np.float32).view(np.uint32) >> 16).astype("<u2").tobytes()
    return np.array(values, dtype=ECHO_TYPES[datatype][1]).tobytes()


def from_raw(datatype, data):
    if datatype == "BYTES":
        out, pos = [], 0
        while pos < len(data):
            (n,) = struct.unpack_from("<I", data, pos)
            out.append(data[pos + 4:pos + 4 + n])
            pos += 4 + n
        return out
    if datatype == "BF16":
        return (np.frombuffer(data, dtype="<u2").astype(np.uint32) << 16).view(np.float32).tolist()
    return np.frombuffer(data, dtype=ECHO_TYPES[datatype][1]).tolist()


def echo_model(types):
    """One Identity per datatype: in_<T> [N, 2] -> out_<T>."""
    nodes, inputs, outputs = [], [], []
    for name in types:
        elem = ECHO_TYPES[name][0]
        inputs.append(helper.make_tensor_value_info(f"in_{name}", elem, ["N", 2]))
        outputs.append(helper.make_tensor_value_info(f"out_{name}", elem, ["N", 2]))
        nodes.append(helper.make_node("Identity", [f"in_{name}"], [f"out_{name}"]))
    graph = helper.make_graph(nodes, "echo", inputs, outputs)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


ALL_TYPES = list(ECHO_TYPES)
TYPED_TYPES = [t for t in ALL_TYPES if t in TYPED_FIELD]


def make_repository():
    repo = os.path.join(TMP, "repo")
    for k in (1, 2):
        save(adder_model(k), os.path.join(repo, "adder", str(k), "model.onnx"))
        save(adder_model(k), os.path.join(repo, "split", str(k), "model.onnx"))
    with open(os.path.join(repo, "split", "config.json"), "w") as f:
        json.dump({"traffic": {"1": 50, "2": 50}, "sticky": "X-User-ID"}, f)
    save(adder_model(5), os.path.join(repo, "batched", "1", "model.onnx"))
    with open(os.path.join(repo, "batched", "config.json"), "w") as f:
        json.dump({"max_batch_size": 32, "max_queue_delay_us": 20000}, f)
    save(echo_model(ALL_TYPES), os.path.join(repo, "echo", "1", "model.onnx"))
    save(echo_model(TYPED_TYPES), os.path.join(repo, "echo_typed", "1", "model.onnx"))
    os.makedirs(os.path.join(repo, "iris", "1"))
    shutil.copy(DEMO_MODEL, os.path.join(repo, "iris", "1", "model.onnx"))
    save(slow_model(width=256, depth=24), os.path.join(repo, "slow", "1", "model.onnx"))
    return repo


class GrpcServer:
    """A server with HTTP and gRPC ports, and a stub on the gRPC one."""

    def __init__(self, args):
        self.grpc_port = free_port()
        self.http = Server([*args, "--grpc-port", str(self.grpc_port)])
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.grpc_port}")
        grpc.channel_ready_future(self.channel).result(timeout=TIMEOUT)
        self.stub = pb_grpc.GRPCInferenceServiceStub(self.channel)

    def raw_call(self, method, payload, timeout=TIMEOUT):
        """A unary call with the given request bytes, as no stub would send them."""
        call = self.channel.unary_unary(SERVICE + method if not method.startswith("/") else method)
        return call(payload, timeout=timeout)

    def close(self):
        self.channel.close()
        self.http.close()


def setUpModule():
    global SERVER, REPO
    REPO = make_repository()
    SERVER = GrpcServer(["--repository", REPO, "--max-body", str(1 << 20)])


def tearDownModule():
    report = SERVER.http.sanitizer_report()
    SERVER.close()
    shutil.rmtree(TMP, ignore_errors=True)
    shutil.rmtree(STUBS, ignore_errors=True)
    if report:
        raise AssertionError(f"the server's log has a sanitizer report:\n{report}")


def iris_request(rows, raw=False):
    req = pb.ModelInferRequest(model_name="iris")
    t = req.inputs.add(name="float_input", datatype="FP32", shape=[len(rows), 4])
    flat = [v for row in rows for v in row]
    if raw:
        req.raw_input_contents.append(np.array(flat, dtype="<f4").tobytes())
    else:
        t.contents.fp32_contents.extend(flat)
    return req


IRIS_ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]


class GrpcTestCase(unittest.TestCase):
    def assertStatus(self, fn, code, contains=None):
        with self.assertRaises(grpc.RpcError) as ctx:
            fn()
        err = ctx.exception
        self.assertEqual(err.code(), code, err.details())
        self.assertTrue(err.details(), f"{code} came with an empty message")
        if contains:
            self.assertIn(contains, err.details())
        return err.details()

    def assertStillServing(self):
        r = SERVER.stub.ModelInfer(iris_request(IRIS_ROWS[:1]), timeout=TIMEOUT)
        self.assertEqual(list(r.outputs[0].contents.int64_contents), [0])
        self.assertTrue(SERVER.stub.ServerLive(pb.ServerLiveRequest(), timeout=TIMEOUT).live)


class HealthAndMetadataTest(GrpcTestCase):
    def test_server_live_and_ready(self):
        self.assertTrue(SERVER.stub.ServerLive(pb.ServerLiveRequest(), timeout=TIMEOUT).live)
        self.assertTrue(SERVER.stub.ServerReady(pb.ServerReadyRequest(), timeout=TIMEOUT).ready)

    def test_server_metadata_matches_rest(self):
        r = SERVER.stub.ServerMetadata(pb.ServerMetadataRequest(), timeout=TIMEOUT)
        rest = SERVER.http.get("/v2").json()
        self.assertEqual((r.name, r.version, list(r.extensions)), (rest["name"], rest["version"], rest["extensions"]))

    def test_model_metadata_matches_rest(self):
        for name in ("iris", "echo", "adder"):
            r = SERVER.stub.ModelMetadata(pb.ModelMetadataRequest(name=name), timeout=TIMEOUT)
            rest = SERVER.http.get(f"/v2/models/{name}").json()
            self.assertEqual(r.name, rest["name"])
            self.assertEqual(list(r.versions), rest["versions"])
            self.assertEqual(r.platform, rest["platform"])
            for got, want in ((r.inputs, rest["inputs"]), (r.outputs, rest["outputs"])):
                self.assertEqual([(t.name, t.datatype, list(t.shape)) for t in got],
                                 [(t["name"], t["datatype"], t["shape"]) for t in want])

    def test_model_ready_per_version(self):
        self.assertTrue(SERVER.stub.ModelReady(pb.ModelReadyRequest(name="adder"), timeout=TIMEOUT).ready)
        self.assertTrue(SERVER.stub.ModelReady(pb.ModelReadyRequest(name="adder", version="1"), timeout=TIMEOUT).ready)

    def test_unknown_model_or_version_is_not_found(self):
        self.assertStatus(lambda: SERVER.stub.ModelReady(pb.ModelReadyRequest(name="nope"), timeout=TIMEOUT),
                          grpc.StatusCode.NOT_FOUND, "nope")
        self.assertStatus(lambda: SERVER.stub.ModelMetadata(pb.ModelMetadataRequest(name="adder", version="9"),
                                                            timeout=TIMEOUT), grpc.StatusCode.NOT_FOUND, "9")


class ModelInferTest(GrpcTestCase):
    def rest_iris(self, rows):
        body = {"inputs": [{"name": "float_input", "datatype": "FP32", "shape": [len(rows), 4],
                            "data": [v for row in rows for v in row]}]}
        r = SERVER.http.post("/v2/models/iris/infer", body)
        self.assertEqual(r.status, 200, r.body)
        return {o["name"]: o for o in r.json()["outputs"]}

    def test_typed_contents_answer_typed_like_rest(self):
        r, call = SERVER.stub.ModelInfer.with_call(iris_request(IRIS_ROWS), timeout=TIMEOUT,
                                                   metadata=[("x-request-id", "grpc-test-1")])
        rest = self.rest_iris(IRIS_ROWS)
        self.assertEqual((r.model_name, r.model_version), ("iris", "1"))
        self.assertEqual(len(r.raw_output_contents), 0)
        out = {o.name: o for o in r.outputs}
        self.assertEqual(list(out["output_label"].contents.int64_contents), rest["output_label"]["data"])
        self.assertEqual(list(out["output_label"].shape), rest["output_label"]["shape"])
        prob = out["output_probability"]
        self.assertEqual((prob.datatype, list(prob.shape)), ("FP32", [3, 3]))
        np.testing.assert_allclose(list(prob.contents.fp32_contents), rest["output_probability"]["data"], rtol=1e-6)
        self.assertEqual(json.loads(prob.parameters["keys"].string_param),
                         rest["output_probability"]["parameters"]["keys"])
        headers = dict(call.initial_metadata())
        self.assertEqual(headers["x-request-id"], "grpc-test-1")
        self.assertEqual(headers["x-model-version"], "iris:1")

    def test_raw_contents_answer_raw_with_the_same_values(self):
        typed = SERVER.stub.ModelInfer(iris_request(IRIS_ROWS), timeout=TIMEOUT)
        raw = SERVER.stub.ModelInfer(iris_request(IRIS_ROWS, raw=True), timeout=TIMEOUT)
        self.assertEqual(len(raw.raw_output_contents), 2)
        self.assertEqual(np.frombuffer(raw.raw_output_contents[0], "<i8").tolist(),
                         list(typed.outputs[0].contents.int64_contents))
        self.assertEqual(np.frombuffer(raw.raw_output_contents[1], "<f4").tolist(),
                         list(typed.outputs[1].contents.fp32_contents))

    def test_binary_data_output_parameter_overrides_the_form(self):
        req = iris_request(IRIS_ROWS)
        req.parameters["binary_data_output"].bool_param = True
        r = SERVER.stub.ModelInfer(req, timeout=TIMEOUT)
        self.assertEqual(len(r.raw_output_contents), 2)
        req = iris_request(IRIS_ROWS, raw=True)
        req.parameters["binary_data_output"].bool_param = False
        r = SERVER.stub.ModelInfer(req, timeout=TIMEOUT)
        self.assertEqual((len(r.raw_output_contents), len(r.outputs[0].contents.int64_contents)), (0, 3))

    def test_requested_outputs_only_in_the_order_asked(self):
        req = iris_request(IRIS_ROWS)
        req.outputs.add(name="output_probability")
        r = SERVER.stub.ModelInfer(req, timeout=TIMEOUT)
        self.assertEqual([o.name for o in r.outputs], ["output_probability"])
        self.assertEqual(r.id, "")
        req.id = "abc"
        self.assertEqual(SERVER.stub.ModelInfer(req, timeout=TIMEOUT).id, "abc")

    def test_every_datatype_raw_round_trips(self):
        req = pb.ModelInferRequest(model_name="echo")
        for t in ALL_TYPES:
            req.inputs.add(name=f"in_{t}", datatype=t, shape=[2, 2])
            req.raw_input_contents.append(raw_bytes(t, sample(t)))
        r = SERVER.stub.ModelInfer(req, timeout=TIMEOUT)
        self.assertEqual(len(r.raw_output_contents), len(ALL_TYPES))
        for o, data in zip(r.outputs, r.raw_output_contents):
            t = o.name[len("out_"):]
            self.assertEqual((o.datatype, list(o.shape)), (t, [2, 2]))
            want = sample(t)
            got = from_raw(t, data)
            if t == "BOOL":
                got = [bool(v) for v in got]
            self.assertEqual(got, want, t)

    def test_every_typed_datatype_round_trips_typed(self):
        req = pb.ModelInferRequest(model_name="echo_typed")
        for t in TYPED_TYPES:
            x = req.inputs.add(name=f"in_{t}", datatype=t, shape=[2, 2])
            getattr(x.contents, TYPED_FIELD[t]).extend(sample(t))
        r = SERVER.stub.ModelInfer(req, timeout=TIMEOUT)
        self.assertEqual(len(r.raw_output_contents), 0)
        for o in r.outputs:
            t = o.name[len("out_"):]
            self.assertEqual((o.datatype, list(o.shape)), (t, [2, 2]))
            self.assertEqual(list(getattr(o.contents, TYPED_FIELD[t])), sample(t), t)

    def test_model_version_field_selects_the_version(self):
        for version, bias in (("1", 1.0), ("2", 2.0), ("", 2.0)):
            req = pb.ModelInferRequest(model_name="adder", model_version=version)
            req.inputs.add(name="x", datatype="FP32", shape=[1, 3]).contents.fp32_contents.extend([0, 10, 20])
            r = SERVER.stub.ModelInfer(req, timeout=TIMEOUT)
            self.assertEqual(r.model_version, version or "2")
            self.assertEqual(list(r.outputs[0].contents.fp32_contents), [bias, 10 + bias, 20 + bias])

    def test_traffic_split_and_sticky_users_read_from_metadata(self):
        def version_for(user):
            req = pb.ModelInferRequest(model_name="split")
            req.inputs.add(name="x", datatype="FP32", shape=[1, 3]).contents.fp32_contents.extend([0, 0, 0])
            metadata = [("x-user-id", user)] if user else None
            r = SERVER.stub.ModelInfer(req, timeout=TIMEOUT, metadata=metadata)
            self.assertEqual(r.outputs[0].contents.fp32_contents[0], float(r.model_version))
            return r.model_version
        for user in ("alice", "bob", "carol", "dave"):
            self.assertEqual({version_for(user) for _ in range(5)}, {version_for(user)}, user)
        users = {version_for(f"user{i}") for i in range(40)}
        self.assertEqual(users, {"1", "2"})  # 40 users at 50/50: both versions answer
        self.assertEqual({version_for(None) for _ in range(60)}, {"1", "2"})

    def test_a_deadline_shorter_than_the_run_is_deadline_exceeded(self):
        # 1000 rows stay under this server's --max-body of 1 MiB (2048 rows did
        # not: the core refused them with RESOURCE_EXHAUSTED whenever that came
        # before the 1 ms deadline), and are 1.6 GMAC of work: tens of ms,
        # against a 10 ms deadline that the 1 MB has ample time to beat
        x = np.ones((1000, 256), dtype=np.float32)
        req = pb.ModelInferRequest(model_name="slow")
        req.inputs.add(name="x", datatype="FP32", shape=[1000, 256])
        req.raw_input_contents.append(x.tobytes())
        with self.assertRaises(grpc.RpcError) as ctx:
            SERVER.stub.ModelInfer(req, timeout=0.01)
        self.assertEqual(ctx.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED)
        self.assertStillServing()

    def test_a_slow_model_runs_on_the_workers_beside_fast_calls(self):
        x = np.random.default_rng(1).random((8, 256), dtype=np.float32)
        req = pb.ModelInferRequest(model_name="slow")
        req.inputs.add(name="x", datatype="FP32", shape=[8, 256])
        req.raw_input_contents.append(x.tobytes())
        results = []
        threads = [threading.Thread(target=lambda: results.append(SERVER.stub.ModelInfer(req, timeout=TIMEOUT)))
                   for _ in range(4)]
        for th in threads:
            th.start()
        self.assertStillServing()
        for th in threads:
            th.join(TIMEOUT)
        self.assertEqual(len(results), 4)
        for r in results:
            np.testing.assert_array_equal(np.frombuffer(r.raw_output_contents[0], "<f4").reshape(8, 256), x)


class BatchingTest(GrpcTestCase):
    def test_concurrent_calls_to_a_batching_model_each_get_their_own_rows(self):
        def call(i, results):
            rows = np.arange(3 * (1 + i % 3), dtype=np.float32).reshape(-1, 3) + 100 * i
            req = pb.ModelInferRequest(model_name="batched")
            req.inputs.add(name="x", datatype="FP32", shape=list(rows.shape))
            req.raw_input_contents.append(rows.tobytes())
            r = SERVER.stub.ModelInfer(req, timeout=TIMEOUT)
            results[i] = (rows, np.frombuffer(r.raw_output_contents[0], "<f4").reshape(list(r.outputs[0].shape)))

        results = {}
        threads = [threading.Thread(target=call, args=(i, results)) for i in range(24)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(TIMEOUT)
        self.assertEqual(len(results), 24)
        for rows, out in results.values():
            np.testing.assert_array_equal(out, rows + 5)
        metrics = SERVER.http.get("/metrics").body.decode()
        counts = [line for line in metrics.splitlines()
                  if line.startswith("inferd_batch_size_rows_count") and 'model="batched"' in line]
        self.assertTrue(counts and float(counts[0].split()[-1]) >= 1, "gRPC calls did not go through the batcher")


def metric_sum(server, name, labels):
    text = server.http.get("/metrics").body.decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + "{") and labels in line)


class BatchQueueTest(GrpcTestCase):
    """ModelInfer calls to a batching model wait for their batch without
    holding an inference worker, as REST's V2 requests do."""

    @classmethod
    def setUpClass(cls):
        repo = os.path.join(TMP, "repo-batch-queue")
        save(slow_model(width=256, depth=800), os.path.join(repo, "slowb", "1", "model.onnx"))
        with open(os.path.join(repo, "slowb", "config.json"), "w") as f:
            json.dump({"max_batch_size": 1000, "max_queue_delay_us": 0}, f)
        cls.srv = GrpcServer(["--repository", repo, "--workers", "2", "--max-body", str(8 << 20)])

    @classmethod
    def tearDownClass(cls):
        report = cls.srv.http.sanitizer_report()
        cls.srv.close()
        if report:
            raise AssertionError(report)

    def infer(self, rows):
        req = pb.ModelInferRequest(model_name="slowb")
        req.inputs.add(name="x", datatype="FP32", shape=list(rows.shape))
        req.raw_input_contents.append(rows.astype("<f4").tobytes())
        r = self.srv.stub.ModelInfer(req, timeout=TIMEOUT * 4)
        return np.frombuffer(r.raw_output_contents[0], "<f4").reshape(list(r.outputs[0].shape))

    def occupy(self):
        """Keep the batcher busy with a 1000-row call (about a second) on
        one of the two workers; returns its thread once the batch runs."""
        big = np.full((1000, 256), 0.25, np.float32)
        busy = threading.Thread(target=lambda: self.assertTrue(np.array_equal(self.infer(big), big)))
        busy.start()
        deadline = time.monotonic() + 30 * SLOW
        while metric_sum(self.srv, "inferd_batch_running_rows", 'model="slowb"') != 1000:
            self.assertLess(time.monotonic(), deadline, "the occupying call never ran")
            time.sleep(0.01)
        return busy

    def batches_of_3_to_512_rows(self):
        text = self.srv.http.get("/metrics").body.decode()

        def up_to(n):
            return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                       if line.startswith("inferd_batch_size_rows_bucket{") and 'model="slowb"' in line
                       and f'le="{n}"' in line)
        return up_to(512) - up_to(2)

    def test_calls_queued_behind_a_running_batch_form_one_batch_with_two_workers(self):
        """While one worker runs a 1000-row batch (about a second), 12 calls
        arrive: the other worker queues each and is free for the next, so
        they run together afterwards. A worker blocked per waiting call
        (the old path) would let at most 2 of them share a batch."""
        before = self.batches_of_3_to_512_rows()
        busy = self.occupy()
        rng = np.random.default_rng(5)
        rows = [rng.random((1, 256), dtype=np.float32) for _ in range(12)]
        got = {}
        threads = [threading.Thread(target=lambda i=i: got.__setitem__(i, self.infer(rows[i]))) for i in range(12)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(TIMEOUT * 4)
        busy.join(TIMEOUT * 4)
        self.assertEqual(sorted(got), list(range(12)))
        for i, out in got.items():
            np.testing.assert_array_equal(out, rows[i], err_msg=f"call {i} got another's rows")
        self.assertGreaterEqual(self.batches_of_3_to_512_rows() - before, 1, "no batch of more than 2 rows formed")

    def test_stream_to_a_batching_model_answers_each_request_in_order(self):
        """ModelStreamInfer's requests are queued too: each answer is sent
        by the thread that ran its batch, in the stream's order."""
        rng = np.random.default_rng(6)
        rows = [rng.random((1 + i % 3, 256), dtype=np.float32) for i in range(6)]

        def requests():
            for x in rows:
                req = pb.ModelInferRequest(model_name="slowb", id=f"r{len(x)}")
                req.inputs.add(name="x", datatype="FP32", shape=list(x.shape))
                req.raw_input_contents.append(x.astype("<f4").tobytes())
                yield req
        answers = list(self.srv.stub.ModelStreamInfer(requests(), timeout=TIMEOUT * 4))
        self.assertEqual(len(answers), len(rows))
        for x, a in zip(rows, answers):
            self.assertEqual(a.error_message, "")
            out = np.frombuffer(a.infer_response.raw_output_contents[0], "<f4").reshape(
                list(a.infer_response.outputs[0].shape))
            np.testing.assert_array_equal(out, x)

    def test_deadline_passing_in_the_queue_and_a_cancelled_call_leave_the_server_serving(self):
        """A call whose deadline passes while it waits behind a batch is
        dropped from the queue (DEADLINE_EXCEEDED, counted), and a call the
        client cancels while queued is run and its answer dropped: neither
        breaks the batch or the server (also under ASan)."""
        expired = metric_sum(self.srv, "inferd_batch_deadline_expired_total", 'model="slowb"')
        busy = self.occupy()
        x = np.ones((1, 256), np.float32)
        req = pb.ModelInferRequest(model_name="slowb")
        req.inputs.add(name="x", datatype="FP32", shape=[1, 256])
        req.raw_input_contents.append(x.tobytes())
        cancelled = self.srv.stub.ModelInfer.future(req, timeout=TIMEOUT)
        self.assertStatus(lambda: self.srv.stub.ModelInfer(req, timeout=0.2), grpc.StatusCode.DEADLINE_EXCEEDED)
        cancelled.cancel()
        busy.join(TIMEOUT * 4)
        deadline = time.monotonic() + 10 * SLOW
        while metric_sum(self.srv, "inferd_batch_deadline_expired_total", 'model="slowb"') < expired + 1:
            self.assertLess(time.monotonic(), deadline, "the expired call was not dropped from the queue")
            time.sleep(0.02)
        np.testing.assert_array_equal(self.infer(x), x)


class PipelineTest(GrpcTestCase):
    """A pipeline of the repository answers over gRPC as over REST."""

    @classmethod
    def setUpClass(cls):
        cls.srv = GrpcServer(["--repository", os.path.join(SOURCE, "models", "pipelines")])

    @classmethod
    def tearDownClass(cls):
        report = cls.srv.http.sanitizer_report()
        cls.srv.close()
        if report:
            raise AssertionError(report)

    def test_prep_pred_pipeline_matches_rest(self):
        stub = self.srv.stub
        md = stub.ModelMetadata(pb.ModelMetadataRequest(name="iris_prep_pred"), timeout=TIMEOUT)
        self.assertEqual((md.platform, list(md.versions)), ("inferd_pipeline", ["1"]))
        self.assertTrue(stub.ModelReady(pb.ModelReadyRequest(name="iris_prep_pred"), timeout=TIMEOUT).ready)
        req = pb.ModelInferRequest(model_name="iris_prep_pred")
        req.inputs.add(name="x", datatype="FP32", shape=[2, 4]).contents.fp32_contents.extend(
            IRIS_ROWS[0] + IRIS_ROWS[1])
        r, call = stub.ModelInfer.with_call(req, timeout=TIMEOUT)
        rest = self.srv.http.post("/v2/models/iris_prep_pred/infer", {"inputs": [
            {"name": "x", "datatype": "FP32", "shape": [2, 4], "data": IRIS_ROWS[0] + IRIS_ROWS[1]}]}).json()
        self.assertEqual((r.model_name, r.model_version), ("iris_prep_pred", "1"))
        np.testing.assert_allclose(list(r.outputs[0].contents.fp32_contents), rest["outputs"][0]["data"], rtol=1e-6)
        self.assertEqual(dict(call.initial_metadata())["x-model-version"], "iris_prep_pred:1")

    def test_pipeline_bad_input_and_version(self):
        stub = self.srv.stub
        req = pb.ModelInferRequest(model_name="iris_prep_pred")
        req.inputs.add(name="x", datatype="FP32", shape=[1, 3]).contents.fp32_contents.extend([1, 2, 3])
        self.assertStatus(lambda: stub.ModelInfer(req, timeout=TIMEOUT), grpc.StatusCode.INVALID_ARGUMENT, "'x'")
        req.model_version = "2"
        self.assertStatus(lambda: stub.ModelInfer(req, timeout=TIMEOUT), grpc.StatusCode.NOT_FOUND, "only version 1")


def make_certificates(d):
    """A CA, a server certificate for localhost/127.0.0.1 and a client
    certificate, all signed by the CA (openssl, EC P-256)."""
    os.makedirs(d, exist_ok=True)

    def run(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=d)
    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
        "-subj", "/CN=inferd test CA", "-keyout", "ca.key", "-out", "ca.pem")
    for who, san in (("server", "subjectAltName=DNS:localhost,IP:127.0.0.1"), ("client", "subjectAltName=DNS:client")):
        run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", f"/CN={who}",
            "-keyout", f"{who}.key", "-out", f"{who}.csr")
        with open(os.path.join(d, f"{who}.ext"), "w") as f:
            f.write(san + "\n")
        run("x509", "-req", "-in", f"{who}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "2", "-extfile", f"{who}.ext", "-out", f"{who}.pem")
    pem = {}
    for name in ("ca.pem", "server.pem", "server.key", "client.pem", "client.key"):
        with open(os.path.join(d, name), "rb") as f:
            pem[name] = f.read()
    return pem


class TlsTest(GrpcTestCase):
    """--grpc-tls-cert/--grpc-tls-key (and --grpc-tls-client-ca): the same
    service over TLS, checked by grpcio's own TLS client."""

    @classmethod
    def setUpClass(cls):
        cls.dir = os.path.join(TMP, "tls")
        cls.pem = make_certificates(cls.dir)

    def path(self, name):
        return os.path.join(self.dir, name)

    def start(self, *extra):
        port = free_port()
        srv = Server([DEMO_MODEL, "--name", "iris", "--grpc-port", str(port), "--grpc-tls-cert",
                      self.path("server.pem"), "--grpc-tls-key", self.path("server.key"), *extra])
        return srv, port

    def channel(self, port, client_cert=False):
        creds = grpc.ssl_channel_credentials(
            root_certificates=self.pem["ca.pem"],
            private_key=self.pem["client.key"] if client_cert else None,
            certificate_chain=self.pem["client.pem"] if client_cert else None)
        return grpc.secure_channel(f"127.0.0.1:{port}", creds,
                                   options=[("grpc.ssl_target_name_override", "localhost")])

    def infer(self, channel, timeout=TIMEOUT):
        return pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(iris_request(IRIS_ROWS[:2]), timeout=timeout)

    def test_inference_over_tls_and_plaintext_refused(self):
        srv, port = self.start()
        try:
            self.assertIn("protocol=grpc+tls", srv.log())
            with self.channel(port) as ch:
                self.assertEqual(list(self.infer(ch).outputs[0].contents.int64_contents), [0, 2])
            with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
                with self.assertRaises(grpc.RpcError) as ctx:
                    self.infer(ch, timeout=5 * SLOW)
                self.assertEqual(ctx.exception.code(), grpc.StatusCode.UNAVAILABLE)
            with self.channel(port) as ch:  # still serving TLS after the plaintext attempt
                self.assertEqual(list(self.infer(ch).outputs[0].contents.int64_contents), [0, 2])
            self.assertEqual(srv.stop(), 0)
            self.assertIsNone(srv.sanitizer_report())
        finally:
            srv.close()

    def test_client_certificates_required_when_a_client_ca_is_given(self):
        srv, port = self.start("--grpc-tls-client-ca", self.path("ca.pem"))
        try:
            with self.channel(port, client_cert=False) as ch:
                with self.assertRaises(grpc.RpcError) as ctx:
                    self.infer(ch, timeout=5 * SLOW)
                self.assertEqual(ctx.exception.code(), grpc.StatusCode.UNAVAILABLE)
            with self.channel(port, client_cert=True) as ch:
                self.assertEqual(list(self.infer(ch).outputs[0].contents.int64_contents), [0, 2])
        finally:
            srv.close()

    def test_a_bad_key_or_missing_file_stops_the_start_with_a_message(self):
        for key, words in ((self.path("client.key"), "not a valid PEM pair"),
                           (self.path("missing.key"), "cannot read the PEM file")):
            srv = Server([DEMO_MODEL, "--grpc-port", str(free_port()), "--grpc-tls-cert", self.path("server.pem"),
                          "--grpc-tls-key", key], ready=False)
            try:
                self.assertEqual(srv.proc.wait(TIMEOUT), 1)
                self.assertIn(words, srv.log())
            finally:
                srv.close()


class StreamInferTest(GrpcTestCase):
    def test_stream_answers_each_request_in_order_and_survives_a_bad_one(self):
        bad = pb.ModelInferRequest(model_name="iris")
        bad.inputs.add(name="float_input", datatype="FP32", shape=[1, 4]).contents.fp32_contents.extend([1, 2])
        requests = [iris_request(IRIS_ROWS[:1]), bad, pb.ModelInferRequest(model_name="nope"),
                    iris_request(IRIS_ROWS[1:2], raw=True)]
        for i, r in enumerate(requests):
            r.id = str(i)
        answers = list(SERVER.stub.ModelStreamInfer(iter(requests), timeout=TIMEOUT))
        self.assertEqual(len(answers), 4)
        self.assertEqual(answers[0].error_message, "")
        self.assertEqual((answers[0].infer_response.id, list(answers[0].infer_response.outputs[0].contents.int64_contents)),
                         ("0", [0]))
        self.assertIn("4 elements", answers[1].error_message)
        self.assertIn("nope", answers[2].error_message)
        self.assertEqual(answers[3].infer_response.id, "3")
        self.assertEqual(np.frombuffer(answers[3].infer_response.raw_output_contents[0], "<i8").tolist(), [2])
        self.assertStillServing()

    def test_an_empty_stream_ends_ok(self):
        self.assertEqual(list(SERVER.stub.ModelStreamInfer(iter([]), timeout=TIMEOUT)), [])


class BadInputTest(GrpcTestCase):
    def test_malformed_protobuf_is_invalid_argument_with_a_message(self):
        for method in ("ModelInfer", "ModelMetadata", "ModelReady"):
            for payload in (b"\xff\xff\xff\xff", b"\x0a\x10abc", b"\x2a\x05\x0a\x03"):
                self.assertStatus(lambda: SERVER.raw_call(method, payload), grpc.StatusCode.INVALID_ARGUMENT,
                                  "protobuf")
        self.assertStillServing()

    def test_raw_size_that_disagrees_with_shape_is_invalid_argument(self):
        req = iris_request(IRIS_ROWS[:2], raw=True)
        req.raw_input_contents[0] = req.raw_input_contents[0][:-4]
        self.assertStatus(lambda: SERVER.stub.ModelInfer(req, timeout=TIMEOUT), grpc.StatusCode.INVALID_ARGUMENT,
                          "raw_input_contents[0] is 28 bytes but shape and datatype FP32 need 32")
        # a BYTES element whose length prefix runs past the entry
        req = pb.ModelInferRequest(model_name="echo")
        for t in ALL_TYPES:
            req.inputs.add(name=f"in_{t}", datatype=t, shape=[2, 2])
            req.raw_input_contents.append(raw_bytes(t, sample(t)))
        req.raw_input_contents[ALL_TYPES.index("BYTES")] = struct.pack("<I", 1000) + b"short"
        self.assertStatus(lambda: SERVER.stub.ModelInfer(req, timeout=TIMEOUT), grpc.StatusCode.INVALID_ARGUMENT,
                          "in_BYTES")
        self.assertStillServing()

    def test_signature_mismatches_are_invalid_argument_naming_the_input(self):
        cases = []
        r = iris_request(IRIS_ROWS[:1]); r.inputs[0].datatype = "FP64"; cases.append((r, "float_input"))
        r = iris_request(IRIS_ROWS[:1]); r.inputs[0].shape[:] = [1, 5]; cases.append((r, "float_input"))
        r = iris_request(IRIS_ROWS[:1]); r.inputs[0].name = "x"; cases.append((r, "has no input 'x'"))
        r = iris_request(IRIS_ROWS[:1]); r.inputs[0].datatype = "FLOAT"; cases.append((r, "unknown datatype"))
        r = iris_request(IRIS_ROWS[:1]); r.inputs[0].contents.fp32_contents.append(1.0); cases.append((r, "4 elements"))
        r = iris_request(IRIS_ROWS[:1]); r.inputs[0].ClearField("contents"); cases.append((r, "neither contents"))
        r = iris_request(IRIS_ROWS[:1]); r.outputs.add(name="nope"); cases.append((r, "has no output 'nope'"))
        r = iris_request(IRIS_ROWS[:1]); r.inputs.add().CopyFrom(r.inputs[0]); cases.append((r, "given twice"))
        r = iris_request(IRIS_ROWS[:1], raw=True); r.raw_input_contents.append(b"x"); cases.append((r, "2 entries"))
        r = pb.ModelInferRequest(model_name="iris"); cases.append((r, "no inputs"))
        r = pb.ModelInferRequest(model_name="echo_typed")
        x = r.inputs.add(name="in_INT8", datatype="INT8", shape=[1, 2]); x.contents.int_contents.extend([1, 300])
        cases.append((r, "out of range for INT8"))
        r = pb.ModelInferRequest(model_name="echo_typed")
        x = r.inputs.add(name="in_INT32", datatype="INT32", shape=[1, 2]); x.contents.fp32_contents.extend([1, 3])
        cases.append((r, "takes int_contents"))
        for req, words in cases:
            self.assertStatus(lambda: SERVER.stub.ModelInfer(req, timeout=TIMEOUT), grpc.StatusCode.INVALID_ARGUMENT,
                              words)
        self.assertStillServing()

    def test_an_empty_typed_tensor_is_answered_and_the_server_lives(self):
        # shape [0, 4] with no elements: protobuf-c gives a NULL array (the
        # fuzzer's first find: UBSan stopped the server on memcpy(NULL))
        req = pb.ModelInferRequest(model_name="echo_typed")
        for t in TYPED_TYPES:
            req.inputs.add(name=f"in_{t}", datatype=t, shape=[0, 2]).contents.SetInParent()
        r = SERVER.stub.ModelInfer(req, timeout=TIMEOUT)
        self.assertEqual([list(o.shape) for o in r.outputs], [[0, 2]] * len(TYPED_TYPES))
        self.assertStillServing()

    def test_unknown_model_is_not_found(self):
        req = iris_request(IRIS_ROWS[:1])
        req.model_name = "no_such_model"
        self.assertStatus(lambda: SERVER.stub.ModelInfer(req, timeout=TIMEOUT), grpc.StatusCode.NOT_FOUND,
                          "no_such_model")
        req.model_name, req.model_version = "iris", "7"
        self.assertStatus(lambda: SERVER.stub.ModelInfer(req, timeout=TIMEOUT), grpc.StatusCode.NOT_FOUND, "7")
        self.assertStillServing()

    def test_message_over_the_limit_is_resource_exhausted(self):
        req = pb.ModelInferRequest(model_name="slow")
        req.inputs.add(name="x", datatype="FP32", shape=[1100, 256])
        req.raw_input_contents.append(bytes(1100 * 256 * 4))  # 1.1 MB > --max-body 1 MiB
        self.assertStatus(lambda: SERVER.stub.ModelInfer(req, timeout=TIMEOUT),
                          grpc.StatusCode.RESOURCE_EXHAUSTED)
        self.assertStillServing()

    def test_unregistered_method_is_unimplemented_at_once(self):
        for method in (SERVICE + "RepositoryIndex", "/inference.Other/ModelInfer", "/x"):
            start = time.monotonic()
            self.assertStatus(lambda: SERVER.raw_call(method, b"", timeout=5 * SLOW),
                              grpc.StatusCode.UNIMPLEMENTED, "not a method")
            self.assertLess(time.monotonic() - start, 2 * SLOW)
        # a streaming call to an unknown method is refused too
        stream = SERVER.channel.stream_stream(SERVICE + "NoSuchStream")
        with self.assertRaises(grpc.RpcError) as ctx:
            list(stream(iter([b"a", b"b"]), timeout=5 * SLOW))
        self.assertEqual(ctx.exception.code(), grpc.StatusCode.UNIMPLEMENTED)
        self.assertStillServing()


class OperationsTest(GrpcTestCase):
    def test_metrics_count_grpc_requests_with_their_protocol(self):
        def count(code):
            text = SERVER.http.get("/metrics").body.decode()
            for line in text.splitlines():
                if line.startswith("inferd_requests_total{") and 'model="iris"' in line and \
                        f'code="{code}"' in line and 'protocol="grpc"' in line:
                    return float(line.rsplit(" ", 1)[1])
            return 0.0
        ok, bad = count(200), count(400)
        SERVER.stub.ModelInfer(iris_request(IRIS_ROWS[:1]), timeout=TIMEOUT)
        req = iris_request(IRIS_ROWS[:1]); req.inputs[0].shape[:] = [1, 3]
        with self.assertRaises(grpc.RpcError):
            SERVER.stub.ModelInfer(req, timeout=TIMEOUT)
        self.assertEqual(count(200), ok + 1)
        self.assertEqual(count(400), bad + 1)
        promtool = shutil.which("promtool")
        if promtool:
            text = SERVER.http.get("/metrics").body
            p = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, timeout=60)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def test_access_log_has_a_line_per_call(self):
        SERVER.stub.ModelInfer(iris_request(IRIS_ROWS[:1]), timeout=TIMEOUT, metadata=[("x-request-id", "logged-42")])
        deadline = time.monotonic() + TIMEOUT
        while "logged-42" not in SERVER.http.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        line = next(l for l in SERVER.http.log().splitlines() if "logged-42" in l)
        self.assertIn("path=/inference.GRPCInferenceService/ModelInfer", line)
        self.assertIn("grpc_status=OK", line)
        self.assertIn("model=iris", line)

    def test_grpc_is_off_unless_asked(self):
        srv = Server([DEMO_MODEL])
        try:
            self.assertNotIn("protocol=grpc", srv.log())
        finally:
            srv.close()

    def test_port_in_use_stops_the_start_with_a_message(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen()
            port = s.getsockname()[1]
            srv = Server([DEMO_MODEL, "--grpc-port", str(port)], ready=False)
            try:
                self.assertEqual(srv.proc.wait(TIMEOUT), 1)
                self.assertIn("cannot listen for gRPC", srv.log())
            finally:
                srv.close()

    def test_sigterm_finishes_the_call_in_flight_then_exits_0(self):
        srv = GrpcServer(["--repository", REPO, "--grace", str(30 * SLOW)])
        try:
            # about 3 GFLOP: still running when the signal comes
            x = np.ones((2048, 256), dtype=np.float32)
            req = pb.ModelInferRequest(model_name="slow")
            req.inputs.add(name="x", datatype="FP32", shape=[2048, 256])
            req.raw_input_contents.append(x.tobytes())
            future = srv.stub.ModelInfer.future(req, timeout=TIMEOUT)
            deadline = time.monotonic() + TIMEOUT
            # in flight: the call and this /metrics request
            while "inferd_requests_in_flight 2" not in srv.http.get("/metrics").body.decode():
                self.assertLess(time.monotonic(), deadline, "the call never arrived")
                time.sleep(0.005)
            srv.http.proc.send_signal(signal.SIGTERM)
            r = future.result(timeout=TIMEOUT)
            np.testing.assert_array_equal(np.frombuffer(r.raw_output_contents[0], "<f4"), x.ravel())
            self.assertEqual(srv.http.proc.wait(TIMEOUT), 0, srv.http.log())
            log = srv.http.log()
            self.assertLess(log.index("stopping"), log.index("path=/inference.GRPCInferenceService/ModelInfer"),
                            "the call was answered before the signal: nothing was in flight")
            self.assertIn("stopped", log)
            self.assertIsNone(srv.http.sanitizer_report())
        finally:
            srv.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
