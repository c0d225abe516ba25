"""ONNX Runtime as the reference for inferd's generated cases and fixtures:
runs a model through tools/ort_eval.js (onnxruntime-node, with its telemetry
off) and returns numpy arrays. Expected values come from here or from an
independent numpy reference, never from inferd itself.

    outputs, pid = ort_reference.run("model.onnx", {"X": array})
"""
import base64
import json
import os
import subprocess

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
ORT_EVAL = os.path.join(ROOT, "tools", "ort_eval.js")
ORT_PACKAGE = os.path.join(ROOT, "node_modules", "onnxruntime-node")

_DTYPES = {
    np.float32: "float32", np.float64: "float64", np.int8: "int8", np.uint8: "uint8",
    np.int16: "int16", np.uint16: "uint16", np.int32: "int32", np.uint32: "uint32",
    np.int64: "int64", np.uint64: "uint64", np.bool_: "bool", np.float16: "float16",
}
_NUMPY = {v: k for k, v in _DTYPES.items()}


class OrtError(Exception):
    """ONNX Runtime refused or failed the model; the message is ORT's."""


def available():
    """The repository's node_modules (npm ci) or a NODE_PATH entry holds it."""
    folders = [os.path.dirname(ORT_PACKAGE)] + os.environ.get("NODE_PATH", "").split(os.pathsep)
    return any(f and os.path.isfile(os.path.join(f, "onnxruntime-node", "package.json"))
               for f in folders)


def run(model_path, feeds):
    """feeds: name -> numpy array (object arrays are string tensors).
    Returns ({name: array}, pid of the node process)."""
    request = {"model": os.path.abspath(model_path), "inputs": {}, "strings": {}}
    for name, array in feeds.items():
        array = np.asarray(array)
        if array.dtype == object or array.dtype.kind in "SU":
            request["strings"][name] = {"dims": list(array.shape),
                                        "values": [str(v) for v in array.ravel()]}
            continue
        dtype = _DTYPES[array.dtype.type]
        request["inputs"][name] = {
            "dtype": dtype, "dims": list(array.shape),
            "data": base64.b64encode(np.ascontiguousarray(array).tobytes()).decode()}
    env = dict(os.environ, ORT_DISABLE_TELEMETRY="1")
    proc = subprocess.run(["node", ORT_EVAL], input=json.dumps(request).encode(),
                          capture_output=True, env=env, timeout=300)
    lines = proc.stdout.decode().strip().splitlines()
    if not lines:
        raise OrtError("ort_eval.js printed nothing (status %d): %s"
                       % (proc.returncode, proc.stderr.decode()[-2000:]))
    answer = json.loads(lines[-1])
    if "error" in answer:
        raise OrtError(answer["error"])
    outputs = {}
    for name, spec in answer["outputs"].items():
        dims = [int(d) for d in spec["dims"]]
        if spec["dtype"] == "string":
            outputs[name] = np.array(spec["values"], dtype=object).reshape(dims)
        else:
            raw = base64.b64decode(spec["data"])
            outputs[name] = np.frombuffer(raw, dtype=_NUMPY[spec["dtype"]]).reshape(dims).copy()
    return outputs, answer["pid"]
