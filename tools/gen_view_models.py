#!/usr/bin/env python3
"""Models for tests/engine/test_views.c: Reshape-family outputs that the
buffer planner makes views of their input (src/engine/arena_plan.c,
plan_views), in the graphs where a view could go wrong. Each is written
twice: with the batch axis open ("N", buffers from the session's pool) and
fixed at 3 (buffers in the planned arena).

  view_of_output: a = Relu(x) is a graph output and is reshaped; the
      reshape feeds y = Neg(r); f = Flatten(a) is a graph output itself.
  view_outlives_input: r = Reshape(Relu(x)) is read after Neg, Relu's
      last direct reader, and after Exp wrote a new tensor of Relu's size
      (the buffer Relu's would be reused for); Unsqueeze/Squeeze chain it.
Run with Debian's /usr/bin/python3 (onnx): gen_view_models.py --out DIR
"""
import argparse
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def shape_const(name, values):
    return numpy_helper.from_array(np.array(values, dtype=np.int64), name)


def save(out, name, nodes, inits, outputs, batch):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 4, 6])
    graph = helper.make_graph(nodes, name, [x], outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    suffix = "dynamic" if isinstance(batch, str) else "static"
    onnx.save(model, os.path.join(out, f"{name}_{suffix}.onnx"))


def view_of_output(out, batch):
    nodes = [
        helper.make_node("Relu", ["x"], ["a"]),
        helper.make_node("Reshape", ["a", "flat"], ["r"]),
        helper.make_node("Neg", ["r"], ["y"]),
        helper.make_node("Flatten", ["a"], ["f"], axis=1),
    ]
    outputs = [
        helper.make_tensor_value_info("a", TensorProto.FLOAT, [batch, 4, 6]),
        helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 24]),
        helper.make_tensor_value_info("f", TensorProto.FLOAT, [batch, 24]),
    ]
    save(out, "view_of_output", nodes, [shape_const("flat", [-1, 24])], outputs, batch)


def view_outlives_input(out, batch):
    nodes = [
        helper.make_node("Relu", ["x"], ["a"]),
        helper.make_node("Reshape", ["a", "flat"], ["r"]),
        helper.make_node("Unsqueeze", ["r", "axis0"], ["u"]),
        helper.make_node("Neg", ["a"], ["b"]),
        helper.make_node("Exp", ["b"], ["c"]),
        helper.make_node("Sigmoid", ["c"], ["d"]),
        helper.make_node("Squeeze", ["u", "axis0"], ["s"]),
        helper.make_node("Reshape", ["d", "flat"], ["e"]),
        helper.make_node("Add", ["s", "e"], ["y"]),
    ]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 24])]
    inits = [shape_const("flat", [-1, 24]), shape_const("axis0", [0])]
    save(out, "view_outlives_input", nodes, inits, outputs, batch)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for batch in ("N", 3):
        view_of_output(args.out, batch)
        view_outlives_input(args.out, batch)


if __name__ == "__main__":
    main()
