#!/usr/bin/python3
"""Writes tests/engine/ops/cases/gemm/: small ONNX backend-layout cases for
the compute-heavy operator families (ops/gemm.c, conv.c, pool.c, resize.c),
covering what the ONNX backend suite misses:

  * the GEMM kernel's blocking: products with K past one 256-deep panel, M
    past one 6-row tile, N not a multiple of 16, weights packed at load
    (initializers) and streamed (inputs), and one product big enough to be
    split over threads;
  * old schema versions: Gemm-6's broadcast attribute, MatMul-1, Conv-1,
    MaxPool-1/8, AveragePool-7, LpPool-1's float p, GlobalLpPool-2,
    Upsample-7's scales attribute, Resize-10;
  * more dtypes (double, float16, int32/int64/uint32 products, int8/uint8
    pooling, strings through nearest Resize) and numpy's matmul rules (1-D
    promotion, batch broadcasting);
  * errors that must be reported at load or run, not crash: mismatched inner
    dimensions, C that does not broadcast, bad group counts, kernels larger
    than the input, out-of-range MaxUnpool indices, scales and sizes together.

Expected values come from numpy: direct loop references written here for
convolutions and pooling, ONNX's own reference functions for Resize
(onnx.backend.test.case.node.resize). Each case is a folder with model.onnx
and test_data_set_0/{input,output}_N.pb, an `expect_error` file holding text
the error must contain, and an optional fixture.json loosening the tolerance.

Deterministic (seeded); run with Debian's python (onnx 1.12, numpy):
    /usr/bin/python3 tools/gen_op_cases_gemm.py
"""
import itertools
import json
import os
import shutil

import numpy as np
import onnx
from onnx import helper, numpy_helper
from onnx.backend.test.case.node.resize import (cubic_coeffs, interpolate_nd, linear_coeffs,
                                                nearest_coeffs)

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "engine", "ops",
                   "cases", "gemm")
rng = np.random.default_rng(20240612)


def elem_type(array):
    if array.dtype == object:
        return onnx.TensorProto.STRING
    return onnx.mapping.NP_TYPE_TO_TENSOR_TYPE[array.dtype]


def tensor(name, array):
    return numpy_helper.from_array(np.asarray(array), name)


def case(name, op, inputs, outputs, opset, attrs=None, initializers=(), error=None,
         data=True, rtol=None, atol=None):
    """inputs/outputs: lists of (name, array); an input named "" is omitted.
    initializers: names among inputs stored as initializers, not fed."""
    node = helper.make_node(op, [n for n, _ in inputs], [n for n, _ in outputs], **(attrs or {}))
    graph_inputs = [helper.make_tensor_value_info(n, elem_type(a), a.shape)
                    for n, a in inputs if n and n not in initializers]
    graph_outputs = [helper.make_tensor_value_info(n, elem_type(a), None if error else a.shape)
                     for n, a in outputs if n]
    inits = [tensor(n, a) for n, a in inputs if n in initializers]
    graph = helper.make_graph([node], name, graph_inputs, graph_outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="gen_op_cases_gemm")
    model.ir_version = 7
    path = os.path.join(OUT, name)
    os.makedirs(path)
    onnx.save(model, os.path.join(path, "model.onnx"))
    if error is not None:
        with open(os.path.join(path, "expect_error"), "w") as f:
            f.write(error + "\n")
    if not data:
        return
    sets = os.path.join(path, "test_data_set_0")
    os.makedirs(sets)
    fed = [(n, a) for n, a in inputs if n and n not in initializers]
    for i, (n, a) in enumerate(fed):
        with open(os.path.join(sets, f"input_{i}.pb"), "wb") as f:
            f.write(tensor(n, a).SerializeToString())
    if error is None:
        for i, (n, a) in enumerate(o for o in outputs if o[0]):
            with open(os.path.join(sets, f"output_{i}.pb"), "wb") as f:
                f.write(tensor(n, a).SerializeToString())
    if rtol is not None:
        with open(os.path.join(path, "fixture.json"), "w") as f:
            json.dump({"tolerance": {"rtol": rtol, "atol": rtol if atol is None else atol}}, f)


