#!/usr/bin/python3
"""Writes hand-minimised reproducers of the operator bugs fuzz_model_load found
(fuzz/regressions/model_load/op-*.onnx). Each is the smallest model showing
its bug, rebuilt by hand from the fuzzer's input so that a reader sees the
cause at a glance; the comment above each says what went wrong.
scripts/fuzz.sh replays them so that the fixed ones stay fixed; the ones not
fixed yet are listed in KNOWN_OPEN.

Replay one: build-fuzz/fuzz/fuzz_model_load fuzz/regressions/model_load/NAME
Needs Debian's /usr/bin/python3 with python3-onnx and python3-numpy.
"""
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "model_load")
F, D, I64 = TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.INT64


def vi(name, elem, shape):
    return helper.make_tensor_value_info(name, elem, shape)


def write(name, nodes, inputs, outputs, opset, initializers=()):
    graph = helper.make_graph(nodes, name, inputs, outputs, list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 7
    os.makedirs(HERE, exist_ok=True)
    with open(os.path.join(HERE, "op-" + name + ".onnx"), "wb") as f:
        f.write(model.SerializeToString())


x4 = vi("x", F, [1, 1, 4, 4])

# prepare() read node->outputs[0] of a node that lists no outputs
# (heap-buffer-overflow; fixed for all operators by the loader's arity check)
write("conv-without-outputs", [helper.make_node("Conv", ["x", "w"], [])],
      [x4, vi("w", F, [1, 1, 2, 2])], [x4], 11)
write("abs-without-outputs", [helper.make_node("Abs", ["x"], [])], [x4], [x4], 13)
write("div-without-outputs", [helper.make_node("Div", ["x", "x"], [])], [x4], [x4], 13)
write("slice1-without-outputs",
      [helper.make_node("Slice", ["x"], [], axes=[0], starts=[0], ends=[1])], [x4], [x4], 6)
write("pad2-without-outputs", [helper.make_node("Pad", ["x"], [], pads=[0] * 8)], [x4], [x4], 6)
write("reshape-without-outputs",
      [helper.make_node("Reshape", ["x", "s"], [])], [x4, vi("s", I64, [1])], [x4], 13)

# prepare() read node->inputs[0] of a node that lists no inputs (same fix)
write("gemm-without-inputs", [helper.make_node("Gemm", [], ["y"])], [], [vi("y", F, None)], 13)
write("globalaveragepool-without-inputs", [helper.make_node("GlobalAveragePool", [], ["y"])],
      [], [vi("y", F, None)], 13)
write("maxpool-without-inputs",
      [helper.make_node("MaxPool", [], ["y"], kernel_shape=[2, 2])], [], [vi("y", F, None)], 12)
write("maxunpool-without-inputs",
      [helper.make_node("MaxUnpool", [], ["y"], kernel_shape=[2, 2])], [], [vi("y", F, None)], 11)

# run(): Max of three inputs whose first two broadcast to less than the
# output read past the accumulator (heap-buffer-overflow in binary_row)
write("max-three-inputs-broadcast", [helper.make_node("Max", ["s", "s", "v"], ["y"])],
      [vi("s", F, []), vi("v", F, [11])], [vi("y", F, [11])], 13)

# prepare(): Add-6 legacy broadcast=1 with a scalar A indexed a->dims[-1]
write("add6-legacy-broadcast-scalar-a",
      [helper.make_node("Add", ["a", "b"], ["y"], broadcast=1)],
      [vi("a", D, []), vi("b", D, [2, 3])], [vi("y", D, None)], 6)

# run(): Tile whose output is empty (a repeat of 0) but whose other dims are
# huge overflowed int64 computing strides (contiguous_strides in shape.c)
repeats = numpy_helper.from_array(np.array([1, 0, 3, (1 << 59) + 4], dtype=np.int64), "r")
write("tile-empty-output-stride-overflow", [helper.make_node("Tile", ["x", "r"], ["y"])],
      [vi("x", F, [1, 2, 3, 4])], [vi("y", F, None)], 13, [repeats])

# Conv given a map as X and W: prepare() accepts it and run() fails without a
# message (the core now fills in "failed without giving a reason", which the
# fuzzer reports as an operator bug). Open.
map_type = onnx.TypeProto()
map_type.map_type.key_type = TensorProto.INT64
map_type.map_type.value_type.CopyFrom(helper.make_tensor_type_proto(F, []))
write("conv-map-input-fails-without-reason", [helper.make_node("Conv", ["m", "m"], ["y"])],
      [helper.make_value_info("m", map_type)], [vi("y", F, None)], 11)

# prepare(): Einsum with an empty name in its variadic operand list read
# node->inputs[i]->dtype through NULL (fuzz_model_load, issue 16's operators)
write("einsum-empty-operand", [helper.make_node("Einsum", ["x", ""], ["y"], equation="i,i->")],
      [vi("x", F, [3])], [vi("y", F, None)], 12)
