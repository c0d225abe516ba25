#!/usr/bin/python3
"""Integration tests of `inferd serve`'s APIs on a real server on 127.0.0.1:
the book's FastAPI API (byte for byte on the book's own model), KServe V2
with JSON and binary tensors, TensorFlow Serving's REST API, request ids,
/metrics (through `promtool check metrics`), /openapi.json (through
@apidevtools/swagger-parser) and /docs, and the bad-input list of issue 3,
each followed by a request that must still succeed.

Run: INFERD=build/inferd /usr/bin/python3 tests/serve/test_serve.py
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_harness import (BOOK, DEMO_LABELS, DEMO_MODEL, ECHO_TYPES, INFERD, REQUIRED, SLOW, SOURCE, Server,  # noqa: E402
                           echo_model, parse_v2_bytes, save, skip_or_fail, two_input_model, v2_binary_request,
                           v2_binary_response, v2_bytes, v2_raw)

BOOK_MODEL = os.path.join(BOOK, "iris_svc.onnx")
BOOK_LABELS = os.path.join(BOOK, "label.json")
HAVE_BOOK = os.path.exists(BOOK_MODEL) and os.path.exists(BOOK_LABELS)
SAMPLE = [[5.1, 3.5, 1.4, 0.2]]
OTHER = [[1.0, 2.0, 3.0, 4.0]]

_servers = {}
_tmp = None


def tmpdir():
    global _tmp
    if _tmp is None:
        _tmp = tempfile.mkdtemp(prefix="inferd-serve-test-")
    return _tmp


def shared(key, args):
    """One server per configuration for the whole module (started on first use)."""
    if key not in _servers:
        _servers[key] = Server(args)
    return _servers[key]


def demo():
    return shared("demo", [DEMO_MODEL, "--labels", DEMO_LABELS, "--workers", "2"])


def echo():
    path = os.path.join(tmpdir(), "echo.onnx")
    if not os.path.exists(path):
        save(echo_model(), path)
    return shared("echo", [path, "--workers", "2"])


def tearDownModule():
    failures = []
    for key, srv in _servers.items():
        rc = srv.stop()
        report = srv.sanitizer_report()
        if rc != 0 or report:
            failures.append(f"server '{key}' exited with {rc}:\n{srv.log()[-4000:]}")
        srv.close()
    if _tmp:
        shutil.rmtree(_tmp, ignore_errors=True)
    if failures:
        raise AssertionError("\n".join(failures))


class ServeTestCase(unittest.TestCase):
    def assertError(self, r, status, contains=None):
        """A 4xx/5xx answer with a JSON body {"error": "..."}."""
        self.assertEqual(r.status, status, r)
        self.assertTrue(r.headers.get("content-type", "").startswith("application/json"), r)
        body = r.json()
        self.assertIsInstance(body.get("error"), str, r)
        self.assertTrue(body["error"], r)
        if contains:
            for text in [contains] if isinstance(contains, str) else contains:
                self.assertIn(text, body["error"])
        return body["error"]

    def assertStillServing(self, srv):
        r = srv.post("/predict", {"data": SAMPLE})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(len(r.json()["prediction"]), 3)

    def assertClose(self, got, want, tol=1e-5):
        self.assertEqual(np.shape(got), np.shape(want), (got, want))
        self.assertTrue(np.allclose(np.asarray(got, float), np.asarray(want, float), rtol=0, atol=tol),
                        f"{got} != {want} (tolerance {tol})")


# ---- the book's API ---------------------------------------------------------

@unittest.skipUnless(HAVE_BOOK, f"the book's model files are not in {BOOK} (set INFERD_BOOK_DIR)")
class BookModelTest(ServeTestCase):
    """inferd serve ../shared/book/iris_svc.onnx --labels ../shared/book/label.json
    must answer as the book's FastAPI server does (its README)."""

    @classmethod
    def setUpClass(cls):
        cls.srv = shared("book", [BOOK_MODEL, "--labels", BOOK_LABELS])

    def test_health_is_byte_for_byte(self):
        r = self.srv.get("/health")
        self.assertEqual((r.status, r.body), (200, b'{"health":"ok"}'))
        self.assertEqual(r.headers["content-type"], "application/json")

    def test_metadata_is_byte_for_byte(self):
        r = self.srv.get("/metadata")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, b'{"data_type":"float32","data_structure":"(1,4)","data_sample":[[5.1,3.5,1.4,0.2]],'
                                 b'"prediction_type":"float32","prediction_structure":"(1,3)",'
                                 b'"prediction_sample":[0.97093159,0.01558308,0.01348537]}')

    def test_label_is_what_fastapi_sends_for_the_label_file(self):
        r = self.srv.get("/label")
        self.assertEqual(r.status, 200)
        with open(BOOK_LABELS) as f:
            labels = json.load(f)
        # FastAPI re-encodes the dict it loaded: compact, in file order
        self.assertEqual(r.body, json.dumps(labels, separators=(",", ":"), ensure_ascii=False).encode())
        self.assertEqual(r.body, b'{"0":"setosa","1":"versicolor","2":"virginica"}')

    def test_predict_test_matches_the_published_probabilities(self):
        r = self.srv.get("/predict/test")
        self.assertEqual(r.status, 200)
        self.assertClose(r.json()["prediction"], [0.9709315896034241, 0.015583082102239132, 0.013485366478562355])
        # the book's exact text: float32 values printed as Python prints floats
        self.assertRegex(r.body.decode(), r'^\{"prediction":\[0\.97093\d+,0\.01558\d+,0\.01348\d+\]\}$')

    def test_predict_test_label(self):
        r = self.srv.get("/predict/test/label")
        self.assertEqual((r.status, r.body), (200, b'{"prediction":"setosa"}'))

    def test_predict_and_predict_label_on_the_books_second_row(self):
        r = self.srv.post("/predict", {"data": OTHER})
        self.assertEqual(r.status, 200, r)
        self.assertClose(r.json()["prediction"], [0.36133, 0.25747, 0.38119], tol=1.5e-5)
        r = self.srv.post("/predict/label", {"data": OTHER})
        self.assertEqual((r.status, r.body), (200, b'{"prediction":"virginica"}'))

    def test_empty_object_predicts_the_sample_row(self):
        self.assertEqual(self.srv.post("/predict", {}).body, self.srv.get("/predict/test").body)
        self.assertEqual(self.srv.post("/predict/label", {}).body, b'{"prediction":"setosa"}')

    def test_many_rows_match_onnx_runtime_on_the_books_batch_data(self):
        with open(os.path.join(BOOK, "data.json")) as f:
            data = json.load(f)
        with open(os.path.join(BOOK, "data.expected.json")) as f:
            expected = json.load(f)
        rows = data if isinstance(data, list) else data["data"]
        rows = rows[:200]
        probs = np.array(expected["probabilities"]["data"], dtype=np.float64).reshape(expected["probabilities"]["dims"])
        r = self.srv.post("/predict", {"data": rows})
        self.assertEqual(r.status, 200, r)
        got = r.json()["prediction"]
        self.assertEqual(len(got), len(rows), "one list per row")
        self.assertClose(got, probs[:len(rows)])
        r = self.srv.post("/predict/label", {"data": rows})
        names = ["setosa", "versicolor", "virginica"]
        self.assertEqual(r.json()["prediction"], [names[int(i)] for i in probs[:len(rows)].argmax(axis=1)])
        # the same rows through KServe V2: labels exactly, probabilities to 1e-5
        flat = [x for row in rows for x in row]
        r = self.srv.post("/v2/models/iris_svc/infer", {"inputs": [
            {"name": "float_input", "shape": [len(rows), 4], "datatype": "FP32", "data": flat}]})
        self.assertEqual(r.status, 200, r)
        outs = {o["name"]: o for o in r.json()["outputs"]}
        self.assertEqual(outs["output_label"]["data"], expected["output_label"]["data"][:len(rows)])
        self.assertEqual(outs["output_probability"]["shape"], [len(rows), 3])
        self.assertClose(np.reshape(outs["output_probability"]["data"], (-1, 3)), probs[:len(rows)])

    def test_tf_serving_api_on_the_books_model(self):
        r = self.srv.post("/v1/models/iris_svc:predict", {"instances": SAMPLE + OTHER})
        self.assertEqual(r.status, 200, r)
        preds = r.json()["predictions"]
        self.assertEqual([p["output_label"] for p in preds], [0, 2])
        self.assertClose([preds[0]["output_probability"][k] for k in "012"],
                         [0.9709315896034241, 0.015583082102239132, 0.013485366478562355])


