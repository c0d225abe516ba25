#!/usr/bin/python3
"""Writes tests/engine/ops/cases/reduce/: small ONNX backend-layout cases for
the reduce, softmax, normalization, sort and loss operator families, covering
what the ONNX backend suite misses: old opset semantics (attribute axes,
Softmax-1/11's 2-D coercion, TopK-1's k attribute, BatchNormalization-7's
spatial=0), more dtypes, ties, empty axes, blocked strided paths (inner runs
longer than one kernel block) and errors that must be reported, not crash.

Each case is a folder with model.onnx and test_data_set_0/{input,output}_N.pb
(expected values from numpy), or an `expect_error` file holding text the
error must contain. An optional fixture.json loosens the tolerance of
float16 outputs.

Run with Debian's python (onnx 1.12, numpy): /usr/bin/python3 tools/gen_op_cases_reduce.py
"""
import json
import os
import shutil

import numpy as np
import onnx
from onnx import helper, numpy_helper

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "engine", "ops",
                   "cases", "reduce")
rng = np.random.default_rng(20240611)


def elem_type(array):
    return helper.np_dtype_to_tensor_dtype(array.dtype) if hasattr(helper, "np_dtype_to_tensor_dtype") \
        else onnx.mapping.NP_TYPE_TO_TENSOR_TYPE[array.dtype]


def tensor(name, array):
    if array.dtype == object:
        return numpy_helper.from_array(array, name)
    return numpy_helper.from_array(np.asarray(array), name)


def case(name, op, inputs, outputs, opset, attrs=None, initializers=(), error=None,
         data=True, rtol=None, domain_inputs=None):
    """inputs/outputs: lists of (name, array); an input named "" is omitted.
    initializers: names among inputs stored as initializers, not fed."""
    attrs = attrs or {}
    node = helper.make_node(op, [n for n, _ in inputs], [n for n, _ in outputs], **attrs)
    graph_inputs = [helper.make_tensor_value_info(n, elem_type(a), a.shape)
                    for n, a in inputs if n and n not in initializers]
    graph_outputs = [helper.make_tensor_value_info(n, elem_type(a), a.shape)
                     for n, a in outputs if n]
    inits = [tensor(n, a) for n, a in inputs if n in initializers]
    graph = helper.make_graph([node], name, graph_inputs, graph_outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="gen_op_cases_reduce")
    model.ir_version = 8
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
            json.dump({"tolerance": {"rtol": rtol, "atol": rtol}}, f)


