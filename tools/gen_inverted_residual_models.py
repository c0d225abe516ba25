#!/usr/bin/python3
"""Writes the inverted-residual blocks tests/engine/optimize/
test_fuse_inverted_residual.c loads with the graph optimiser off and on:
MobileNetV2's Conv 1x1 -> activation -> depthwise Conv -> activation ->
Conv 1x1 [-> Add(x)] written with onnx.helper at opset 13, over geometries
the band kernel has to get right (stride 2 from an odd image, 5x5 windows,
padding only after, channel counts off the tile sizes, a BatchNormalization
to fold, Relu, Clip and no activation), one block too small to fuse whole,
and blocks over small planes whose depthwise and projection Convs fuse
into one InvertedResidual node without the expand.

    /usr/bin/python3 tools/gen_inverted_residual_models.py --out DIR

DIR/<name>.onnx; every model has one float input "x" [N, C, H, W] with N
open, and one output "y".
"""
import argparse
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# name: (in, hidden, out, H, W, kernel, stride, pads [t, l, b, r], expand act,
#        depthwise act, residual, BatchNormalization after the expand)
BLOCKS = {
    "stride2_odd": (6, 88, 10, 57, 57, 3, 2, [1, 1, 1, 1], "clip", "clip", False, False),
    "stride1_residual": (8, 180, 8, 37, 41, 3, 1, [1, 1, 1, 1], "relu", "clip", True, True),
    "window5_no_act": (5, 120, 7, 48, 48, 5, 1, [2, 2, 2, 2], "clip", "none", False, False),
    "pad_after": (4, 100, 12, 58, 58, 3, 2, [0, 0, 1, 1], "none", "relu", False, True),
    "too_small": (8, 16, 8, 14, 14, 3, 1, [1, 1, 1, 1], "clip", "clip", True, False),
    # small output planes: the depthwise and projection Convs become one
    # InvertedResidual node at stride 1 (rows of 14 and 17 outputs, a 5x5
    # window, projections off the 32-channel tile); the stride-2 ones stay
    # three Convs
    "pair_residual": (16, 72, 16, 14, 14, 3, 1, [1, 1, 1, 1], "clip", "clip", True, False),
    "pair_odd_plane": (8, 48, 40, 13, 17, 3, 1, [1, 1, 1, 1], "none", "relu", False, True),
    "pair_stride2_odd": (8, 40, 24, 29, 29, 3, 2, [1, 1, 1, 1], "relu", "clip", False, False),
    "pair_window5": (6, 36, 20, 16, 16, 5, 1, [2, 2, 2, 2], "clip", "none", False, False),
    # 7x7 outputs: two threads split the plane at 24 | 25 positions
    "pair_7x7_residual": (40, 192, 40, 7, 7, 3, 1, [1, 1, 1, 1], "clip", "clip", True, False),
    "pair_7x7_stride2": (8, 200, 24, 13, 13, 3, 2, [1, 1, 1, 1], "clip", "clip", False, False),
    # 784-position planes: the projection has the direct tile's weights
    "pair_direct_residual": (24, 64, 24, 28, 28, 3, 1, [1, 1, 1, 1], "clip", "clip", True, False),
    "pair_direct_tall": (8, 40, 20, 112, 28, 3, 2, [1, 1, 1, 1], "relu", "relu", False, False),
}


def block(name, spec, rng):
    c, hidden, out, h, w, k, s, pads, act_e, act_d, residual, bn = spec
    inits, nodes = [], []

    def const(n, array):
        inits.append(numpy_helper.from_array(np.asarray(array, dtype=np.float32), n))
        return n

    def activation(kind, src, dst):
        """The activation's output name (src itself for none)."""
        if kind == "relu":
            nodes.append(helper.make_node("Relu", [src], [dst]))
        elif kind == "clip":
            nodes.append(helper.make_node("Clip", [src, const(dst + "_lo", 0.0),
                                                   const(dst + "_hi", 6.0)], [dst]))
        else:
            return src
        return dst

    nodes.append(helper.make_node(
        "Conv", ["x", const("we", rng.normal(0, 1.0 / np.sqrt(c), (hidden, c, 1, 1))),
                 const("be", rng.normal(0, 0.2, hidden))], ["e0"]))
    src = "e0"
    if bn:
        nodes.append(helper.make_node(
            "BatchNormalization", [src, const("g", rng.uniform(0.5, 1.5, hidden)),
                                   const("b", rng.normal(0, 0.1, hidden)),
                                   const("m", rng.normal(0, 0.1, hidden)),
                                   const("v", rng.uniform(0.5, 1.5, hidden))], ["e1"]))
        src = "e1"
    e = activation(act_e, src, "e")
    nodes.append(helper.make_node(
        "Conv", [e, const("wd", rng.normal(0, 1.0 / k, (hidden, 1, k, k))),
                 const("bd", rng.normal(0, 0.2, hidden))], ["d0"],
        group=hidden, kernel_shape=[k, k], strides=[s, s], pads=pads))
    d = activation(act_d, "d0", "d")
    nodes.append(helper.make_node(
        "Conv", [d, const("wp", rng.normal(0, 1.0 / np.sqrt(hidden), (out, hidden, 1, 1))),
                 const("bp", rng.normal(0, 0.2, out))], ["p" if residual else "y"]))
    if residual:
        nodes.append(helper.make_node("Add", ["p", "x"], ["y"]))
    graph = helper.make_graph(
        nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", c, h, w])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", out, None, None])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rng = np.random.default_rng(20261206)
    for name, spec in BLOCKS.items():
        onnx.save(block(name, spec, rng), os.path.join(args.out, name + ".onnx"))


if __name__ == "__main__":
    main()