def randn(*shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


def randint(lo, hi, *shape, dtype=np.int32):
    return rng.integers(lo, hi, size=shape).astype(dtype)


# ---- Gemm and MatMul -------------------------------------------------------------

def gemm_ref(a, b, c, alpha=1.0, beta=1.0, trans_a=0, trans_b=0):
    a64 = a.astype(np.float64).T if trans_a else a.astype(np.float64)
    b64 = b.astype(np.float64).T if trans_b else b.astype(np.float64)
    y = alpha * (a64 @ b64)
    if c is not None:
        y = y + beta * c.astype(np.float64)
    return y.astype(a.dtype)


def gemm_cases():
    # blocked kernel: K = 300 spans two panels, M = 13 two tiles and a row,
    # N = 37 two slivers and a ragged one; B packed at load
    a, b, c = randn(13, 300), randn(300, 37), randn(37)
    case("gemm_opset6_broadcast_vector_c_packed_b", "Gemm", [("a", a), ("b", b), ("c", c)],
         [("y", gemm_ref(a, b, c, 0.5, 2.0))], 6, {"broadcast": 1, "alpha": 0.5, "beta": 2.0},
         initializers=("b",), rtol=1e-4)
    bt = randn(37, 300)
    case("gemm_opset11_transposed_packed_b_no_c", "Gemm", [("a", a), ("b", bt)],
         [("y", gemm_ref(a, bt, None, trans_b=1))], 11, {"transB": 1},
         initializers=("b",), rtol=1e-4)
    at = randn(300, 13)
    case("gemm_opset13_trans_a_trans_b_inputs", "Gemm", [("a", at), ("b", bt), ("c", c)],
         [("y", gemm_ref(at, bt, c, trans_a=1, trans_b=1))], 13, {"transA": 1, "transB": 1},
         rtol=1e-4)
    # Gemm-6 without broadcast: C must already be (M, N)
    a2, b2 = randn(3, 4), randn(4, 5)
    case("gemm_opset6_no_broadcast_rejects_vector_c", "Gemm",
         [("a", a2), ("b", b2), ("c", randn(5))], [("y", np.zeros((3, 5), np.float32))], 6,
         error="does not broadcast")
    c2 = randn(3, 5)
    case("gemm_opset6_no_broadcast_matrix_c", "Gemm", [("a", a2), ("b", b2), ("c", c2)],
         [("y", gemm_ref(a2, b2, c2))], 6)
    cc = randn(3, 1)
    case("gemm_column_c_broadcasts_over_n", "Gemm", [("a", a2), ("b", b2), ("c", cc)],
         [("y", gemm_ref(a2, b2, cc))], 13)
    ad, bd, cd = randn(5, 7, dtype=np.float64), randn(7, 3, dtype=np.float64), randn(1, 3, dtype=np.float64)
    case("gemm_double", "Gemm", [("a", ad), ("b", bd), ("c", cd)],
         [("y", gemm_ref(ad, bd, cd, 1.5, 0.5))], 13, {"alpha": 1.5, "beta": 0.5})
    ai, bi, ci = randint(-50, 50, 4, 6), randint(-50, 50, 6, 3), randint(-50, 50, 3)
    case("gemm_int32_integral_alpha_beta", "Gemm", [("a", ai), ("b", bi), ("c", ci)],
         [("y", (2 * (ai.astype(np.int64) @ bi) - ci).astype(np.int32))], 13,
         {"alpha": 2.0, "beta": -1.0})
    case("gemm_int32_fractional_alpha_rejected", "Gemm", [("a", ai), ("b", bi)],
         [("y", np.zeros((4, 3), np.int32))], 13, {"alpha": 0.5}, error="alpha and beta must be integers")
    ah, bh, ch = randn(6, 20, dtype=np.float16), randn(20, 18, dtype=np.float16), randn(18, dtype=np.float16)
    case("gemm_float16_packed_b", "Gemm", [("a", ah), ("b", bh), ("c", ch)],
         [("y", gemm_ref(ah, bh, ch))], 13, initializers=("b",), rtol=1e-2)
    case("gemm_inner_dimensions_differ", "Gemm", [("a", randn(3, 4)), ("b", randn(5, 2))],
         [("y", np.zeros((3, 2), np.float32))], 13, error="inner dimensions differ")
    case("gemm_opset9_requires_c", "Gemm", [("a", a2), ("b", b2)],
         [("y", np.zeros((3, 5), np.float32))], 9, error="has 2 inputs; Gemm-9 takes 3 to 3")


def matmul_cases():
    a, b = randn(4), randn(4)
    case("matmul_1d_by_1d_is_scalar", "MatMul", [("a", a), ("b", b)],
         [("y", np.array(a.astype(np.float64) @ b, dtype=np.float32))], 13)
    a, b = randn(5), randn(2, 5, 3)
    case("matmul_1d_by_batched", "MatMul", [("a", a), ("b", b)], [("y", np.matmul(a, b))], 13,
         rtol=1e-5)
    a, b = randn(2, 3, 5), randn(5)
    case("matmul_batched_by_1d", "MatMul", [("a", a), ("b", b)], [("y", np.matmul(a, b))], 13,
         rtol=1e-5)
    a, b = randn(2, 1, 3, 4), randn(5, 4, 6)
    case("matmul_batch_broadcast", "MatMul", [("a", a), ("b", b)], [("y", np.matmul(a, b))], 13,
         rtol=1e-5)
    # batch folded into one product against packed weights, K past a panel
    a, b = randn(3, 7, 260), randn(260, 19)
    case("matmul_opset1_batched_a_packed_b", "MatMul", [("a", a), ("b", b)],
         [("y", np.matmul(a.astype(np.float64), b).astype(np.float32))], 1,
         initializers=("b",), rtol=1e-4)
    # big enough (48 x 300 x 290 multiply-adds) to be split over threads
    a, b = randn(48, 300), randn(300, 290)
    case("matmul_parallel_product", "MatMul", [("a", a), ("b", b)],
         [("y", np.matmul(a.astype(np.float64), b).astype(np.float32))], 13, rtol=1e-4)
    ai, bi = randint(-1000, 1000, 2, 3, 4, dtype=np.int64), randint(-1000, 1000, 4, 2, dtype=np.int64)
    case("matmul_int64", "MatMul", [("a", ai), ("b", bi)], [("y", np.matmul(ai, bi))], 13)
    au, bu = randint(0, 1000, 3, 4, dtype=np.uint32), randint(0, 1000, 4, 2, dtype=np.uint32)
    case("matmul_opset9_uint32", "MatMul", [("a", au), ("b", bu)], [("y", np.matmul(au, bu))], 9)
    case("matmul_opset1_rejects_int32", "MatMul",
         [("a", randint(0, 5, 2, 2)), ("b", randint(0, 5, 2, 2))],
         [("y", np.zeros((2, 2), np.int32))], 1, error="unsupported dtype")
    a0, b0 = randn(3, 0), randn(0, 4)
    case("matmul_zero_inner_dimension_gives_zeros", "MatMul", [("a", a0), ("b", b0)],
         [("y", np.zeros((3, 4), np.float32))], 13)
    ad, bd = randn(3, 4, dtype=np.float64), randn(4, 6, dtype=np.float64)
    case("matmul_double", "MatMul", [("a", ad), ("b", bd)], [("y", ad @ bd)], 13)
    ah, bh = randn(3, 8, dtype=np.float16), randn(8, 5, dtype=np.float16)
    case("matmul_float16", "MatMul", [("a", ah), ("b", bh)],
         [("y", np.matmul(ah.astype(np.float32), bh.astype(np.float32)).astype(np.float16))],
         13, rtol=1e-2)
    case("matmul_inner_dimensions_differ", "MatMul", [("a", randn(2, 3)), ("b", randn(4, 2))],
         [("y", np.zeros((2, 2), np.float32))], 13, error="inner dimensions differ")
    case("matmul_batches_do_not_broadcast", "MatMul",
         [("a", randn(2, 3, 4)), ("b", randn(3, 4, 5))], [("y", np.zeros((2, 3, 5), np.float32))],
         13, error="broadcast")

    # quantized products: per-row zero point of A, per-column of B
    a = randint(-128, 128, 3, 5, dtype=np.int8)
    b = randint(0, 256, 5, 4, dtype=np.uint8)
    azp = randint(-5, 5, 3, dtype=np.int8)
    bzp = randint(100, 150, 4, dtype=np.uint8)
    y = (a.astype(np.int32) - azp[:, None]) @ (b.astype(np.int32) - bzp[None, :])
    case("matmulinteger_int8_by_uint8_per_row_and_column_zero_points", "MatMulInteger",
         [("a", a), ("b", b), ("azp", azp), ("bzp", bzp)], [("y", y.astype(np.int32))], 10)
    a = randint(0, 256, 2, 3, 4, dtype=np.uint8)
    a_scale, a_zp = np.array([0.02, 0.03, 0.05], np.float32), np.array([120, 128, 130], np.uint8)
    b = randint(-128, 128, 4, 2, dtype=np.int8)
    b_scale, b_zp = np.array(0.01, np.float32), np.array(3, np.int8)
    y_scale, y_zp = np.array(0.05, np.float32), np.array(-10, np.int8)
    acc = (a.astype(np.int32) - a_zp[None, :, None]) @ (b.astype(np.int32) - b_zp)
    real = acc * (a_scale[None, :, None] * b_scale) / y_scale
    y = np.clip(np.rint(real.astype(np.float32)) + y_zp, -128, 127).astype(np.int8)
    case("qlinearmatmul_per_row_a_scale_int8_output", "QLinearMatMul",
         [("a", a), ("as", a_scale), ("azp", a_zp), ("b", b), ("bs", b_scale), ("bzp", b_zp),
          ("ys", y_scale), ("yzp", y_zp)], [("y", y)], 10)


# ---- Conv and ConvTranspose --------------------------------------------------------

def out_size(n, k, s, d, pb, pe):
    return (n + pb + pe - ((k - 1) * d + 1)) // s + 1


def conv_ref(x, w, b=None, strides=None, pads=None, dilations=None, group=1):
    sp = x.ndim - 2
    strides = strides or [1] * sp
    dilations = dilations or [1] * sp
    pads = pads or [0] * (2 * sp)
    xp = np.pad(x.astype(np.float64), [(0, 0), (0, 0)] + [(pads[i], pads[sp + i]) for i in range(sp)])
    kdims = w.shape[2:]
    outs = [out_size(x.shape[2 + i], kdims[i], strides[i], dilations[i], pads[i], pads[sp + i])
            for i in range(sp)]
    n, m = x.shape[0], w.shape[0]
    cg, mg = x.shape[1] // group, m // group
    y = np.zeros([n, m] + outs)
    for g in range(group):
        for k in itertools.product(*[range(kd) for kd in kdims]):
            sl = tuple(slice(k[i] * dilations[i], k[i] * dilations[i] + strides[i] * (outs[i] - 1) + 1,
                             strides[i]) for i in range(sp))
            xs = xp[(slice(None), slice(g * cg, (g + 1) * cg)) + sl]
            wk = w[(slice(g * mg, (g + 1) * mg), slice(None)) + tuple(k)].astype(np.float64)
            y[:, g * mg:(g + 1) * mg] += np.einsum("nc...,mc->nm...", xs, wk)
    if b is not None:
        y += b.astype(np.float64).reshape([1, m] + [1] * sp)
    return y.astype(x.dtype)


def conv_transpose_ref(x, w, b=None, strides=None, pads=None, dilations=None, group=1,
                       output_padding=None, out_shape=None):
    """Scatter every input pixel times the kernel into a full-size output,
    then crop [pad_begin, pad_begin + out) per axis (zeros where that lies
    past the full output)."""
    sp = x.ndim - 2
    strides = strides or [1] * sp
    dilations = dilations or [1] * sp
    pads = pads or [0] * (2 * sp)
    output_padding = output_padding or [0] * sp
    kdims = w.shape[2:]
    ins = x.shape[2:]
    full = [strides[i] * (ins[i] - 1) + (kdims[i] - 1) * dilations[i] + 1 for i in range(sp)]
    if out_shape is None:
        out_shape = [full[i] + output_padding[i] - pads[i] - pads[sp + i] for i in range(sp)]
    cg, mg = x.shape[1] // group, w.shape[1]
    n = x.shape[0]
    big = np.zeros([n, mg * group] + [full[i] + out_shape[i] + abs(pads[i]) + 2 for i in range(sp)])
    for g in range(group):
        for k in itertools.product(*[range(kd) for kd in kdims]):
            sl = tuple(slice(k[i] * dilations[i], k[i] * dilations[i] + strides[i] * (ins[i] - 1) + 1,
                             strides[i]) for i in range(sp))
            xs = x[:, g * cg:(g + 1) * cg].astype(np.float64)
            wk = w[(slice(g * cg, (g + 1) * cg), slice(None)) + tuple(k)].astype(np.float64)
            big[(slice(None), slice(g * mg, (g + 1) * mg)) + sl] += np.einsum("nc...,cm->nm...", xs, wk)
    crop = tuple(slice(pads[i], pads[i] + out_shape[i]) for i in range(sp))
    y = big[(slice(None), slice(None)) + crop]
    if b is not None:
        y = y + b.astype(np.float64).reshape([1, -1] + [1] * sp)
    return y.astype(x.dtype)


def conv_cases():
    # K = 32 * 9 = 288 spans two panels, M = 20 is 3 tiles and 2 rows, packed W
    x, w, b = randn(1, 32, 9, 11), randn(20, 32, 3, 3), randn(20)
    case("conv_packed_weights_deep_k", "Conv", [("x", x), ("w", w), ("b", b)],
         [("y", conv_ref(x, w, b, pads=[1, 1, 1, 1]))], 11, {"pads": [1, 1, 1, 1]},
         initializers=("w", "b"), rtol=1e-4)
    x, w = randn(2, 8, 5, 7), randn(6, 8, 1, 1)
    case("conv_pointwise_batch2", "Conv", [("x", x), ("w", w)], [("y", conv_ref(x, w))], 11,
         initializers=("w",), rtol=1e-5)
    x, w, b = randn(1, 4, 6, 7, 5), randn(6, 2, 2, 3, 2), randn(6)
    attrs = {"group": 2, "strides": [2, 1, 2], "dilations": [1, 2, 1], "pads": [1, 0, 1, 0, 2, 1]}
    case("conv_3d_group_stride_dilation_pads", "Conv", [("x", x), ("w", w), ("b", b)],
         [("y", conv_ref(x, w, b, attrs["strides"], attrs["pads"], attrs["dilations"], 2))], 11,
         attrs, rtol=1e-4)
    # SAME_LOWER puts the odd padding first: in 7, k 4, stride 2 -> out 4, pad 3 = 2 + 1
    x, w = randn(1, 2, 7, 7), randn(3, 2, 4, 4)
    case("conv_same_lower_odd_padding", "Conv", [("x", x), ("w", w)],
         [("y", conv_ref(x, w, strides=[2, 2], pads=[2, 2, 1, 1]))], 11,
         {"auto_pad": "SAME_LOWER", "strides": [2, 2]}, rtol=1e-5)
    case("conv_valid", "Conv", [("x", x), ("w", w)], [("y", conv_ref(x, w, strides=[2, 1]))], 11,
         {"auto_pad": "VALID", "strides": [2, 1]}, rtol=1e-5)
    xd, wd, bd = randn(1, 3, 5, 5, dtype=np.float64), randn(4, 3, 3, 3, dtype=np.float64), randn(4, dtype=np.float64)
    case("conv_opset1_double", "Conv", [("x", xd), ("w", wd), ("b", bd)],
         [("y", conv_ref(xd, wd, bd, pads=[0, 1, 0, 1]))], 1, {"pads": [0, 1, 0, 1]})
    xh, wh = randn(1, 4, 6, 6, dtype=np.float16), randn(8, 1, 3, 3, dtype=np.float16)
    case("conv_float16_depthwise_multiplier", "Conv", [("x", xh), ("w", wh)],
         [("y", conv_ref(xh.astype(np.float32), wh.astype(np.float32), group=4).astype(np.float16))],
         11, {"group": 4}, initializers=("w",), rtol=1e-2)
    case("conv_empty_batch", "Conv", [("x", randn(0, 2, 5, 5)), ("w", randn(3, 2, 3, 3))],
         [("y", np.zeros((0, 3, 3, 3), np.float32))], 11, initializers=("w",))
    case("conv_group_does_not_divide_channels", "Conv",
         [("x", randn(1, 4, 5, 5)), ("w", randn(3, 2, 3, 3))], [("y", np.zeros((1, 3, 3, 3), np.float32))],
         11, {"group": 2}, error="do not match")
    case("conv_kernel_larger_than_input", "Conv",
         [("x", randn(1, 1, 2, 2)), ("w", randn(1, 1, 3, 3))], [("y", np.zeros((1, 1, 1, 1), np.float32))],
         11, error="smaller than the kernel")
    case("conv_4d_spatial_unsupported", "Conv",
         [("x", randn(1, 1, 2, 2, 2, 2)), ("w", randn(1, 1, 1, 1, 1, 1))],
         [("y", np.zeros((1, 1, 2, 2, 2, 2), np.float32))], 11, error="spatial")

    # ConvTranspose
    x, w, b = randn(1, 4, 3, 4), randn(4, 3, 3, 2), randn(6)
    attrs = {"group": 2, "strides": [2, 3], "dilations": [2, 1], "pads": [1, 0, 0, 2],
             "output_padding": [1, 2]}
    case("convtranspose_group_stride_dilation_pads_output_padding", "ConvTranspose",
         [("x", x), ("w", w), ("b", b)],
         [("y", conv_transpose_ref(x, w, b, attrs["strides"], attrs["pads"], attrs["dilations"],
                                   2, attrs["output_padding"]))], 11, attrs,
         initializers=("w",), rtol=1e-5)
    x, w = randn(1, 2, 5), randn(2, 3, 3)
    # SAME_LOWER: out = in * stride = 10, total padding 3 -> 2 before, 1 after
    case("convtranspose_1d_same_lower", "ConvTranspose", [("x", x), ("w", w)],
         [("y", conv_transpose_ref(x, w, strides=[2], pads=[1, 0], out_shape=[10]))], 11,
         {"auto_pad": "SAME_LOWER", "strides": [2]}, rtol=1e-5)
    xd, wd = randn(2, 3, 3, 3, dtype=np.float64), randn(3, 2, 2, 2, dtype=np.float64)
    case("convtranspose_opset1_double_batch2", "ConvTranspose", [("x", xd), ("w", wd)],
         [("y", conv_transpose_ref(xd, wd, strides=[2, 2]))], 1, {"strides": [2, 2]})

    # integer convolutions: per-output-channel weight zero points
    x = randint(0, 256, 1, 2, 5, 5, dtype=np.uint8)
    w = randint(-128, 128, 3, 2, 3, 3, dtype=np.int8)
    xzp, wzp = np.array(100, np.uint8), np.array([1, -2, 3], np.int8)
    acc = conv_ref((x.astype(np.int64) - 100).astype(np.float64),
                   (w.astype(np.int64) - wzp.reshape(3, 1, 1, 1)).astype(np.float64), pads=[1, 1, 1, 1])
    case("convinteger_per_channel_weight_zero_point", "ConvInteger",
         [("x", x), ("w", w), ("xzp", xzp), ("wzp", wzp)], [("y", acc.astype(np.int32))], 10,
         {"pads": [1, 1, 1, 1]})
    xs, ws = np.array(0.05, np.float32), np.array([0.01, 0.02, 0.005], np.float32)
    ys, yzp = np.array(0.3, np.float32), np.array(5, np.uint8)
    bias = randint(-500, 500, 3)
    real = (acc + bias.reshape(1, 3, 1, 1)) * (xs * ws).reshape(1, 3, 1, 1).astype(np.float32) / ys
    y = np.clip(np.rint(real.astype(np.float32)) + 5, 0, 255).astype(np.uint8)
    case("qlinearconv_per_channel_with_bias", "QLinearConv",
         [("x", x), ("xs", xs), ("xzp", xzp), ("w", w), ("ws", ws), ("wzp", wzp), ("ys", ys),
          ("yzp", yzp), ("b", bias)], [("y", y)], 10, {"pads": [1, 1, 1, 1]})


def conv_slice_cases():
    """Dense stride-1 2-D Convs with packed weights, which (with the AVX-512
    kernel) run in column slices: several small images per product, a large
    plane cut into chunks with a ragged last one, fewer output rows than
    input rows, 5x5 and dilated taps. Their own generator so that the data
    of the cases above stay as they were."""
    r = np.random.default_rng(20261206)

    def rn(*shape):
        return r.standard_normal(shape).astype(np.float32)

    x, w, b = rn(40, 5, 4, 4), rn(12, 5, 3, 3), rn(12)
    case("conv_sliced_small_planes_many_images", "Conv", [("x", x), ("w", w), ("b", b)],
         [("y", conv_ref(x, w, b, pads=[1, 1, 1, 1]))], 11, {"pads": [1, 1, 1, 1]},
         initializers=("w", "b"), rtol=1e-4)
    x, w, b = rn(2, 3, 40, 41), rn(20, 3, 3, 3), rn(20)
    case("conv_sliced_large_plane_chunks", "Conv", [("x", x), ("w", w), ("b", b)],
         [("y", conv_ref(x, w, b, pads=[1, 1, 1, 1]))], 11, {"pads": [1, 1, 1, 1]},
         initializers=("w", "b"), rtol=1e-4)
    x, w = rn(3, 4, 23, 19), rn(7, 4, 3, 3)
    case("conv_sliced_valid_height", "Conv", [("x", x), ("w", w)],
         [("y", conv_ref(x, w, pads=[0, 1, 0, 1]))], 11, {"pads": [0, 1, 0, 1]},
         initializers=("w",), rtol=1e-4)
    x, w, b = rn(2, 6, 17, 17), rn(9, 6, 5, 5), rn(9)
    case("conv_sliced_5x5_dilated", "Conv", [("x", x), ("w", w), ("b", b)],
         [("y", conv_ref(x, w, b, pads=[4, 4, 4, 4], dilations=[2, 2]))], 11,
         {"pads": [4, 4, 4, 4], "dilations": [2, 2]}, initializers=("w", "b"), rtol=1e-4)
    # over 4M multiply-adds: the slices are shared by the threads (--threads 2)
    x, w, b = rn(16, 16, 8, 8), rn(32, 16, 3, 3), rn(32)
    case("conv_sliced_images_over_threads", "Conv", [("x", x), ("w", w), ("b", b)],
         [("y", conv_ref(x, w, b, pads=[1, 1, 1, 1]))], 11, {"pads": [1, 1, 1, 1]},
         initializers=("w", "b"), rtol=1e-4)
    x, w, b = rn(1, 8, 64, 64), rn(17, 8, 3, 3), rn(17)
    case("conv_sliced_chunks_over_threads", "Conv", [("x", x), ("w", w), ("b", b)],
         [("y", conv_ref(x, w, b, pads=[1, 1, 1, 1]))], 11, {"pads": [1, 1, 1, 1]},
         initializers=("w", "b"), rtol=1e-4)


# ---- pooling -----------------------------------------------------------------------

def pool_ref(x, mode, kernel, strides=None, pads=None, dilations=None, ceil_mode=False,
             count_include_pad=False, p=2.0, storage_order=0):
    """Direct windows; returns (y, indices). Follows ONNX Runtime's output
    size rule (a ceil_mode window starting in the end padding is dropped)."""
    sp = x.ndim - 2
    strides = strides or [1] * sp
    dilations = dilations or [1] * sp
    pads = pads or [0] * (2 * sp)
    outs = []
    for i in range(sp):
        span = x.shape[2 + i] + pads[i] + pads[sp + i] - ((kernel[i] - 1) * dilations[i] + 1)
        o = (-(-span // strides[i]) if ceil_mode else span // strides[i]) + 1
        if ceil_mode and (o - 1) * strides[i] >= x.shape[2 + i] + pads[i]:
            o -= 1
        outs.append(o)
    y = np.zeros(x.shape[:2] + tuple(outs), dtype=np.float64)
    ind = np.zeros(x.shape[:2] + tuple(outs), dtype=np.int64)
    for n, c in itertools.product(range(x.shape[0]), range(x.shape[1])):
        for o in itertools.product(*[range(v) for v in outs]):
            start = [o[i] * strides[i] - pads[i] for i in range(sp)]
            vals, where = [], []
            for k in itertools.product(*[range(v) for v in kernel]):
                pos = [start[i] + k[i] * dilations[i] for i in range(sp)]
                if all(0 <= pos[i] < x.shape[2 + i] for i in range(sp)):
                    vals.append(float(x[(n, c) + tuple(pos)]))
                    where.append(pos)
            if mode == "max":
                j = int(np.argmax(vals))
                y[(n, c) + o] = vals[j]
                pos = where[j]
                if storage_order:
                    flat = 0
                    for i in reversed(range(sp)):
                        flat = flat * x.shape[2 + i] + pos[i]
                else:
                    flat = int(np.ravel_multi_index(pos, x.shape[2:]))
                plane = int(np.prod(x.shape[2:]))
                ind[(n, c) + o] = (n * x.shape[1] + c) * plane + flat
            elif mode == "avg":
                if count_include_pad:
                    count = 1
                    for i in range(sp):
                        end = min(start[i] + kernel[i], x.shape[2 + i] + pads[sp + i])
                        count *= end - start[i]
                else:
                    count = len(vals)
                y[(n, c) + o] = sum(vals) / count
            else:
                y[(n, c) + o] = sum(abs(v) ** p for v in vals) ** (1.0 / p)
    return y.astype(x.dtype), ind


def pool_cases():
    x = randn(1, 2, 5, 6)
    y, ind = pool_ref(x, "max", [2, 3], strides=[2, 2], storage_order=1)
    case("maxpool_opset8_indices_column_major", "MaxPool", [("x", x)], [("y", y), ("i", ind)], 8,
         {"kernel_shape": [2, 3], "strides": [2, 2], "storage_order": 1})
    y, ind = pool_ref(x, "max", [3, 2], strides=[2, 3], pads=[1, 0, 1, 1], dilations=[2, 1],
                      ceil_mode=True)
    case("maxpool_ceil_dilation_pads_indices", "MaxPool", [("x", x)], [("y", y), ("i", ind)], 12,
         {"kernel_shape": [3, 2], "strides": [2, 3], "pads": [1, 0, 1, 1], "dilations": [2, 1],
          "ceil_mode": 1})
    xi = randint(-128, 128, 1, 3, 4, 4, dtype=np.int8)
    case("maxpool_opset12_int8", "MaxPool", [("x", xi)],
         [("y", pool_ref(xi, "max", [2, 2], strides=[2, 2])[0])], 12,
         {"kernel_shape": [2, 2], "strides": [2, 2]})
    case("maxpool_opset11_rejects_uint8", "MaxPool", [("x", xi.astype(np.uint8))],
         [("y", np.zeros((1, 3, 2, 2), np.uint8))], 11, {"kernel_shape": [2, 2]},
         error="unsupported dtype")
    x3 = randn(1, 1, 3, 4, 5)
    case("maxpool_opset1_3d", "MaxPool", [("x", x3)],
         [("y", pool_ref(x3, "max", [2, 2, 2], pads=[0, 1, 0, 1, 0, 1])[0])], 1,
         {"kernel_shape": [2, 2, 2], "pads": [0, 1, 0, 1, 0, 1]})
    case("maxpool_opset1_rejects_indices", "MaxPool", [("x", x)],
         [("y", np.zeros((1, 2, 4, 5), np.float32)), ("i", np.zeros((1, 2, 4, 5), np.int64))], 1,
         {"kernel_shape": [2, 2]}, error="has 2 outputs; MaxPool-1 gives 1 to 1")
    case("maxpool_kernel_larger_than_input", "MaxPool", [("x", randn(1, 1, 2, 2))],
         [("y", np.zeros((1, 1, 1, 1), np.float32))], 12, {"kernel_shape": [3, 3]},
         error="smaller than the window")
    case("maxpool_pads_not_smaller_than_kernel", "MaxPool", [("x", x)],
         [("y", np.zeros((1, 2, 7, 8), np.float32))], 12,
         {"kernel_shape": [2, 2], "pads": [2, 0, 0, 0]}, error="pads must be smaller")
    y, _ = pool_ref(x, "avg", [3, 3], strides=[2, 2], pads=[1, 1, 1, 1], count_include_pad=True)
    case("averagepool_opset7_count_include_pad", "AveragePool", [("x", x)], [("y", y)], 7,
         {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1], "count_include_pad": 1},
         rtol=1e-5)
    y, _ = pool_ref(x, "avg", [2, 4], strides=[2, 3], pads=[0, 1, 0, 1], ceil_mode=True,
                    count_include_pad=True)
    case("averagepool_ceil_count_include_pad_clips_window", "AveragePool", [("x", x)],
         [("y", y)], 11, {"kernel_shape": [2, 4], "strides": [2, 3], "pads": [0, 1, 0, 1],
                          "ceil_mode": 1, "count_include_pad": 1}, rtol=1e-5)
    xh = randn(1, 2, 4, 5, dtype=np.float16)
    case("averagepool_float16", "AveragePool", [("x", xh)],
         [("y", pool_ref(xh.astype(np.float32), "avg", [2, 2])[0].astype(np.float16))], 11,
         {"kernel_shape": [2, 2]}, rtol=2e-3)
    y, _ = pool_ref(x, "lp", [2, 2], strides=[1, 2], pads=[1, 0, 0, 1], p=3.0)
    case("lppool_opset1_float_p", "LpPool", [("x", x)], [("y", y)], 1,
         {"kernel_shape": [2, 2], "strides": [1, 2], "pads": [1, 0, 0, 1], "p": 3.0}, rtol=1e-5)
    y, _ = pool_ref(x, "lp", [3, 2], p=1.0)
    case("lppool_opset11_p1", "LpPool", [("x", x)], [("y", y)], 11,
         {"kernel_shape": [3, 2], "p": 1}, rtol=1e-5)
    y, _ = pool_ref(x, "lp", [5, 6])
    case("globallppool_opset2_default_p", "GlobalLpPool", [("x", x)], [("y", y)], 2, rtol=1e-5)
    xd = randn(2, 3, 4, dtype=np.float64)
    case("globalmaxpool_double_1d", "GlobalMaxPool", [("x", xd)],
         [("y", xd.max(axis=2, keepdims=True))], 1)
    case("globalaveragepool_float16_3d", "GlobalAveragePool", [("x", x3.astype(np.float16))],
         [("y", x3.mean(axis=(2, 3, 4), keepdims=True).astype(np.float16))], 1, rtol=2e-3)

    xs = randn(1, 1, 2, 2)
    ind = np.array([[[[0, 3], [12, 16]]]], dtype=np.int64)
    case("maxunpool_index_out_of_range", "MaxUnpool", [("x", xs), ("i", ind)],
         [("y", np.zeros((1, 1, 4, 4), np.float32))], 11,
         {"kernel_shape": [2, 2], "strides": [2, 2]}, error="outside")
    ind = np.array([[[[0, 3], [9, 14]]]], dtype=np.int64)
    y = np.zeros(16, np.float32)
    y[ind.ravel()] = xs.ravel()
    case("maxunpool_opset9_pads_shrink_output", "MaxUnpool", [("x", xs), ("i", ind)],
         [("y", y.reshape(1, 1, 4, 4))], 9, {"kernel_shape": [3, 3], "strides": [2, 2],
                                             "pads": [1, 0, 0, 1]})

    # MaxRoiPool (Caffe's ROI pooling, as ONNX Runtime implements it)
    xr = randn(2, 2, 6, 7)
    rois = np.array([[0, 0.0, 0.0, 3.0, 3.0], [1, 1.0, 2.0, 6.0, 5.0], [1, 4.0, 4.0, 3.0, 3.0]],
                    np.float32)
    case("maxroipool_scaled_regions", "MaxRoiPool", [("x", xr), ("rois", rois)],
         [("y", max_roi_pool_ref(xr, rois, (2, 3), 0.5))], 1,
         {"pooled_shape": [2, 3], "spatial_scale": 0.5})


def max_roi_pool_ref(x, rois, pooled, scale):
    ph, pw = pooled
    y = np.zeros((rois.shape[0], x.shape[1], ph, pw), np.float32)
    h, w = x.shape[2:]
    for r, roi in enumerate(rois):
        b = int(roi[0])
        # std::round: halves away from zero (np.round would go to even)
        x1, y1, x2, y2 = [int(np.floor(v * scale + 0.5)) for v in roi[1:]]
        bin_h = max(y2 - y1 + 1, 1) / ph
        bin_w = max(x2 - x1 + 1, 1) / pw
        for i in range(ph):
            for j in range(pw):
                h0 = min(max(int(np.floor(i * bin_h)) + y1, 0), h)
                h1 = min(max(int(np.ceil((i + 1) * bin_h)) + y1, 0), h)
                w0 = min(max(int(np.floor(j * bin_w)) + x1, 0), w)
                w1 = min(max(int(np.ceil((j + 1) * bin_w)) + x1, 0), w)
                if h1 <= h0 or w1 <= w0:
                    y[r, :, i, j] = 0
                else:
                    y[r, :, i, j] = x[b, :, h0:h1, w0:w1].max(axis=(1, 2))
    return y


# ---- Resize and Upsample -----------------------------------------------------------

def legacy_nearest(x, scales):
    """Upsample / Resize-10 nearest: asymmetric coordinates, floor when
    upsampling (ONNX Runtime's rule for these versions)."""
    out = [int(np.floor(s * d)) for s, d in zip(scales, x.shape)]
    idx = [np.minimum(np.floor(np.arange(o) / s).astype(int), d - 1)
           for o, s, d in zip(out, scales, x.shape)]
    return x[np.ix_(*idx)]


def resize_cases():
    x = randn(1, 2, 3, 4)
    scales = np.array([1, 1, 2, 1.5], np.float32)
    y = interpolate_nd(x, linear_coeffs, scale_factors=scales,
                       coordinate_transformation_mode="asymmetric").astype(np.float32)
    case("upsample_opset7_scales_attribute_linear", "Upsample", [("x", x)], [("y", y)], 7,
         {"scales": [1.0, 1.0, 2.0, 1.5], "mode": "linear"}, rtol=1e-5)
    xi = randint(0, 100, 1, 1, 2, 3, dtype=np.int32)
    case("upsample_opset9_int32_nearest", "Upsample", [("x", xi), ("s", np.array([1, 1, 3, 2], np.float32))],
         [("y", legacy_nearest(xi, [1, 1, 3, 2]))], 9)
    case("resize_opset10_nearest_upsample", "Resize", [("x", x), ("s", scales)],
         [("y", legacy_nearest(x, scales))], 10)
    y = interpolate_nd(x, linear_coeffs, scale_factors=np.array([1, 1, 0.5, 0.75], np.float32),
                       coordinate_transformation_mode="asymmetric").astype(np.float32)
    case("resize_opset10_linear_downsample", "Resize",
         [("x", x), ("s", np.array([1, 1, 0.5, 0.75], np.float32))], [("y", y)], 10,
         {"mode": "linear"}, rtol=1e-5)
    words = np.array([["a", "bb"], ["ccc", "d"]], dtype=object)
    # nearest on the element numbers picks which string each output copies
    picks = interpolate_nd(np.arange(4.0).reshape(2, 2), nearest_coeffs,
                           scale_factors=np.array([2, 1.5], np.float32)).astype(int)
    case("resize_opset13_strings_nearest", "Resize",
         [("x", words), ("", None), ("s", np.array([2, 1.5], np.float32))],
         [("y", words.ravel()[picks])], 13)
    x3 = randn(2, 3, 4)
    sizes = np.array([3, 5, 2], np.int64)
    y = interpolate_nd(x3, lambda r: cubic_coeffs(r, -0.5), output_size=sizes,
                       exclude_outside=True).astype(np.float32)
    case("resize_opset11_cubic_every_axis_exclude_outside", "Resize",
         [("x", x3), ("roi", np.zeros(0, np.float32)), ("s", np.zeros(0, np.float32)),
          ("sizes", sizes)], [("y", y)], 11, {"mode": "cubic", "cubic_coeff_a": -0.5,
                                              "exclude_outside": 1}, rtol=1e-5)
    roi = np.array([0, 0, 0.2, -0.3, 1, 1, 0.9, 1.4], np.float32)
    sizes = np.array([1, 2, 4, 5], np.int64)
    y = interpolate_nd(x, linear_coeffs, output_size=sizes, roi=roi,
                       coordinate_transformation_mode="tf_crop_and_resize",
                       extrapolation_value=7.5).astype(np.float32)
    case("resize_tf_crop_and_resize_extrapolation", "Resize",
         [("x", x), ("roi", roi), ("", None), ("sizes", sizes)], [("y", y)], 13,
         {"mode": "linear", "coordinate_transformation_mode": "tf_crop_and_resize",
          "extrapolation_value": 7.5}, rtol=1e-5)
    xu = randint(0, 256, 1, 1, 3, 3, dtype=np.uint8)
    y = interpolate_nd(xu.astype(np.float64), lambda r: nearest_coeffs(r, "ceil"),
                       scale_factors=np.array([1, 1, 1.7, 0.7], np.float32),
                       coordinate_transformation_mode="pytorch_half_pixel")
    case("resize_uint8_nearest_ceil_pytorch_half_pixel", "Resize",
         [("x", xu), ("", None), ("s", np.array([1, 1, 1.7, 0.7], np.float32))],
         [("y", y.astype(np.uint8))], 13,
         {"coordinate_transformation_mode": "pytorch_half_pixel", "nearest_mode": "ceil"})
    case("resize_scales_and_sizes_together", "Resize",
         [("x", x), ("", None), ("s", scales), ("sizes", np.array([1, 2, 6, 6], np.int64))],
         [("y", np.zeros((1, 2, 6, 6), np.float32))], 13, error="only one of scales and sizes")
    case("resize_cubic_rejects_strings", "Resize",
         [("x", words), ("", None), ("s", np.array([2, 2], np.float32))],
         [("y", np.zeros((4, 4), dtype=object))], 13, {"mode": "cubic"}, error="numeric")


def main():
    if os.path.exists(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    gemm_cases()
    matmul_cases()
    conv_cases()
    pool_cases()
    resize_cases()
    conv_slice_cases()
    print(f"wrote {len(os.listdir(OUT))} cases to {os.path.normpath(OUT)}")


if __name__ == "__main__":
    main()