class BundledModelBookApiTest(ServeTestCase):
    """The same routes on the bundled models/iris_svc.onnx (scikit-learn's
    numbers in models/README.md)."""

    @classmethod
    def setUpClass(cls):
        cls.srv = demo()

    def test_book_routes(self):
        self.assertEqual(self.srv.get("/health").body, b'{"health":"ok"}')
        meta = self.srv.get("/metadata").json()
        self.assertEqual(meta["data_type"], "float32")
        self.assertEqual(meta["data_structure"], "(1,4)")
        self.assertEqual(meta["data_sample"], SAMPLE)
        self.assertEqual(meta["prediction_structure"], "(1,3)")
        self.assertClose(meta["prediction_sample"], [0.96691001, 0.01850655, 0.01458344])
        self.assertEqual(self.srv.get("/label").body, b'{"0":"setosa","1":"versicolor","2":"virginica"}')
        self.assertClose(self.srv.get("/predict/test").json()["prediction"], [0.96691001, 0.01850655, 0.01458344])
        self.assertEqual(self.srv.get("/predict/test/label").body, b'{"prediction":"setosa"}')
        r = self.srv.post("/predict", {"data": OTHER})
        self.assertClose(r.json()["prediction"], [0.32250939, 0.25931662, 0.41817399])
        self.assertEqual(self.srv.post("/predict/label", {"data": OTHER}).body, b'{"prediction":"virginica"}')
        self.assertEqual(self.srv.post("/predict", {}).body, self.srv.get("/predict/test").body)

    def test_several_rows_get_one_answer_per_row(self):
        r = self.srv.post("/predict", {"data": SAMPLE + OTHER})
        got = r.json()["prediction"]
        self.assertClose(got, [[0.96691001, 0.01850655, 0.01458344], [0.32250939, 0.25931662, 0.41817399]])
        r = self.srv.post("/predict/label", {"data": SAMPLE + OTHER + SAMPLE})
        self.assertEqual(r.json(), {"prediction": ["setosa", "virginica", "setosa"]})

    def test_integers_are_accepted_as_float_rows(self):
        r = self.srv.post("/predict", {"data": [[1, 2, 3, 4]]})
        self.assertClose(r.json()["prediction"], [0.32250939, 0.25931662, 0.41817399])

    def test_head_answers_like_get_without_a_body(self):
        r = self.srv.request("HEAD", "/health")
        self.assertEqual((r.status, r.body), (200, b""))

    def test_keep_alive_serves_many_requests_on_one_connection(self):
        conn = self.srv.connection()
        try:
            for _ in range(20):
                conn.request("POST", "/predict", body=json.dumps({"data": SAMPLE}),
                             headers={"Content-Type": "application/json"})
                r = conn.getresponse()
                self.assertEqual(r.status, 200)
                r.read()
        finally:
            conn.close()


# ---- KServe V2 -----------------------------------------------------------------

