"""Pieces shared by the live-model tests (tests/models mirrors src/models):
repositories of real ONNX files written with onnx.helper, a client of the
repository API that sends exactly what Triton's Python client sends
(tritonclient.http: the same URLs, bodies and success rule; tritonclient
itself is not installable here, PyPI being out of reach), and a wrk run
whose Lua script checks every answer against the version that claims it.
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse

import numpy as np
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "serve"))
from serve_harness import SLOW, Server, save  # noqa: E402,F401

TOKEN = "live-model-test-token-5f1c9e"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ROW = [[5.1, 3.5, 1.4, 0.2]]


def classifier(seed, classes=3):
    """x float32 [N,4] -> probabilities [N,classes] = softmax(x W + b): a
    different, known answer for every seed."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(4, classes)).astype(np.float32)
    b = rng.normal(size=(classes,)).astype(np.float32)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
    y = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", classes])
    graph = helper.make_graph([helper.make_node("Gemm", ["x", "w", "b"], ["logits"]),
                               helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1)],
                              f"classifier_{seed}", [x], [y],
                              [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), (w, b)


def expected_probabilities(params, rows):
    w, b = params
    z = np.array(rows, dtype=np.float32) @ w + b
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def failing_classifier():
    """Answers the warm-up row (first feature 5.1) but fails at run time on
    any row whose first feature is 6 or more: it gathers a table row by
    that feature, and the table has 6 rows."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
    y = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 3])
    table = np.linspace(0.1, 0.9, 18, dtype=np.float32).reshape(6, 3)
    nodes = [
        helper.make_node("Slice", ["x", "start", "end", "axis"], ["first"]),
        helper.make_node("Reshape", ["first", "flat"], ["first_flat"]),
        helper.make_node("Cast", ["first_flat"], ["index"], to=TensorProto.INT64),
        helper.make_node("Gather", ["table", "index"], ["rows"], axis=0),
        helper.make_node("Softmax", ["rows"], ["probabilities"], axis=1),
    ]
    inits = [numpy_helper.from_array(table, "table"),
             numpy_helper.from_array(np.array([0], np.int64), "start"),
             numpy_helper.from_array(np.array([1], np.int64), "end"),
             numpy_helper.from_array(np.array([1], np.int64), "axis"),
             numpy_helper.from_array(np.array([-1], np.int64), "flat")]
    graph = helper.make_graph(nodes, "failing", [x], [y], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def large_classifier(megabytes):
    """A classifier whose weights take about `megabytes` MB: x [N,4] ->
    MatMul [4,K] -> MatMul [K,3] -> Softmax."""
    k = int(megabytes * 1e6 / 4 / 7)
    rng = np.random.default_rng(7)
    w1 = (rng.normal(size=(4, k)) / 4).astype(np.float32)
    w2 = (rng.normal(size=(k, 3)) / np.sqrt(k)).astype(np.float32)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
    y = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 3])
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w1"], ["h"]),
                               helper.make_node("MatMul", ["h", "w2"], ["logits"]),
                               helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1)],
                              "large", [x], [y],
                              [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def slow_classifier(layers=200, width=256):
    """x float32 [N,width] -> y: `layers` MatMul+Tanh with one shared weight,
    so each row costs layers*width*width*2 FLOP while the file stays small."""
    rng = np.random.default_rng(5)
    w = (rng.normal(size=(width, width)) / np.sqrt(width)).astype(np.float32)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", width])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", width])
    nodes, last = [], "x"
    for i in range(layers):
        nodes.append(helper.make_node("MatMul", [last, "w"], [f"m{i}"]))
        out = "y" if i == layers - 1 else f"t{i}"
        nodes.append(helper.make_node("Tanh", [f"m{i}"], [out]))
        last = out
    graph = helper.make_graph(nodes, "slow", [x], [y], [numpy_helper.from_array(w, "w")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def write_bytes_atomically(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def write_config(repo, name, config):
    write_bytes_atomically(os.path.join(repo, name, "config.json"), json.dumps(config).encode())


def infer_body(rows=ROW):
    return {"inputs": [{"name": "x", "shape": [len(rows), 4], "datatype": "FP32",
                        "data": [v for row in rows for v in row]}]}


class TritonStyleClient:
    """The repository calls of tritonclient.http.InferenceServerClient, byte
    for byte: POST v2/repository/index with an empty body; load with
    json.dumps({}) or {"parameters": {"config": <str>}}; unload with
    {"parameters": {"unload_dependents": false}}; GET .../ready; any status
    but 200 is an error whose message is the body's "error"."""

    def __init__(self, server, headers=None):
        self.server = server
        self.headers = dict(headers or {})

    def _post(self, uri, body):
        r = self.server.request("POST", "/" + uri, body=body.encode() if isinstance(body, str) else body,
                                headers=self.headers)
        if r.status != 200:
            raise RuntimeError(json.loads(r.body).get("error") if r.body else f"HTTP {r.status}")
        return r

    def get_model_repository_index(self):
        return json.loads(self._post("v2/repository/index", "").body)

    def load_model(self, name, config=None):
        request = {}
        if config is not None:
            request.setdefault("parameters", {})["config"] = config
        self._post("v2/repository/models/{}/load".format(urllib.parse.quote(name)), json.dumps(request))

    def unload_model(self, name, unload_dependents=False):
        self._post("v2/repository/models/{}/unload".format(urllib.parse.quote(name)),
                   json.dumps({"parameters": {"unload_dependents": unload_dependents}}))

    def is_model_ready(self, name, version=""):
        path = f"/v2/models/{urllib.parse.quote(name)}" + (f"/versions/{version}" if version else "") + "/ready"
        return self.server.request("GET", path, headers=self.headers).status == 200


