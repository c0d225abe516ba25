"""Shared pieces of the `inferd serve` integration tests: a real server on a
free 127.0.0.1 port (started, waited for and stopped by the tests, every step
bounded in time), small HTTP helpers on http.client and raw sockets, and the
test models, written with onnx.helper by Debian's /usr/bin/python3.

Environment:
  INFERD            the binary under test (default: build/inferd)
  INFERD_BOOK_DIR   the book's model files (default: ../shared/book beside the
                    repository)
  INFERD_TEST_SLOW  a factor for every time limit (sanitizer builds are slower)
"""
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import time

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

SOURCE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
INFERD = os.path.abspath(os.environ.get("INFERD", os.path.join(SOURCE, "build", "inferd")))
BOOK = os.environ.get("INFERD_BOOK_DIR", os.path.join(os.path.dirname(SOURCE), "shared", "book"))
DEMO_MODEL = os.path.join(SOURCE, "models", "iris_svc.onnx")
DEMO_LABELS = os.path.join(SOURCE, "models", "iris_labels.json")
SLOW = float(os.environ.get("INFERD_TEST_SLOW", "1"))
# tools that must be there (CTest sets this to what it found at configure
# time): a test needing one of them fails instead of skipping
REQUIRED = set(filter(None, os.environ.get("INFERD_TEST_REQUIRE", "").split(",")))


def skip_or_fail(test, tool, message):
    if tool in REQUIRED:
        test.fail(f"{message} (required: INFERD_TEST_REQUIRE={','.join(sorted(REQUIRED))})")
    test.skipTest(message)

SANITIZER_REPORT = re.compile(r"ERROR: (Address|Leak)Sanitizer|runtime error:|SUMMARY: \w+Sanitizer")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # lower-case names
        self.body = body

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<{self.status} {self.headers.get('content-type')} {self.body[:300]!r}>"