class KServeV2Test(ServeTestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = demo()

    def infer(self, body, path="/v2/models/iris_svc/infer", **kw):
        return self.srv.post(path, body, **kw)

    def test_server_metadata_and_health(self):
        r = self.srv.get("/v2")
        self.assertEqual(r.status, 200)
        meta = r.json()
        self.assertEqual(meta["name"], "inferd")
        self.assertIsInstance(meta["version"], str)
        self.assertIn("binary_tensor_data", meta["extensions"])
        self.assertEqual(self.srv.get("/v2/health/live").status, 200)
        self.assertEqual(self.srv.get("/v2/health/ready").status, 200)
        self.assertEqual(self.srv.get("/v2/health/live").json(), {"live": True})
        self.assertEqual(self.srv.get("/v2/health/ready").json(), {"ready": True})

    def test_model_metadata_with_and_without_version(self):
        for path in ("/v2/models/iris_svc", "/v2/models/iris_svc/versions/1"):
            r = self.srv.get(path)
            self.assertEqual(r.status, 200, r)
            meta = r.json()
            self.assertEqual(meta["name"], "iris_svc")
            self.assertEqual(meta["versions"], ["1"])
            self.assertEqual(meta["platform"], "onnx")
            self.assertEqual(meta["inputs"], [{"name": "float_input", "datatype": "FP32", "shape": [-1, 4]}])
            self.assertEqual([o["name"] for o in meta["outputs"]], ["output_label", "output_probability"])
            self.assertEqual(meta["outputs"][0]["datatype"], "INT64")

    def test_model_ready(self):
        for path in ("/v2/models/iris_svc/ready", "/v2/models/iris_svc/versions/1/ready"):
            r = self.srv.get(path)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json()["ready"], True)

    def test_infer_json_all_outputs_and_id_echo(self):
        r = self.infer({"id": "req-42", "inputs": [
            {"name": "float_input", "shape": [2, 4], "datatype": "FP32", "data": SAMPLE[0] + OTHER[0]}]})
        self.assertEqual(r.status, 200, r)
        body = r.json()
        self.assertEqual(body["id"], "req-42")
        self.assertEqual(body["model_name"], "iris_svc")
        self.assertEqual(body["model_version"], "1")
        outs = {o["name"]: o for o in body["outputs"]}
        self.assertEqual(outs["output_label"], {"name": "output_label", "datatype": "INT64", "shape": [2], "data": [0, 2]})
        prob = outs["output_probability"]
        self.assertEqual((prob["datatype"], prob["shape"]), ("FP32", [2, 3]))
        self.assertClose(prob["data"], [0.96691001, 0.01850655, 0.01458344, 0.32250939, 0.25931662, 0.41817399])
        self.assertNotIn("id", self.infer({"inputs": [
            {"name": "float_input", "shape": [1, 4], "datatype": "FP32", "data": SAMPLE}]}).json())

    def test_infer_nested_data_and_versioned_path(self):
        r = self.infer({"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32", "data": SAMPLE}]},
                       path="/v2/models/iris_svc/versions/1/infer")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["outputs"][0]["data"], [0])

    def test_requested_outputs_only_and_in_order(self):
        r = self.infer({"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32", "data": SAMPLE[0]}],
                        "outputs": [{"name": "output_probability"}]})
        self.assertEqual(r.status, 200, r)
        self.assertEqual([o["name"] for o in r.json()["outputs"]], ["output_probability"])
        r = self.infer({"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32", "data": SAMPLE[0]}],
                        "outputs": [{"name": "output_probability"}, {"name": "output_label"}]})
        self.assertEqual([o["name"] for o in r.json()["outputs"]], ["output_probability", "output_label"])
        r = self.infer({"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32", "data": SAMPLE[0]}],
                        "outputs": [{"name": "nope"}]})
        self.assertError(r, 400, "nope")

    def test_binary_input_and_binary_outputs(self):
        x = np.array(SAMPLE + OTHER, dtype=np.float32)
        body, headers = v2_binary_request(
            {"inputs": [{"name": "float_input", "shape": [2, 4], "datatype": "FP32",
                         "parameters": {"binary_data_size": x.nbytes}}],
             "parameters": {"binary_data_output": True}}, [x.tobytes()])
        r = self.srv.post("/v2/models/iris_svc/infer", body, headers=headers)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.headers["content-type"], "application/octet-stream")
        header, blobs = v2_binary_response(r)
        self.assertEqual(np.frombuffer(blobs["output_label"], dtype=np.int64).tolist(), [0, 2])
        self.assertClose(np.frombuffer(blobs["output_probability"], dtype=np.float32).reshape(2, 3),
                         [[0.96691001, 0.01850655, 0.01458344], [0.32250939, 0.25931662, 0.41817399]])
        for out in header["outputs"]:
            self.assertNotIn("data", out)

    def test_binary_output_per_output_choice(self):
        r = self.infer({"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32", "data": SAMPLE[0]}],
                        "outputs": [{"name": "output_label", "parameters": {"binary_data": True}},
                                    {"name": "output_probability", "parameters": {"binary_data": False}}]})
        self.assertEqual(r.status, 200, r)
        header, blobs = v2_binary_response(r)
        self.assertEqual(list(blobs), ["output_label"])
        self.assertEqual(np.frombuffer(blobs["output_label"], dtype=np.int64).tolist(), [0])
        self.assertEqual(len(header["outputs"][1]["data"]), 3)

    def test_binary_input_with_json_output(self):
        x = np.array(OTHER, dtype=np.float32)
        body, headers = v2_binary_request(
            {"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32",
                         "parameters": {"binary_data_size": x.nbytes}}]}, [x.tobytes()])
        headers.pop("Content-Type")  # Triton's clients send none
        r = self.srv.post("/v2/models/iris_svc/infer", body, headers=headers)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.headers["content-type"], "application/json")
        self.assertNotIn("inference-header-content-length", r.headers)
        self.assertEqual(r.json()["outputs"][0]["data"], [2])

    def test_error_codes(self):
        good = {"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32", "data": SAMPLE[0]}]}
        self.assertError(self.infer(good, path="/v2/models/nope/infer"), 404, "nope")
        self.assertError(self.infer(good, path="/v2/models/iris_svc/versions/7/infer"), 404, "7")
        self.assertError(self.srv.get("/v2/models/nope"), 404)
        self.assertError(self.srv.get("/v2/models/nope/ready"), 404)
        self.assertError(self.srv.get("/v2/models/iris_svc/versions/7"), 404)
        self.assertError(self.srv.get("/v2/models/iris_svc/infer"), 405)
        self.assertError(self.infer({"inputs": []}), 400)
        self.assertError(self.infer({"inputs": [{"name": "other", "shape": [1, 4], "datatype": "FP32",
                                                 "data": SAMPLE[0]}]}), 400, "other")
        self.assertError(self.infer({"id": 5, **good}), 400, "id")
        self.assertError(self.infer({"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32"}]}), 400)
        self.assertError(self.infer({"inputs": [{"name": "float_input", "shape": [1, -4], "datatype": "FP32",
                                                 "data": SAMPLE[0]}]}), 400, "shape")
        self.assertError(self.infer({"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP33",
                                                 "data": SAMPLE[0]}]}), 400, "FP33")
        self.assertError(self.infer({"inputs": [good["inputs"][0], good["inputs"][0]]}), 400, "twice")
        self.assertStillServing(self.srv)