WRK_SCRIPT = r"""
wrk.method = "POST"
wrk.body = [==[%(body)s]==]
wrk.headers["Content-Type"] = "application/json"
local expected = {}
%(expected)s
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) ok = 0; bad = 0; by_version = {}; first_bad = "" end
function response(status, headers, body)
  local who = headers["X-Model-Version"]
  if status == 200 and who and expected[who] == body then
    ok = ok + 1
    by_version[who] = (by_version[who] or 0) + 1
  else
    bad = bad + 1
    if first_bad == "" then first_bad = tostring(status) .. " " .. tostring(who) .. " " .. body end
  end
end
function done(summary, latency, requests)
  local ok, bad, counts, first = 0, 0, {}, ""
  for _, t in ipairs(threads) do
    ok = ok + t:get("ok"); bad = bad + t:get("bad")
    for who, n in pairs(t:get("by_version")) do counts[who] = (counts[who] or 0) + n end
    if first == "" then first = t:get("first_bad") end
  end
  local parts = {}
  for who, n in pairs(counts) do table.insert(parts, string.format('"%%s": %%d', who, n)) end
  local e = summary.errors
  io.write(string.format('WRK_RESULT {"ok": %%d, "bad": %%d, "connect": %%d, "read": %%d, "write": %%d, ' ..
    '"status": %%d, "timeout": %%d, "requests": %%d, "seconds": %%f, "by_version": {%%s}}\n',
    ok, bad, e.connect, e.read, e.write, e.status, e.timeout, summary.requests,
    summary.duration / 1e6, table.concat(parts, ", ")))
  io.write("WRK_FIRST_BAD " .. first .. "\n")
end
"""


class CheckedLoad:
    """wrk at full rate against one URL for as long as the test needs: every
    answer must be a 200 whose body is exactly the answer of the version its
    X-Model-Version header names."""

    def __init__(self, server, path, body, expected, threads=2, connections=8):
        lines = "\n".join(f'expected["{who}"] = [==[{text}]==]' for who, text in expected.items())
        self.script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
        self.script.write(WRK_SCRIPT % {"body": json.dumps(body), "expected": lines})
        self.script.close()
        self.proc = subprocess.Popen(
            ["wrk", "-t", str(threads), "-c", str(connections), "-d", "600s", "--timeout", "30s",
             "-s", self.script.name, f"http://127.0.0.1:{server.port}{path}"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.started = time.monotonic()

    def running(self):
        return self.proc.poll() is None

    def stop(self):
        """Stop wrk (SIGINT: it reports) and return its result."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        out, _ = self.proc.communicate(timeout=60)
        os.unlink(self.script.name)
        result = None
        first_bad = ""
        for line in out.splitlines():
            if line.startswith("WRK_RESULT "):
                result = json.loads(line[len("WRK_RESULT "):])
            if line.startswith("WRK_FIRST_BAD "):
                first_bad = line[len("WRK_FIRST_BAD "):]
        if result is None:
            raise AssertionError("wrk gave no result:\n" + out)
        result["first_bad"] = first_bad
        result["output"] = out
        return result
