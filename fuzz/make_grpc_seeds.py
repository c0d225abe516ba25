#!/usr/bin/python3
"""Writes what fuzz_grpc_request starts from (committed):
  fuzz/grpc_echo.onnx            one Identity per KServe V2 datatype, in_<T> [N, 2]
                                 -> out_<T>, so every typed and raw decoder path is
                                 reachable past the signature check;
  fuzz/seeds/grpc_request/*      ModelInferRequest messages, each prefixed by the
                                 byte that picks the model (0: iris, 1: echo):
                                 typed and raw, every datatype, requested outputs,
                                 parameters, and a few near misses.
Needs Debian's /usr/bin/python3 with python3-onnx, python3-numpy and
python3-grpc-tools (stubs are generated from proto/kserve here).
Usage: fuzz/make_grpc_seeds.py
"""
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
TYPES = {"BOOL": (TensorProto.BOOL, np.bool_), "UINT8": (TensorProto.UINT8, np.uint8),
         "UINT16": (TensorProto.UINT16, np.uint16), "UINT32": (TensorProto.UINT32, np.uint32),
         "UINT64": (TensorProto.UINT64, np.uint64), "INT8": (TensorProto.INT8, np.int8),
         "INT16": (TensorProto.INT16, np.int16), "INT32": (TensorProto.INT32, np.int32),
         "INT64": (TensorProto.INT64, np.int64), "FP16": (TensorProto.FLOAT16, np.float16),
         "FP32": (TensorProto.FLOAT, np.float32), "FP64": (TensorProto.DOUBLE, np.float64),
         "BYTES": (TensorProto.STRING, None), "BF16": (TensorProto.BFLOAT16, None)}
TYPED = {"BOOL": "bool_contents", "UINT8": "uint_contents", "UINT16": "uint_contents", "UINT32": "uint_contents",
         "UINT64": "uint64_contents", "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
         "INT64": "int64_contents", "FP32": "fp32_contents", "FP64": "fp64_contents", "BYTES": "bytes_contents"}


def echo_model():
    nodes, inputs, outputs = [], [], []
    for name, (elem, _) in TYPES.items():
        inputs.append(helper.make_tensor_value_info(f"in_{name}", elem, ["N", 2]))
        outputs.append(helper.make_tensor_value_info(f"out_{name}", elem, ["N", 2]))
        nodes.append(helper.make_node("Identity", [f"in_{name}"], [f"out_{name}"]))
    model = helper.make_model(helper.make_graph(nodes, "echo", inputs, outputs),
                              opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    return model


def raw(t, values):
    if t == "BYTES":
        return b"".join(struct.pack("<I", len(v)) + v for v in values)
    if t == "BF16":
        return (np.array(values, np.float32).view(np.uint32) >> 16).astype("<u2").tobytes()
    return np.array(values, dtype=TYPES[t][1]).tobytes()


def main():
    onnx.save(echo_model(), os.path.join(HERE, "grpc_echo.onnx"))
    stubs = tempfile.mkdtemp()
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I", os.path.join(REPO, "proto"),
                    f"--python_out={stubs}", "kserve/grpc_predict_v2.proto"], check=True)
    sys.path.insert(0, stubs)
    from kserve import grpc_predict_v2_pb2 as pb
    out = os.path.join(HERE, "seeds", "grpc_request")
    os.makedirs(out, exist_ok=True)
    seeds = {}
    r = pb.ModelInferRequest(model_name="iris", id="1")
    r.inputs.add(name="float_input", datatype="FP32", shape=[2, 4]).contents.fp32_contents.extend(
        [5.1, 3.5, 1.4, 0.2, 6.7, 3.0, 5.2, 2.3])
    seeds["iris_typed"] = (0, r)
    r = pb.ModelInferRequest(model_name="iris")
    r.inputs.add(name="float_input", datatype="FP32", shape=[1, 4])
    r.raw_input_contents.append(struct.pack("<4f", 5.1, 3.5, 1.4, 0.2))
    r.outputs.add(name="output_probability")
    r.parameters["binary_data_output"].bool_param = False
    seeds["iris_raw"] = (0, r)
    values = {"BOOL": [True, False, True, True], "BYTES": [b"a", b"", b"\x00\xff", b"xyz"]}
    r = pb.ModelInferRequest(model_name="echo")
    for t in TYPES:
        r.inputs.add(name=f"in_{t}", datatype=t, shape=[2, 2])
        r.raw_input_contents.append(raw(t, values.get(t, [1, 2, 3, 4])))
    seeds["echo_raw"] = (1, r)
    r = pb.ModelInferRequest(model_name="echo")
    for t in TYPES:
        x = r.inputs.add(name=f"in_{t}", datatype=t, shape=[2, 2])
        if t in TYPED:
            getattr(x.contents, TYPED[t]).extend(values.get(t, [1, 2, 3, 4]))
    r.outputs.add(name="out_INT8")
    r.outputs.add(name="out_BYTES")
    seeds["echo_typed"] = (1, r)
    r = pb.ModelInferRequest(model_name="echo")
    r.inputs.add(name="in_INT8", datatype="INT8", shape=[1, 2]).contents.int_contents.extend([1, 300])
    seeds["echo_out_of_range"] = (1, r)
    for name, (model, msg) in seeds.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(bytes([model]) + msg.SerializeToString())


if __name__ == "__main__":
    main()