class KServeV2DatatypesTest(ServeTestCase):
    """Every V2 datatype through an Identity model, as JSON and as binary."""

    @classmethod
    def setUpClass(cls):
        cls.srv = echo()

    SAMPLES = {
        "BOOL": [[True, False], [False, True]],
        "UINT8": [[0, 255], [7, 8]],
        "UINT16": [[0, 65535], [7, 8]],
        "UINT32": [[0, 4294967295], [7, 8]],
        "UINT64": [[0, 2 ** 53], [7, 8]],
        "INT8": [[-128, 127], [7, -8]],
        "INT16": [[-32768, 32767], [7, -8]],
        "INT32": [[-2147483648, 2147483647], [7, -8]],
        "INT64": [[-9223372036854775808, 9223372036854775807], [7, -8]],
        "FP16": [[0.5, -2.0], [65504.0, 0.0009765625]],
        "FP32": [[0.1, -2.5], [3.4e38, 1e-30]],
        "FP64": [[0.1, -2.5], [1.7e308, 5e-324]],
        "BYTES": [["setosa", ""], ["ünïcødé", "with \"quotes\" and \\"]],
        "BF16": [[1.0, -2.5], [3.3895313892515355e38, 0.0078125]],
    }

    def request_for(self, name, data, binary_out=False):
        inputs = []
        for t in ECHO_TYPES:
            value = data if t == name else self.SAMPLES[t]
            inputs.append({"name": f"in_{t}", "shape": [2, 2], "datatype": t, "data": value})
        body = {"inputs": inputs, "outputs": [{"name": f"out_{name}"}]}
        if binary_out:
            body["parameters"] = {"binary_data_output": True}
        return body

    def test_json_round_trip_of_every_datatype(self):
        for name, data in self.SAMPLES.items():
            with self.subTest(datatype=name):
                r = self.srv.post("/v2/models/echo/infer", self.request_for(name, data))
                self.assertEqual(r.status, 200, r)
                out = r.json()["outputs"][0]
                self.assertEqual((out["name"], out["datatype"], out["shape"]), (f"out_{name}", name, [2, 2]))
                flat = [x for row in data for x in row]
                if name == "FP32":
                    self.assertClose(out["data"], np.array(flat, dtype=np.float32), tol=0)
                else:
                    self.assertEqual(out["data"], flat)

    def test_float_text_is_what_python_prints(self):
        """The book's clients compare text: floats are written as Python's
        json module writes them (repr: shortest round-trip digits)."""
        values = [1e15, 1e16, 1.5e-7, 123456789.0, -0.0, 0.0001, 1e-05, 1.7976931348623157e308,
                  5e-324, 0.1 + 0.2, 2.5, -1234.5678e-20, 9007199254740993.0, 1e22, 0.5e-4, 100.0]
        for i in range(0, len(values), 4):
            chunk = values[i:i + 4]
            r = self.srv.post("/v2/models/echo/infer", self.request_for("FP64", [chunk[:2], chunk[2:]]))
            self.assertEqual(r.status, 200, r)
            self.assertIn(b'"data":' + json.dumps(chunk, separators=(",", ":")).encode(), r.body)

    def test_binary_round_trip_of_every_datatype(self):
        blobs, inputs = [], []
        for name in ECHO_TYPES:
            flat = [x for row in self.SAMPLES[name] for x in row]
            raw = v2_raw(name, flat)
            blobs.append(raw)
            inputs.append({"name": f"in_{name}", "shape": [2, 2], "datatype": name,
                           "parameters": {"binary_data_size": len(raw)}})
        body, headers = v2_binary_request({"inputs": inputs, "parameters": {"binary_data_output": True}}, blobs)
        r = self.srv.post("/v2/models/echo/infer", body, headers=headers)
        self.assertEqual(r.status, 200, r)
        header, got = v2_binary_response(r)
        for name, raw in zip(ECHO_TYPES, blobs):
            with self.subTest(datatype=name):
                self.assertEqual(got[f"out_{name}"], raw)
        self.assertEqual(parse_v2_bytes(got["out_BYTES"]), [s.encode() for row in self.SAMPLES["BYTES"] for s in row])

    def test_bytes_in_binary_with_non_utf8_content(self):
        raw = v2_bytes([b"\xff\x00\xfe", b"ok", b"", b"\x80"])
        inputs = [{"name": f"in_{t}", "shape": [2, 2], "datatype": t, "data": self.SAMPLES[t]}
                  for t in ECHO_TYPES if t != "BYTES"]
        inputs.append({"name": "in_BYTES", "shape": [2, 2], "datatype": "BYTES",
                       "parameters": {"binary_data_size": len(raw)}})
        body, headers = v2_binary_request(
            {"inputs": inputs, "outputs": [{"name": "out_BYTES", "parameters": {"binary_data": True}}]}, [raw])
        r = self.srv.post("/v2/models/echo/infer", body, headers=headers)
        self.assertEqual(r.status, 200, r)
        _, got = v2_binary_response(r)
        self.assertEqual(got["out_BYTES"], raw)

    def test_wrong_datatype_is_a_400_naming_input_expected_and_received(self):
        body = self.request_for("INT32", self.SAMPLES["INT32"])
        body["inputs"][7]["datatype"] = "INT64"
        self.assertError(self.srv.post("/v2/models/echo/infer", body), 400, ["in_INT32", "INT32", "INT64"])

    def test_integers_out_of_range(self):
        cases = {"INT8": 128, "UINT8": -1, "INT16": -32769, "UINT16": 65536, "INT32": 2 ** 31,
                 "UINT32": -1, "UINT64": -1, "FP16": 1e6, "FP32": 1e39, "BF16": 1e39}
        for name, bad in cases.items():
            with self.subTest(datatype=name):
                r = self.srv.post("/v2/models/echo/infer", self.request_for(name, [[bad, 0], [0, 0]]))
                self.assertError(r, 400, ["range"])
        # beyond int64: not representable, refused rather than wrapped
        text = json.dumps(self.request_for("INT64", [[-9223372036854775808, 0], [0, 0]])).replace(
            "-9223372036854775808", "-9223372036854775809")
        self.assertError(self.srv.post("/v2/models/echo/infer", text.encode(),
                                       headers={"Content-Type": "application/json"}), 400)
        self.assertStillServing(demo())

    def test_fractions_booleans_and_strings_are_not_cast(self):
        for name, bad in (("INT32", 1.5), ("INT64", True), ("FP32", "1.0"), ("BOOL", 1), ("BYTES", 3)):
            with self.subTest(datatype=name):
                r = self.srv.post("/v2/models/echo/infer", self.request_for(name, [[bad, self.SAMPLES[name][0][1]],
                                                                                   self.SAMPLES[name][1]]))
                self.assertError(r, 400, "in_" + name)