def randn(*shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


def randint(lo, hi, *shape, dtype=np.int32):
    return rng.integers(lo, hi, size=shape).astype(dtype)


# ---- Reduce* ------------------------------------------------------------------

def reduce_cases():
    x = randn(3, 4, 5)
    case("reduce_sum_opset11_axes_attribute", "ReduceSum", [("x", x)],
         [("y", x.sum(axis=(0, 2)))], 11, {"axes": [0, 2], "keepdims": 0})
    case("reduce_sum_opset1_default_axes_keepdims", "ReduceSum", [("x", x)],
         [("y", x.sum(keepdims=True))], 1)
    axes = np.array([], dtype=np.int64)
    case("reduce_sum_13_empty_axes_reduces_all", "ReduceSum", [("x", x), ("axes", axes)],
         [("y", np.array(x.sum(), dtype=np.float32))], 13, {"keepdims": 0})
    case("reduce_sum_13_omitted_axes_noop", "ReduceSum", [("x", x)], [("y", x)], 13,
         {"noop_with_empty_axes": 1})
    axes = np.array([-1], dtype=np.int64)
    case("reduce_sum_13_axes_initializer", "ReduceSum", [("x", x), ("axes", axes)],
         [("y", x.sum(axis=-1, keepdims=True))], 13, initializers=("axes",))
    xi = randint(-128, 128, 4, 6, dtype=np.int8)
    case("reduce_max_int8", "ReduceMax", [("x", xi)], [("y", xi.max(axis=1, keepdims=True))],
         13, {"axes": [1]})
    xu = randint(0, 256, 4, 6, dtype=np.uint8)
    case("reduce_min_uint8", "ReduceMin", [("x", xu)], [("y", xu.min(axis=0))], 13,
         {"axes": [0], "keepdims": 0})
    xp = randint(-3, 4, 3, 4, dtype=np.int32)
    case("reduce_prod_int32", "ReduceProd", [("x", xp)], [("y", xp.prod(axis=0, keepdims=True).astype(np.int32))],
         13, {"axes": [0]})
    case("reduce_l1_int32", "ReduceL1", [("x", xp)], [("y", np.abs(xp).sum(axis=1).astype(np.int32))],
         13, {"axes": [1], "keepdims": 0})
    xw = randn(3, 5, 130)
    case("reduce_mean_middle_axis_wide_inner", "ReduceMean", [("x", xw)],
         [("y", xw.mean(axis=1, keepdims=True))], 13, {"axes": [1]})
    case("reduce_sum_square_leading_axes_wide_inner", "ReduceSumSquare", [("x", xw)],
         [("y", (xw.astype(np.float64) ** 2).sum(axis=(0, 1)).astype(np.float32))], 13,
         {"axes": [0, 1], "keepdims": 0})
    xd = randn(4, 3, 70, dtype=np.float64)
    case("reduce_mean_double_outer_axes", "ReduceMean", [("x", xd)],
         [("y", xd.mean(axis=(0, 2)))], 13, {"axes": [0, 2], "keepdims": 0})
    x4 = randn(2, 3, 4, 5)
    case("reduce_max_alternating_axes", "ReduceMax", [("x", x4)],
         [("y", x4.max(axis=(0, 2), keepdims=True))], 13, {"axes": [0, 2]})
    empty = np.zeros((0, 3), dtype=np.float32)
    case("reduce_sum_empty_axis_is_zero", "ReduceSum", [("x", empty)],
         [("y", np.zeros((1, 3), dtype=np.float32))], 11, {"axes": [0]})
    case("reduce_prod_empty_axis_is_one", "ReduceProd", [("x", empty)],
         [("y", np.ones((3,), dtype=np.float32))], 13, {"axes": [0], "keepdims": 0})
    xl = (randn(3, 6) * 10 + 1000).astype(np.float32)
    m = xl.astype(np.float64).max(axis=1, keepdims=True)
    lse = (m + np.log(np.exp(xl - m).sum(axis=1, keepdims=True))).astype(np.float32)
    case("reduce_log_sum_exp_large_values", "ReduceLogSumExp", [("x", xl)], [("y", lse)], 13,
         {"axes": [1]})
    xh = randn(3, 8).astype(np.float16)
    l2 = np.sqrt((xh.astype(np.float64) ** 2).sum(axis=1)).astype(np.float16)
    case("reduce_l2_float16", "ReduceL2", [("x", xh)], [("y", l2)], 13,
         {"axes": [1], "keepdims": 0}, rtol=2e-3)
    case("reduce_mean_axis_out_of_range", "ReduceMean", [("x", x)], [("y", x)], 13,
         {"axes": [3]}, error="out of range", data=False)
    case("reduce_mean_repeated_axis", "ReduceMean", [("x", x)], [("y", x)], 13,
         {"axes": [1, -2]}, error="is repeated", data=False)
    case("reduce_sum_13_axes_input_out_of_range", "ReduceSum",
         [("x", x), ("axes", np.array([5], dtype=np.int64))], [("y", x)], 13,
         error="out of range")


# ---- ArgMax, ArgMin, CumSum --------------------------------------------------------

def arg_cases():
    xt = np.array([[1, 3, 3, 2], [5, 5, 1, 5], [0, -1, -1, 0]], dtype=np.int32)
    case("argmax_opset11_ties_first_index", "ArgMax", [("x", xt)],
         [("y", np.argmax(xt, axis=1).astype(np.int64))], 11, {"axis": 1, "keepdims": 0})
    last = (xt.shape[1] - 1 - np.argmin(xt[:, ::-1], axis=1)).astype(np.int64)
    case("argmin_select_last_index_ties", "ArgMin", [("x", xt.astype(np.int64))],
         [("y", last.reshape(3, 1))], 12, {"axis": -1, "select_last_index": 1})
    xu = randint(0, 8, 4, 3, 70, dtype=np.uint8)
    case("argmax_uint8_axis0_wide_inner", "ArgMax", [("x", xu)],
         [("y", np.argmax(xu, axis=0).astype(np.int64)[None])], 13, {"axis": 0})
    xh = randn(3, 7).astype(np.float16)
    case("argmin_float16", "ArgMin", [("x", xh)],
         [("y", np.argmin(xh, axis=1).astype(np.int64))], 13, {"axis": 1, "keepdims": 0})
    case("argmax_empty_axis", "ArgMax", [("x", np.zeros((2, 0), dtype=np.float32))],
         [("y", np.zeros((2, 1), dtype=np.int64))], 13, {"axis": 1}, error="is empty")
    case("argmax_axis_out_of_range", "ArgMax", [("x", xh)],
         [("y", np.zeros((3, 1), dtype=np.int64))], 13, {"axis": 2}, error="out of range",
         data=False)

    xc = randint(-50, 50, 2, 3, 70, dtype=np.int32)
    ref = np.flip(np.cumsum(np.flip(xc, 1), axis=1), 1) - xc
    case("cumsum_int32_reverse_exclusive_wide_inner", "CumSum",
         [("x", xc), ("axis", np.array(1, dtype=np.int64))], [("y", ref.astype(np.int32))], 14,
         {"reverse": 1, "exclusive": 1})
    xf = randn(3, 4)
    case("cumsum_opset11_last_axis", "CumSum", [("x", xf), ("axis", np.array(-1, dtype=np.int32))],
         [("y", np.cumsum(xf, axis=-1))], 11)
    case("cumsum_axis_out_of_range", "CumSum", [("x", xf), ("axis", np.array(2, dtype=np.int32))],
         [("y", xf)], 14, error="out of range")


# ---- Softmax, LogSoftmax, Hardmax --------------------------------------------------

def softmax_ref(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def log_softmax_ref(x, axis):
    m = x.max(axis=axis, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=axis, keepdims=True))


def hardmax_ref(x, axis):
    idx = np.expand_dims(np.argmax(x, axis=axis), axis)
    y = np.zeros_like(x)
    np.put_along_axis(y, idx, 1, axis=axis)
    return y


def coerced(fn, x, axis):
    """Softmax-1/11 semantics: flatten to [prod(dims[:axis]), prod(dims[axis:])]."""
    rows = int(np.prod(x.shape[:axis]))
    return fn(x.reshape(rows, -1), 1).reshape(x.shape)


def softmax_cases():
    x = randn(2, 3, 4)
    case("softmax_opset11_coerces_to_2d", "Softmax", [("x", x)],
         [("y", coerced(softmax_ref, x, 1))], 11, {"axis": 1})
    case("softmax_opset1_default_axis", "Softmax", [("x", x)],
         [("y", coerced(softmax_ref, x, 1))], 1)
    x2 = randn(3, 4)
    case("logsoftmax_opset11_axis0_whole_tensor", "LogSoftmax", [("x", x2)],
         [("y", coerced(log_softmax_ref, x2, 0))], 11, {"axis": 0})
    x4 = randn(2, 3, 4, 5)
    case("hardmax_opset11_axis2_4d", "Hardmax", [("x", x4)],
         [("y", coerced(hardmax_ref, x4, 2))], 11, {"axis": 2})
    xt = np.array([[1, 3, 3, 0], [2, 2, 2, 2]], dtype=np.float32)
    case("hardmax_ties_first_index", "Hardmax", [("x", xt)], [("y", hardmax_ref(xt, 1))], 13)
    xw = randn(2, 3, 130)
    case("softmax_middle_axis_wide_inner", "Softmax", [("x", xw)],
         [("y", softmax_ref(xw, 1))], 13, {"axis": 1})
    case("logsoftmax_middle_axis_wide_inner", "LogSoftmax", [("x", xw)],
         [("y", log_softmax_ref(xw, 1))], 13, {"axis": -2})
    case("hardmax_middle_axis_wide_inner", "Hardmax", [("x", xw)],
         [("y", hardmax_ref(xw, 1))], 13, {"axis": 1})
    xh = (randn(4, 10) * 3).astype(np.float16)
    case("softmax_float16", "Softmax", [("x", xh)],
         [("y", softmax_ref(xh.astype(np.float64), 1).astype(np.float16))], 13, rtol=2e-3)
    case("logsoftmax_float16_wide_inner", "LogSoftmax", [("x", xh.reshape(1, 4, 10))],
         [("y", log_softmax_ref(xh.reshape(1, 4, 10).astype(np.float64), 1).astype(np.float16))],
         13, {"axis": 1}, rtol=2e-3)
    xd = randn(5, 3, dtype=np.float64) * 50
    case("softmax_double_axis0", "Softmax", [("x", xd)], [("y", softmax_ref(xd, 0))], 13,
         {"axis": 0})
    case("softmax_axis_out_of_range", "Softmax", [("x", x2)], [("y", x2)], 13, {"axis": 2},
         error="out of range", data=False)
    # rows of 37: the float max runs 16 lanes at a time with a ragged end; a
    # NaN in the vector part or in the tail makes its whole row NaN, the
    # other rows are untouched (no rng draws: the cases above keep their data)
    xn = (np.sin(np.arange(4 * 37, dtype=np.float64) * 0.7) * 6).astype(np.float32).reshape(4, 37)
    xn[0, 9] = 11.0   # the max inside the vectors
    xn[1, 35] = 11.0  # the max in the tail
    xn[2, 5] = np.nan
    xn[3, 34] = np.nan
    with np.errstate(invalid="ignore"):
        case("softmax_rows_of_37_nan_in_vector_and_tail", "Softmax", [("x", xn)],
             [("y", softmax_ref(xn.astype(np.float64), 1).astype(np.float32))], 13)
        case("logsoftmax_rows_of_37_nan_in_vector_and_tail", "LogSoftmax", [("x", xn)],
             [("y", log_softmax_ref(xn.astype(np.float64), 1).astype(np.float32))], 13)
    # double rows on the last axis: the kept-exponentials row loop (float rows
    # go to vmath instead), a NaN row beside finite ones, logits far apart
    xr = np.cos(np.arange(3 * 11, dtype=np.float64) * 1.3).reshape(3, 11) * 80
    xr[1, 4] = np.nan
    with np.errstate(invalid="ignore"):
        case("softmax_double_rows_nan_row", "Softmax", [("x", xr)], [("y", softmax_ref(xr, 1))],
             13)


# ---- normalization -----------------------------------------------------------------

def batchnorm_ref(x, s, b, mean, var, eps=1e-5):
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return (s.reshape(shape) * (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps)
            + b.reshape(shape))


def layernorm_ref(x, scale, bias, axis, eps=1e-5):
    axes = tuple(range(axis % x.ndim, x.ndim))
    mean = x.astype(np.float64).mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    inv = 1 / np.sqrt(var + eps)
    y = (x - mean) * inv * scale
    if bias is not None:
        y = y + bias
    return y.astype(x.dtype), mean.astype(np.float32), inv.astype(np.float32)


def normalization_cases():
    x = randn(4, 3)
    s, b, mean = randn(3), randn(3), randn(3)
    var = rng.random(3).astype(np.float32) + 0.1
    case("batchnorm_opset9_rank2_initializers", "BatchNormalization",
         [("x", x), ("s", s), ("b", b), ("mean", mean), ("var", var)],
         [("y", batchnorm_ref(x, s, b, mean, var).astype(np.float32))], 9,
         initializers=("s", "b", "mean", "var"))
    x3 = randn(2, 3, 4)
    s, b, mean = randn(3, 4), randn(3, 4), randn(3, 4)
    var = rng.random((3, 4)).astype(np.float32) + 0.1
    y = (s * (x3 - mean) / np.sqrt(var + 1e-5) + b).astype(np.float32)
    case("batchnorm_opset7_spatial0_per_activation", "BatchNormalization",
         [("x", x3), ("s", s), ("b", b), ("mean", mean), ("var", var)], [("y", y)], 7,
         {"spatial": 0})
    xh = randn(2, 3, 5).astype(np.float16)
    s, b, mean = randn(3), randn(3), randn(3)
    var = rng.random(3).astype(np.float32) + 0.5
    y = batchnorm_ref(xh.astype(np.float64), s, b, mean, var, 1e-3).astype(np.float16)
    case("batchnorm_opset15_float16_x_float_params", "BatchNormalization",
         [("x", xh), ("s", s), ("b", b), ("mean", mean), ("var", var)], [("y", y)], 15,
         {"epsilon": 1e-3}, rtol=2e-3)
    x4 = randn(3, 2, 4, 5)
    s, b, mean = randn(2), randn(2), randn(2)
    var = rng.random(2).astype(np.float32)
    bm, bv = x4.mean(axis=(0, 2, 3)), x4.var(axis=(0, 2, 3))
    case("batchnorm_opset14_training_y_only", "BatchNormalization",
         [("x", x4), ("s", s), ("b", b), ("mean", mean), ("var", var)],
         [("y", batchnorm_ref(x4, s, b, bm, bv).astype(np.float32))], 14, {"training_mode": 1})
    case("batchnorm_opset9_training_outputs_refused", "BatchNormalization",
         [("x", x4), ("s", s), ("b", b), ("mean", mean), ("var", var)],
         [("y", x4), ("rm", mean), ("rv", var), ("sm", mean), ("sv", var)], 9,
         error="training-mode outputs")

    xi = randn(2, 3, 7)
    s, b = randn(3), randn(3)
    mu = xi.mean(axis=2, keepdims=True)
    sd = np.sqrt(xi.var(axis=2, keepdims=True) + 1e-5)
    case("instancenorm_rank3", "InstanceNormalization", [("x", xi), ("s", s), ("b", b)],
         [("y", ((xi - mu) / sd * s[None, :, None] + b[None, :, None]).astype(np.float32))], 6)

    xl = randn(2, 4, 5)
    scale = randn(5)
    y, mean, inv = layernorm_ref(xl, scale, None, -2)
    case("layernorm_no_bias_broadcast_scale_stats", "LayerNormalization",
         [("x", xl), ("scale", scale)], [("y", y), ("mean", mean), ("inv_std", inv)], 17,
         {"axis": -2})
    xd = randn(3, 6, dtype=np.float64)
    scale, bias = randn(6, dtype=np.float64), randn(6, dtype=np.float64)
    y, _, _ = layernorm_ref(xd, scale, bias, 1, 1e-2)
    case("layernorm_double", "LayerNormalization", [("x", xd), ("scale", scale), ("b", bias)],
         [("y", y)], 17, {"epsilon": 1e-2}, initializers=("scale", "b"))
    case("layernorm_stash_type_double_refused", "LayerNormalization",
         [("x", xd), ("scale", scale)], [("y", xd)], 17, {"stash_type": 11},
         error="stash_type", data=False)

    xr = randn(2, 5, 3, 3)
    for size, opset in ((4, 13), (3, 1)):
        sq = np.zeros_like(xr)
        for c in range(5):
            lo, hi = max(0, c - (size - 1) // 2), min(4, c + int(np.ceil((size - 1) / 2)))
            sq[:, c] = (xr[:, lo:hi + 1] ** 2).sum(axis=1)
        y = (xr / (2.0 + 1e-3 / size * sq) ** 0.6).astype(np.float32)
        case(f"lrn_size{size}_opset{opset}", "LRN", [("x", xr)], [("y", y)], opset,
             {"size": size, "alpha": 1e-3, "beta": 0.6, "bias": 2.0})

    xm = randn(2, 3, 4)
    mu = xm.mean(axis=1, keepdims=True)
    sd = np.sqrt((xm ** 2).mean(axis=1, keepdims=True) - mu ** 2)
    case("mvn_axes_1", "MeanVarianceNormalization", [("x", xm)],
         [("y", ((xm - mu) / (sd + 1e-9)).astype(np.float32))], 13, {"axes": [1]})
    xm4 = randn(2, 3, 2, 2)
    mu = xm4.mean(axis=(0, 2, 3), keepdims=True)
    sd = np.sqrt((xm4 ** 2).mean(axis=(0, 2, 3), keepdims=True) - mu ** 2)
    case("mvn_opset9_default_axes", "MeanVarianceNormalization", [("x", xm4)],
         [("y", ((xm4 - mu) / (sd + 1e-9)).astype(np.float32))], 9)

    xp = randn(3, 4)
    xp[1] = 0
    norm = np.abs(xp).sum(axis=1, keepdims=True)
    case("lpnorm_p1_zero_row", "LpNormalization", [("x", xp)],
         [("y", np.where(norm > 0, xp / np.where(norm > 0, norm, 1), 0).astype(np.float32))], 1,
         {"p": 1})
    xq = randn(3, 4, 2)
    case("lpnorm_p2_axis1", "LpNormalization", [("x", xq)],
         [("y", (xq / np.sqrt((xq ** 2).sum(axis=1, keepdims=True))).astype(np.float32))], 1,
         {"axis": 1})


# ---- TopK, Unique -------------------------------------------------------------------

def topk_ref(x, k, axis, largest):
    order = np.argsort(-x if largest else x, axis=axis, kind="stable")
    idx = np.take(order, np.arange(k), axis=axis)
    return np.take_along_axis(x, idx, axis=axis), idx.astype(np.int64)


def sort_cases():
    x = randn(3, 5)
    v, i = topk_ref(x, 2, -1, True)
    case("topk_opset1_k_attribute", "TopK", [("x", x)], [("v", v), ("i", i)], 1, {"k": 2})
    x3 = randn(4, 3, 70)
    v, i = topk_ref(x3, 3, 0, True)
    case("topk_opset10_k_input_axis0_wide_inner", "TopK",
         [("x", x3), ("k", np.array([3], dtype=np.int64))], [("v", v), ("i", i)], 10,
         {"axis": 0})
    xt = np.array([[1, 3, 3, 2, 3, 0], [5, 5, 5, 5, 5, 5]], dtype=np.float32)
    v, i = topk_ref(xt, 4, 1, True)
    case("topk_ties_keep_lower_index_largest", "TopK",
         [("x", xt), ("k", np.array([4], dtype=np.int64))], [("v", v), ("i", i)], 11)
    xi = np.array([[4, 1, 1, 7, 1], [2, 2, 9, 2, 0]], dtype=np.int32)
    v, i = topk_ref(xi, 3, 1, False)
    case("topk_ties_keep_lower_index_smallest_int32", "TopK",
         [("x", xi), ("k", np.array([3], dtype=np.int64))], [("v", v), ("i", i)], 11,
         {"largest": 0})
    xd = randn(2, 9, dtype=np.float64)
    v, i = topk_ref(xd, 9, 1, True)
    case("topk_k_equals_axis_double", "TopK",
         [("x", xd), ("k", np.array([9], dtype=np.int64))], [("v", v), ("i", i)], 11)
    case("topk_k_zero", "TopK", [("x", x), ("k", np.array([0], dtype=np.int64))],
         [("v", np.zeros((3, 0), np.float32)), ("i", np.zeros((3, 0), np.int64))], 11)
    xl = randint(-1000, 1000, 2, 300, dtype=np.int64)
    v, i = topk_ref(xl, 5, 1, True)
    case("topk_int64_long_axis", "TopK", [("x", xl), ("k", np.array([5], dtype=np.int64))],
         [("v", v), ("i", i)], 11)
    case("topk_k_larger_than_axis", "TopK", [("x", x), ("k", np.array([6], dtype=np.int64))],
         [("v", x), ("i", x.astype(np.int64))], 11, error="larger than")
    case("topk_negative_k", "TopK", [("x", x), ("k", np.array([-1], dtype=np.int64))],
         [("v", x), ("i", x.astype(np.int64))], 11, error="negative")

    xs = np.array(["pear", "apple", "fig", "apple", "pear", ""], dtype=object)
    y, idx, inv, cnt = np.unique(xs.astype(str), return_index=True, return_inverse=True,
                                 return_counts=True)
    case("unique_strings", "Unique", [("x", xs)],
         [("y", y.astype(object)), ("indices", idx.astype(np.int64)),
          ("inverse", inv.astype(np.int64)), ("counts", cnt.astype(np.int64))], 11)
    xa = np.array([[1, 5, 1, 2, 5], [0, 3, 0, 2, 3]], dtype=np.int64)
    y, idx, inv, cnt = np.unique(xa, axis=1, return_index=True, return_inverse=True,
                                 return_counts=True)
    order = np.argsort(idx)
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    case("unique_int64_axis1_not_sorted", "Unique", [("x", xa)],
         [("y", xa[:, idx[order]]), ("indices", idx[order].astype(np.int64)),
          ("inverse", rank[inv.reshape(-1)].astype(np.int64)),
          ("counts", cnt[order].astype(np.int64))], 11, {"axis": 1, "sorted": 0})
    xv = np.array([3.5, -1.0, 3.5, 2.0], dtype=np.float32)
    case("unique_values_only", "Unique", [("x", xv)], [("y", np.unique(xv))], 11)


# ---- losses --------------------------------------------------------------------------

def nll_ref(logp, target, weight=None, reduction="mean", ignore_index=None):
    n, c = logp.shape[:2]
    lp = logp.reshape(n, c, -1)
    t = target.reshape(n, -1)
    loss = np.zeros(t.shape, dtype=np.float64)
    w = np.zeros(t.shape, dtype=np.float64)
    for i in range(n):
        for d in range(t.shape[1]):
            if ignore_index is not None and t[i, d] == ignore_index:
                continue
            w[i, d] = 1.0 if weight is None else weight[t[i, d]]
            loss[i, d] = -lp[i, t[i, d], d] * w[i, d]
    if reduction == "none":
        return loss.reshape(target.shape)
    if reduction == "sum":
        return np.array(loss.sum())
    return np.array(loss.sum() / w.sum())


def loss_cases():
    x = randn(3, 4, 2)
    t = np.array([[0, 3], [2, 1], [1, 1]], dtype=np.int32)
    case("nllloss_int32_target_sum", "NegativeLogLikelihoodLoss", [("x", x), ("t", t)],
         [("loss", nll_ref(x, t, reduction="sum").astype(np.float32))], 13, {"reduction": "sum"})
    xd = randn(4, 5, dtype=np.float64)
    td = np.array([4, 0, 2, 2], dtype=np.int64)
    w = rng.random(5)
    case("nllloss_double_weight_none", "NegativeLogLikelihoodLoss",
         [("x", xd), ("t", td), ("w", w)],
         [("loss", nll_ref(xd, td, w, "none"))], 12, {"reduction": "none"})
    xs = randn(2, 3, 4, dtype=np.float64)
    ts = np.array([[0, 2, -5, 1], [2, -5, 0, 0]], dtype=np.int32)
    logp = log_softmax_ref(xs, 1)
    case("sce_int32_labels_sum_ignore_index_log_prob", "SoftmaxCrossEntropyLoss",
         [("x", xs), ("t", ts)],
         [("loss", nll_ref(logp, ts, None, "sum", -5)), ("log_prob", logp)], 13,
         {"reduction": "sum", "ignore_index": -5})
    case("nllloss_target_out_of_range", "NegativeLogLikelihoodLoss",
         [("x", xd), ("t", np.array([4, 0, 5, 2], dtype=np.int64))],
         [("loss", np.array(0.0))], 13, error="outside")


def main():
    if os.path.exists(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    reduce_cases()
    arg_cases()
    softmax_cases()
    normalization_cases()
    sort_cases()
    loss_cases()
    print(f"wrote {len(os.listdir(OUT))} cases to {os.path.normpath(OUT)}")


if __name__ == "__main__":
    main()