class Server:
    """One `inferd serve` process. args are the serve arguments; a --port is
    added unless the caller gives one (in args or in env as PORT); binary
    replaces INFERD (a copy of it elsewhere, a bundle)."""

    def __init__(self, args, env=None, port=None, add_port=True, ready=True, timeout=30, binary=None):
        self.args = list(args)
        self.env = dict(os.environ)
        for key in ("MODEL_FILEPATH", "LABEL_FILEPATH", "PORT", "LOG_LEVEL", "LOG_FORMAT"):
            self.env.pop(key, None)
        self.env.update(env or {})
        self.log_file = tempfile.NamedTemporaryFile(prefix="inferd-serve-", suffix=".log", delete=False)
        self.port = port or free_port()
        argv = [binary or INFERD, "serve", *self.args]
        if add_port and "--port" not in self.args and "PORT" not in (env or {}):
            argv += ["--port", str(self.port)]
        self.argv = argv
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.log_file,
                                     stderr=subprocess.STDOUT, env=self.env)
        if ready:
            self.wait_ready(timeout * SLOW)

    def log(self):
        with open(self.log_file.name, "r", errors="replace") as f:
            return f.read()

    def wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"inferd serve exited with {self.proc.returncode}:\n{self.log()}")
            try:
                r = self.request("GET", "/v2/health/ready", timeout=2)
                if r.status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.02)
        self.kill()
        raise AssertionError(f"inferd serve was not ready after {timeout} s:\n{self.log()}")

    def connection(self, timeout=30):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout * SLOW)

    def request(self, method, path, body=None, headers=None, timeout=30):
        conn = self.connection(timeout)
        try:
            if isinstance(body, (dict, list)):
                body = json.dumps(body).encode()
                headers = {"Content-Type": "application/json", **(headers or {})}
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
        finally:
            conn.close()

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body, **kw):
        return self.request("POST", path, body=body, **kw)

    def raw(self, data, timeout=5):
        """Send raw bytes, read until the server closes or `timeout`."""
        out = b""
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout * SLOW) as s:
            s.sendall(data)
            try:
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    out += chunk
                    if parse_raw(out) is not None:
                        break
            except socket.timeout:
                pass
        return parse_raw(out)

    def stop(self, sig=signal.SIGTERM, timeout=30):
        """Signal the server and return its exit status (None if it had to be killed)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout * SLOW)
            except subprocess.TimeoutExpired:
                self.kill()
                return None
        return self.proc.returncode

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def close(self):
        self.kill()
        self.log_file.close()
        try:
            os.unlink(self.log_file.name)
        except OSError:
            pass

    def sanitizer_report(self):
        m = SANITIZER_REPORT.search(self.log())
        return self.log() if m else None


def parse_raw(data):
    """A complete HTTP response in data as Response, else None."""
    head, sep, rest = data.partition(b"\r\n\r\n")
    if not sep:
        return None
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    length = int(headers.get("content-length", "0"))
    if len(rest) < length:
        return None
    return Response(status, headers, rest[:length])


# ---- models ---------------------------------------------------------------

def save(model, path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


# V2 datatype -> (ONNX element type, numpy dtype)
ECHO_TYPES = {
    "BOOL": (TensorProto.BOOL, np.bool_),
    "UINT8": (TensorProto.UINT8, np.uint8),
    "UINT16": (TensorProto.UINT16, np.uint16),
    "UINT32": (TensorProto.UINT32, np.uint32),
    "UINT64": (TensorProto.UINT64, np.uint64),
    "INT8": (TensorProto.INT8, np.int8),
    "INT16": (TensorProto.INT16, np.int16),
    "INT32": (TensorProto.INT32, np.int32),
    "INT64": (TensorProto.INT64, np.int64),
    "FP16": (TensorProto.FLOAT16, np.float16),
    "FP32": (TensorProto.FLOAT, np.float32),
    "FP64": (TensorProto.DOUBLE, np.float64),
    "BYTES": (TensorProto.STRING, object),
    "BF16": (TensorProto.BFLOAT16, None),  # numpy has no bfloat16: see v2_raw
}


def v2_raw(datatype, flat):
    """The binary-extension bytes of a flat list of values."""
    if datatype == "BYTES":
        return v2_bytes(flat)
    if datatype == "BF16":  # the high halves of float32 (the test values are exact)
        return (np.array(flat, dtype=np.float32).view(np.uint32) >> 16).astype("<u2").tobytes()
    return np.array(flat, dtype=ECHO_TYPES[datatype][1]).tobytes()


def echo_model():
    """One Identity per V2 datatype: input in_<T> [N, 2] -> output out_<T>."""
    nodes, inputs, outputs = [], [], []
    for name, (elem, _) in ECHO_TYPES.items():
        inputs.append(helper.make_tensor_value_info(f"in_{name}", elem, ["N", 2]))
        outputs.append(helper.make_tensor_value_info(f"out_{name}", elem, ["N", 2]))
        nodes.append(helper.make_node("Identity", [f"in_{name}"], [f"out_{name}"]))
    graph = helper.make_graph(nodes, "echo", inputs, outputs)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def adder_model(k):
    """y = x + k for x float32 [N, 3]; the version is visible in the answer."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])
    bias = numpy_helper.from_array(np.full([3], k, dtype=np.float32), "bias")
    graph = helper.make_graph([helper.make_node("Add", ["x", "bias"], ["y"])], f"adder{k}", [x], [y], [bias])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def slow_model(width=256, depth=12):
    """A chain of MatMuls by the identity: y == x exactly, but each row costs
    depth * width^2 multiply-adds, so a big batch keeps a worker busy."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", width])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", width])
    w = numpy_helper.from_array(np.eye(width, dtype=np.float32), "w")
    nodes, prev = [], "x"
    for i in range(depth):
        out = "y" if i == depth - 1 else f"h{i}"
        nodes.append(helper.make_node("MatMul", [prev, "w"], [out]))
        prev = out
    graph = helper.make_graph(nodes, "slow", [x], [y], [w])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def two_input_model():
    """sum = a + b (float32 [N, 2]) and count = Shape(a) (int64 [2])."""
    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, ["N", 2])
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, ["N", 2])
    s = helper.make_tensor_value_info("sum", TensorProto.FLOAT, ["N", 2])
    graph = helper.make_graph([helper.make_node("Add", ["a", "b"], ["sum"])], "two", [a, b], [s])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


# ---- V2 binary tensor extension --------------------------------------------

def v2_bytes(values):
    out = b""
    for v in values:
        raw = v if isinstance(v, bytes) else str(v).encode()
        out += len(raw).to_bytes(4, "little") + raw
    return out


def v2_binary_request(header, blobs):
    """Body and headers of a binary-extension request."""
    text = json.dumps(header).encode()
    return text + b"".join(blobs), {"Inference-Header-Content-Length": str(len(text)),
                                    "Content-Type": "application/octet-stream"}


def v2_binary_response(r):
    """(JSON header, {output name: raw bytes}) of a binary-extension answer."""
    n = int(r.headers["inference-header-content-length"])
    header = json.loads(r.body[:n])
    blobs, pos = {}, n
    for out in header["outputs"]:
        size = out.get("parameters", {}).get("binary_data_size")
        if size is not None:
            blobs[out["name"]] = r.body[pos:pos + size]
            pos += size
    assert pos == len(r.body), f"{len(r.body) - pos} unclaimed bytes in the answer"
    return header, blobs


def parse_v2_bytes(raw):
    out, pos = [], 0
    while pos < len(raw):
        n = int.from_bytes(raw[pos:pos + 4], "little")
        out.append(raw[pos + 4:pos + 4 + n])
        pos += 4 + n
    return out