class TwoInputModelTest(ServeTestCase):
    @classmethod
    def setUpClass(cls):
        path = os.path.join(tmpdir(), "two.onnx")
        save(two_input_model(), path)
        cls.srv = shared("two", [path])

    def test_v2_infer_with_two_inputs(self):
        r = self.srv.post("/v2/models/two/infer", {"inputs": [
            {"name": "b", "shape": [1, 2], "datatype": "FP32", "data": [10, 20]},
            {"name": "a", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}]})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["outputs"][0]["data"], [11.0, 22.0])

    def test_missing_input_is_named(self):
        r = self.srv.post("/v2/models/two/infer", {"inputs": [
            {"name": "a", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}]})
        self.assertError(r, 400, "'b'")

    def test_v1_keyed_instances_and_columnar_inputs(self):
        r = self.srv.post("/v1/models/two:predict", {"instances": [{"a": [1, 2], "b": [3, 4]},
                                                                   {"a": [0, 0], "b": [1, 1]}]})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json(), {"predictions": [[4.0, 6.0], [1.0, 1.0]]})
        r = self.srv.post("/v1/models/two:predict", {"inputs": {"a": [[1, 2]], "b": [[3, 4]]}})
        self.assertEqual(r.json(), {"outputs": [[4.0, 6.0]]})

    def test_book_api_refuses_a_two_input_model_clearly(self):
        self.assertError(self.srv.post("/predict", {"data": [[1, 2]]}), 400, "inputs")


# ---- TensorFlow Serving REST ---------------------------------------------------

class TFServingTest(ServeTestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = demo()

    def test_status(self):
        for path in ("/v1/models/iris_svc", "/v1/models/iris_svc/versions/1"):
            r = self.srv.get(path)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json(), {"model_version_status": [
                {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]})
        self.assertError(self.srv.get("/v1/models/nope"), 404, "nope")
        self.assertError(self.srv.get("/v1/models/iris_svc/versions/3"), 404, "3")

    def test_predict_instances_row_format(self):
        r = self.srv.post("/v1/models/iris_svc:predict", {"instances": SAMPLE + OTHER})
        self.assertEqual(r.status, 200, r)
        preds = r.json()["predictions"]
        self.assertEqual(len(preds), 2)
        self.assertEqual([p["output_label"] for p in preds], [0, 2])
        self.assertClose([preds[1]["output_probability"][k] for k in ("0", "1", "2")],
                         [0.32250939, 0.25931662, 0.41817399])

    def test_predict_inputs_columnar_format_and_version_path(self):
        for body in ({"inputs": SAMPLE + OTHER}, {"inputs": {"float_input": SAMPLE + OTHER}}):
            r = self.srv.post("/v1/models/iris_svc/versions/1:predict", body)
            self.assertEqual(r.status, 200, r)
            out = r.json()["outputs"]
            self.assertEqual(out["output_label"], [0, 2])
            self.assertEqual(len(out["output_probability"]), 2)

    def test_predict_errors(self):
        self.assertError(self.srv.post("/v1/models/iris_svc:predict", {"instances": SAMPLE, "inputs": SAMPLE}), 400)
        self.assertError(self.srv.post("/v1/models/iris_svc:predict", {"instances": [[1, 2, 3]]}), 400,
                         ["float_input", "4", "3"])
        self.assertError(self.srv.post("/v1/models/nope:predict", {"instances": SAMPLE}), 404)
        self.assertError(self.srv.post("/v1/models/iris_svc/versions/9:predict", {"instances": SAMPLE}), 404)
        self.assertError(self.srv.get("/v1/models/iris_svc:predict"), 405)
        self.assertStillServing(self.srv)


# ---- request ids ----------------------------------------------------------------

class RequestIdTest(ServeTestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = demo()

    def test_given_request_id_is_returned_and_logged(self):
        r = self.srv.get("/health", headers={"X-Request-ID": "client-id-7f3a"})
        self.assertEqual(r.headers["x-request-id"], "client-id-7f3a")
        r = self.srv.post("/predict", {"data": SAMPLE}, headers={"X-Request-ID": "client-id-predict"})
        self.assertEqual(r.headers["x-request-id"], "client-id-predict")
        deadline = time.monotonic() + 5
        while "client-id-predict" not in self.srv.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertIn("request_id=client-id-predict", self.srv.log())

    def test_missing_or_unusable_request_id_is_generated(self):
        ids = set()
        for headers in ({}, {}, {"X-Request-ID": "has space"}, {"X-Request-ID": "x" * 500}):
            rid = self.srv.get("/health", headers=headers).headers.get("x-request-id")
            self.assertTrue(rid and " " not in rid and len(rid) < 100, rid)
            ids.add(rid)
        self.assertEqual(len(ids), 4, ids)

    def test_errors_carry_a_request_id(self):
        r = self.srv.get("/nope", headers={"X-Request-ID": "err-1"})
        self.assertEqual((r.status, r.headers["x-request-id"]), (404, "err-1"))


# ---- bad input --------------------------------------------------------------------

class BadInputTest(ServeTestCase):
    """Issue 3's list: each gets the right 4xx and a JSON error, and a valid
    request right after still succeeds."""

    @classmethod
    def setUpClass(cls):
        cls.srv = demo()

    def post_raw(self, path, text, content_type="application/json"):
        return self.srv.post(path, text if isinstance(text, bytes) else text.encode(),
                             headers={"Content-Type": content_type})

    def test_malformed_json(self):
        for path in ("/predict", "/predict/label", "/v2/models/iris_svc/infer", "/v1/models/iris_svc:predict"):
            with self.subTest(path=path):
                self.assertError(self.post_raw(path, '{"data": [[5.1, 3.5, 1.4, 0.2]],}'), 400, "JSON")
                self.assertStillServing(self.srv)

    def test_truncated_json(self):
        full = json.dumps({"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32", "data": SAMPLE[0]}]})
        for cut in (1, len(full) // 2, len(full) - 1):
            self.assertError(self.post_raw("/v2/models/iris_svc/infer", full[:cut]), 400, "JSON")
            self.assertError(self.post_raw("/predict", '{"data": [[5.1, 3.5'[:cut]), 400)
        self.assertStillServing(self.srv)

    def test_body_that_is_not_an_object(self):
        for text in ("[]", "42", '"data"', "null"):
            self.assertError(self.post_raw("/predict", text), 400)
            self.assertError(self.post_raw("/v2/models/iris_svc/infer", text), 400)
        self.assertError(self.post_raw("/predict", '{"data": "rows"}'), 400, "data")
        self.assertStillServing(self.srv)

    def test_empty_body(self):
        self.assertError(self.post_raw("/v2/models/iris_svc/infer", ""), 400)
        self.assertStillServing(self.srv)

    def test_wrong_content_type(self):
        for ctype in ("text/plain", "application/x-www-form-urlencoded", "application/jsonx", "multipart/form-data"):
            with self.subTest(content_type=ctype):
                self.assertError(self.post_raw("/predict", json.dumps({"data": SAMPLE}), ctype), 415)
        self.assertError(self.post_raw("/v2/models/iris_svc/infer", "{}", "application/octet-stream"), 415)
        # parameters after the media type are fine
        r = self.post_raw("/predict", json.dumps({"data": SAMPLE}), "application/json; charset=utf-8")
        self.assertEqual(r.status, 200, r)
        self.assertStillServing(self.srv)

    def test_unknown_model_and_version(self):
        self.assertError(self.srv.get("/v2/models/unknown"), 404, "unknown")
        self.assertError(self.srv.post("/v2/models/unknown/infer", {"inputs": []}), 404)
        self.assertError(self.srv.get("/v2/models/iris_svc/versions/2/ready"), 404)
        self.assertError(self.srv.post("/v1/models/unknown:predict", {"instances": SAMPLE}), 404)
        self.assertStillServing(self.srv)

    def v2(self, datatype="FP32", shape=(1, 4), data=SAMPLE[0]):
        return self.srv.post("/v2/models/iris_svc/infer", {"inputs": [
            {"name": "float_input", "shape": list(shape), "datatype": datatype, "data": data}]})

    def test_wrong_datatype(self):
        self.assertError(self.v2(datatype="FP64"), 400, ["float_input", "FP32", "FP64"])
        self.assertError(self.v2(datatype="INT64", data=[1, 2, 3, 4]), 400, ["float_input", "FP32", "INT64"])
        self.assertError(self.srv.post("/predict", {"data": [["a", "b", "c", "d"]]}), 400, "float_input")
        self.assertError(self.srv.post("/predict", {"data": [[True, 1, 2, 3]]}), 400)
        self.assertStillServing(self.srv)

    def test_wrong_rank(self):
        self.assertError(self.v2(shape=[4]), 400, ["float_input", "rank 2", "rank 1"])
        self.assertError(self.v2(shape=[1, 1, 4]), 400, ["float_input", "rank"])
        self.assertError(self.srv.post("/predict", {"data": [5.1, 3.5, 1.4, 0.2]}), 400, ["float_input", "rank"])
        self.assertError(self.srv.post("/predict", {"data": [[[5.1, 3.5, 1.4, 0.2]]]}), 400, ["float_input", "rank"])
        self.assertStillServing(self.srv)

    def test_wrong_dims(self):
        self.assertError(self.v2(shape=[1, 5], data=[1, 2, 3, 4, 5]), 400, ["float_input", "dimension 1", "4", "5"])
        self.assertError(self.srv.post("/predict", {"data": [[1, 2, 3]]}), 400, ["float_input", "4", "3"])
        self.assertError(self.srv.post("/predict", {"data": [[1, 2, 3, 4], [1, 2, 3]]}), 400)
        self.assertStillServing(self.srv)

    def test_element_count_does_not_match_shape(self):
        self.assertError(self.v2(shape=[2, 4]), 400, ["4", "8"])
        self.assertError(self.v2(shape=[1, 4], data=SAMPLE[0] + [1.0]), 400)
        self.assertError(self.v2(shape=[1, 4], data=[]), 400)
        self.assertError(self.v2(shape=[1, 4], data=[[1, 2], [3, 4, 5]]), 400)
        # a huge declared shape with tiny data is refused without allocating it
        self.assertError(self.v2(shape=[1 << 40, 4], data=SAMPLE[0]), 400)
        self.assertError(self.v2(shape=[(1 << 62), 4], data=SAMPLE[0]), 400)
        self.assertStillServing(self.srv)

    def test_nan_and_infinity_literals(self):
        for literal in ("NaN", "Infinity", "-Infinity", "nan", "inf"):
            with self.subTest(literal=literal):
                self.assertError(self.post_raw("/predict", '{"data": [[%s, 3.5, 1.4, 0.2]]}' % literal), 400)
                self.assertError(self.post_raw(
                    "/v2/models/iris_svc/infer",
                    '{"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32", '
                    '"data": [%s, 1, 2, 3]}]}' % literal), 400)
        # numbers too large for float32 are refused, not turned into infinity
        self.assertError(self.post_raw("/predict", '{"data": [[1e39, 3.5, 1.4, 0.2]]}'), 400, "range")
        self.assertError(self.post_raw("/predict", '{"data": [[1e999, 3.5, 1.4, 0.2]]}'), 400)
        self.assertStillServing(self.srv)

    def test_integers_out_of_range(self):
        # beyond what JSON integers can carry here (int64): refused, never wrapped
        self.assertError(self.post_raw("/predict", '{"data": [[99999999999999999999999, 1, 1, 1]]}'), 400)
        self.assertError(self.post_raw(
            "/v2/models/iris_svc/infer", '{"inputs": [{"name": "float_input", "shape": [1, 18446744073709551620], '
            '"datatype": "FP32", "data": [1, 2, 3, 4]}]}'), 400)
        self.assertStillServing(self.srv)

    def test_two_gib_content_length_is_refused_without_reading(self):
        start = time.monotonic()
        r = self.srv.raw(b"POST /predict HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 2147483648\r\n\r\n{\"data\": ", timeout=5)
        self.assertIsNotNone(r, "no answer before the body was sent")
        self.assertError(r, 413, "limit")
        self.assertLess(time.monotonic() - start, 3 * SLOW)
        # with Expect: 100-continue the server answers 413 instead of 100
        r = self.srv.raw(b"POST /v2/models/iris_svc/infer HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                         b"Expect: 100-continue\r\nContent-Length: 2147483648\r\n\r\n", timeout=5)
        self.assertError(r, 413)
        self.assertStillServing(self.srv)

    def test_binary_data_size_larger_than_the_body(self):
        x = np.array(SAMPLE, dtype=np.float32)
        for size in (x.nbytes + 4, 1 << 40, 1 << 62):
            body, headers = v2_binary_request(
                {"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32",
                             "parameters": {"binary_data_size": size}}]}, [x.tobytes()])
            self.assertError(self.srv.post("/v2/models/iris_svc/infer", body, headers=headers), 400,
                             "binary_data_size")
        # smaller than the shape needs, and bytes nobody claims
        body, headers = v2_binary_request(
            {"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32",
                         "parameters": {"binary_data_size": 12}}]}, [x.tobytes()[:12]])
        self.assertError(self.srv.post("/v2/models/iris_svc/infer", body, headers=headers), 400)
        body, headers = v2_binary_request(
            {"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32",
                         "parameters": {"binary_data_size": 16}}]}, [x.tobytes() + b"junk"])
        self.assertError(self.srv.post("/v2/models/iris_svc/infer", body, headers=headers), 400, "binary")
        # an Inference-Header-Content-Length past the body
        headers["Inference-Header-Content-Length"] = str(len(body) + 1)
        self.assertError(self.srv.post("/v2/models/iris_svc/infer", body, headers=headers), 400,
                         "Inference-Header-Content-Length")
        headers["Inference-Header-Content-Length"] = "-5"
        self.assertError(self.srv.post("/v2/models/iris_svc/infer", body, headers=headers), 400)
        self.assertStillServing(self.srv)

    def test_bytes_length_prefix_past_the_end(self):
        srv = echo()
        raw = (100).to_bytes(4, "little") + b"abc"
        inputs = [{"name": f"in_{t}", "shape": [2, 2], "datatype": t, "data": KServeV2DatatypesTest.SAMPLES[t]}
                  for t in ECHO_TYPES if t != "BYTES"]
        inputs.append({"name": "in_BYTES", "shape": [2, 2], "datatype": "BYTES",
                       "parameters": {"binary_data_size": len(raw)}})
        body, headers = v2_binary_request({"inputs": inputs}, [raw])
        self.assertError(srv.post("/v2/models/echo/infer", body, headers=headers), 400, "BYTES")
        # a shape of 2^40 strings with a few bytes: refused before allocating
        inputs[-1]["shape"] = [1 << 40, 2]
        body, headers = v2_binary_request({"inputs": inputs}, [raw])
        self.assertError(srv.post("/v2/models/echo/infer", body, headers=headers), 400)
        self.assertStillServing(self.srv)

    def test_deeply_nested_json(self):
        for depth in (20, 5000, 200000):
            text = '{"data": ' + "[" * depth + "1" + "]" * depth + "}"
            self.assertError(self.post_raw("/predict", text), 400)
            v2 = ('{"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32", "data": '
                  + "[" * depth + "]" * depth + "}]}")
            self.assertError(self.post_raw("/v2/models/iris_svc/infer", v2), 400)
            self.assertError(self.post_raw("/v1/models/iris_svc:predict", '{"instances": ' + "[" * depth
                                           + "]" * depth + "}"), 400)
        self.assertStillServing(self.srv)

    def test_invalid_utf8(self):
        for raw in (b'{"data": [[5.1, 3.5, 1.4, 0.2]], "\xff": 1}', b'{"id": "\xc3\x28", "inputs": []}',
                    b'{"data": "\xed\xa0\x80"}'):
            self.assertError(self.post_raw("/predict", raw), 400)
            self.assertError(self.post_raw("/v2/models/iris_svc/infer", raw), 400)
        # an unknown model name with invalid UTF-8 in the path still gets JSON
        r = self.srv.get("/v2/models/%ff%fe")
        self.assertError(r, 404)
        r = self.srv.post("/v2/models/iris_svc/infer", {"inputs": [
            {"name": "float_input", "shape": [1, 4], "datatype": "FP3\u00e9", "data": SAMPLE[0]}]})
        self.assertError(r, 400)
        self.assertStillServing(self.srv)

    def test_unknown_routes_and_methods(self):
        for path in ("/", "/nope", "/predict/nope", "/v2/models", "/v2/models/iris_svc/explain",
                     "/v2/models/iris_svc/versions/", "/v1/models/iris_svc:classify", "/docs/../../etc/passwd",
                     "/docs/nope.js", "/metrics/x"):
            with self.subTest(path=path):
                self.assertError(self.srv.get(path), 404)
        for method, path, allow in (("GET", "/predict", "POST"), ("DELETE", "/health", "GET"),
                                    ("PUT", "/v2/models/iris_svc/infer", "POST"),
                                    ("POST", "/v2/health/ready", "GET"), ("POST", "/metrics", "GET"),
                                    ("PATCH", "/v1/models/iris_svc", "GET")):
            with self.subTest(method=method, path=path):
                r = self.srv.request(method, path, body=b"{}" if method != "GET" else None,
                                     headers={"Content-Type": "application/json"})
                self.assertError(r, 405)
                self.assertIn(allow, r.headers.get("allow", ""))
        r = self.srv.raw(b"BREW /predict HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n")
        self.assertError(r, 405)
        self.assertStillServing(self.srv)

    def test_garbage_instead_of_http(self):
        with socket.create_connection(("127.0.0.1", self.srv.port), timeout=5) as s:
            s.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(200) + b"\r\n\r\n")
            try:
                s.recv(4096)
            except OSError:
                pass
        self.srv.raw(b"GET " + b"/a" * 40000 + b" HTTP/1.1\r\nHost: t\r\n\r\n")
        self.srv.raw(b"GET /health HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 200000 + b"\r\n\r\n")
        self.assertStillServing(self.srv)


# ---- metrics ------------------------------------------------------------------------

def sample_value(text, name, **labels):
    """The value of the first sample of metric `name` whose labels include
    `labels` (with no labels: the unlabelled sample), or None."""
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        series, _, value = line.rpartition(" ")
        metric, _, rest = series.partition("{")
        if metric != name:
            continue
        got = set(rest.rstrip("}").split(",")) if rest else set()
        if (labels and all(f'{k}="{v}"' in got for k, v in labels.items())) or (not labels and not got):
            return float(value)
    return None


class MetricsTest(ServeTestCase):
    def test_promtool_accepts_metrics_and_counters_count(self):
        srv = Server([DEMO_MODEL, "--labels", DEMO_LABELS, "--workers", "2"])
        try:
            for _ in range(3):
                self.assertEqual(srv.post("/predict", {"data": SAMPLE}).status, 200)
            for _ in range(2):
                self.assertEqual(srv.post("/predict", {"data": [[1, 2]]}).status, 400)
            self.assertEqual(srv.post("/v2/models/iris_svc/infer", {"inputs": [
                {"name": "float_input", "shape": [1, 4], "datatype": "FP32", "data": SAMPLE[0]}]}).status, 200)
            self.assertEqual(srv.get("/nope").status, 404)
            text = srv.get("/metrics").body.decode()
            self.assertEqual(sample_value(text, "inferd_requests_total", model="iris_svc", version="1", code="200"), 4)
            self.assertEqual(sample_value(text, "inferd_requests_total", model="iris_svc", version="1", code="400"), 2)
            self.assertEqual(sample_value(text, "inferd_requests_total", model="", version="", code="404"), 1)
            for hist in ("inferd_request_duration_seconds", "inferd_compute_duration_seconds",
                         "inferd_queue_duration_seconds"):
                self.assertEqual(sample_value(text, hist + "_count", model="iris_svc", version="1"), 6, hist)
                self.assertEqual(sample_value(text, hist + "_bucket", model="iris_svc", version="1", le="+Inf"), 6)
            self.assertGreater(sample_value(text, "inferd_model_load_seconds", model="iris_svc", version="1"), 0)
            self.assertEqual(sample_value(text, "inferd_model_ready", model="iris_svc", version="1"), 1)
            self.assertEqual(sample_value(text, "inferd_requests_in_flight"), 1)  # this request
            self.assertIn("inferd_build_info{", text)
            text2 = srv.get("/metrics").body.decode()
            self.assertEqual(sample_value(text2, "inferd_requests_total", model="", version="", code="200"),
                             (sample_value(text, "inferd_requests_total", model="", version="", code="200") or 0) + 1)
            promtool = shutil.which("promtool")
            if not promtool:
                skip_or_fail(self, "promtool", "promtool is not installed (Debian package prometheus; scripts/deps.sh test)")
            proc = subprocess.run([promtool, "check", "metrics"], input=text2.encode(), capture_output=True,
                                  timeout=60)
            self.assertEqual(proc.returncode, 0, proc.stdout.decode() + proc.stderr.decode())
            self.assertEqual(proc.stdout.strip() + proc.stderr.strip(), b"", "promtool lint findings")
        finally:
            self.assertEqual(srv.stop(), 0, srv.log())
            self.assertIsNone(srv.sanitizer_report())
            srv.close()

    def test_metrics_content_type(self):
        r = demo().get("/metrics")
        self.assertEqual(r.status, 200)
        self.assertTrue(r.headers["content-type"].startswith("text/plain; version=0.0.4"), r.headers)


# ---- OpenAPI and /docs ------------------------------------------------------------------

# The build compiles Swagger UI into the binary when node_modules has it
# (CMake then lists "swagger-ui" in INFERD_TEST_REQUIRE): the files served
# must be these, byte for byte.
SWAGGER_UI_DIST = os.path.join(SOURCE, "node_modules", "swagger-ui-dist")


def check_docs_served(test, srv):
    r = srv.get("/docs")
    test.assertEqual(r.status, 200)
    test.assertTrue(r.headers["content-type"].startswith("text/html"), r.headers)
    page = r.body.decode()
    test.assertIn("/openapi.json", page)
    test.assertNotIn("built without", page)
    test.assertIn("/docs/swagger-ui-bundle.js", page)
    test.assertIn("/docs/swagger-ui.css", page)
    for name, ctype in (("swagger-ui.css", "text/css"), ("swagger-ui-bundle.js", "text/javascript")):
        r = srv.get("/docs/" + name)
        test.assertEqual(r.status, 200, name)
        test.assertTrue(r.headers["content-type"].startswith(ctype), r.headers)
        with open(os.path.join(SWAGGER_UI_DIST, name), "rb") as f:
            test.assertEqual(r.body, f.read(), name)
    test.assertEqual(srv.request("HEAD", "/docs/swagger-ui.css").status, 200)


class OpenApiTest(ServeTestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = demo()

    def test_openapi_json_validates_with_swagger_parser(self):
        r = self.srv.get("/openapi.json")
        self.assertEqual(r.status, 200)
        doc = r.json()
        self.assertTrue(doc["openapi"].startswith("3."))
        for path in ("/health", "/metadata", "/label", "/predict", "/predict/label", "/predict/test",
                     "/predict/test/label", "/v2", "/v2/health/live", "/v2/health/ready", "/v2/models/{model}",
                     "/v2/models/{model}/ready", "/v2/models/{model}/infer",
                     "/v2/models/{model}/versions/{version}/infer", "/v1/models/{model}",
                     "/v1/models/{model}:predict", "/metrics", "/openapi.json", "/docs"):
            self.assertIn(path, doc["paths"])
        # the served model's input schema
        schemas = doc["components"]["schemas"]
        model = [v for k, v in schemas.items() if k.startswith("Model_iris_svc")]
        self.assertEqual(len(model), 1, list(schemas))
        self.assertIn("float_input", model[0]["properties"])
        node = shutil.which("node")
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "validate_openapi.js")
        if not node:
            skip_or_fail(self, "swagger-parser", "node is not installed")
        with tempfile.NamedTemporaryFile("wb", suffix=".json") as f:
            f.write(r.body)
            f.flush()
            proc = subprocess.run([node, script, f.name], capture_output=True, timeout=120 * SLOW)
        if proc.returncode == 77:
            skip_or_fail(self, "swagger-parser", proc.stderr.decode().strip())
        self.assertEqual(proc.returncode, 0, proc.stdout.decode() + proc.stderr.decode())

    def test_docs_page_and_assets(self):
        r = self.srv.get("/docs")
        if "built without" in r.body.decode():
            self.assertIn("swagger-ui-dist", r.body.decode(), "the page must say how to install Swagger UI")
            self.assertError(self.srv.get("/docs/swagger-ui-bundle.js"), 404)
            skip_or_fail(self, "swagger-ui", "this inferd was built without swagger-ui-dist (npm ci, then rebuild)")
        check_docs_served(self, self.srv)

    def test_docs_work_from_the_binary_alone(self):
        # issue 12: a binary copied anywhere (a bundle, an OCI image) has no
        # share/inferd/docs beside it; the embedded files must still be served
        if "swagger-ui" not in REQUIRED:
            skip_or_fail(self, "swagger-ui", "this inferd was built without swagger-ui-dist")
        with tempfile.TemporaryDirectory() as d:
            alone = os.path.join(d, "inferd")
            shutil.copy(INFERD, alone)
            srv = Server([DEMO_MODEL, "--labels", DEMO_LABELS], binary=alone)
            try:
                check_docs_served(self, srv)
            finally:
                srv.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
