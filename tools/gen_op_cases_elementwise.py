#!/usr/bin/python3
"""Writes tests/engine/ops/cases/elementwise/: small ONNX backend-layout cases
for the element-wise, activation, logical and cast operator families,
covering what the ONNX backend suite misses: the opset < 7 broadcast/axis
attributes, PRelu-6's per-channel slope, Clip-6's attributes, Selu-1's
defaults, broadcasting shapes the fast paths must get right (bias, channel,
outer, scalar, variadic), tensors large enough to be split over threads,
integer wrap-around, INT_MIN / -1, defined float -> int casts of NaN and
out-of-range values, string <-> number casts, and errors that must be
reported rather than crash (integer division by zero, unparseable strings,
bad attributes, shapes that do not broadcast).

Each case is a folder with model.onnx and test_data_set_0/{input,output}_N.pb
(expected values from numpy), or an `expect_error` file holding text the
error must contain (with inputs when the error happens at run time).

Run with Debian's python (onnx 1.12, numpy):
    /usr/bin/python3 tools/gen_op_cases_elementwise.py
"""
import math
import os
import shutil

import numpy as np
import onnx
from onnx import helper, numpy_helper, TensorProto

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "engine", "ops",
                   "cases", "elementwise")
rng = np.random.default_rng(20240612)


def elem_type(array):
    if array.dtype == object:
        return TensorProto.STRING
    return onnx.mapping.NP_TYPE_TO_TENSOR_TYPE[array.dtype]


def tensor(name, array):
    return numpy_helper.from_array(np.asarray(array) if array.dtype != object else array, name)


def case(name, op, inputs, outputs, opset, attrs=None, initializers=(), error=None,
         data=True, output_types=None):
    """inputs/outputs: lists of (name, array); an input named "" is omitted.
    initializers: input names stored as initializers, not fed.
    output_types: {name: (elem_type, shape)} for outputs without data."""
    attrs = attrs or {}
    output_types = output_types or {}
    node = helper.make_node(op, [n for n, _ in inputs], [n for n, _ in outputs], **attrs)
    graph_inputs = [helper.make_tensor_value_info(n, elem_type(a), a.shape)
                    for n, a in inputs if n and n not in initializers]
    graph_outputs = []
    for n, a in outputs:
        if a is None:
            t, shape = output_types[n]
            graph_outputs.append(helper.make_tensor_value_info(n, t, shape))
        else:
            graph_outputs.append(helper.make_tensor_value_info(n, elem_type(a), a.shape))
    inits = [tensor(n, a) for n, a in inputs if n in initializers]
    graph = helper.make_graph([node], name, graph_inputs, graph_outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="gen_op_cases_elementwise")
    model.ir_version = 8 if opset >= 9 else 3
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
        for i, (n, a) in enumerate(outputs):
            with open(os.path.join(sets, f"output_{i}.pb"), "wb") as f:
                f.write(tensor(n, a).SerializeToString())


def randn(*shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


def ints(low, high, shape, dtype):
    return rng.integers(low, high, size=shape).astype(dtype)


def legacy_broadcast():
    """Add-1/6 and friends: broadcast=1 aligns B with A at `axis`, or with
    A's trailing dims without it; broadcast=0 requires equal shapes."""
    a, b = randn(2, 3, 4, 5), randn(3, 4)
    case("add_opset6_axis1", "Add", [("A", a), ("B", b)],
         [("C", a + b.reshape(1, 3, 4, 1))], 6, {"broadcast": 1, "axis": 1})
    a, b = randn(2, 3, 4, 5), randn(2)
    case("sub_opset6_axis0", "Sub", [("A", a), ("B", b)],
         [("C", a - b.reshape(2, 1, 1, 1))], 6, {"broadcast": 1, "axis": 0})
    a, b = randn(2, 3, 4, 5), randn(4, 5)
    case("mul_opset1_suffix", "Mul", [("A", a), ("B", b)], [("C", a * b)], 1, {"broadcast": 1})
    a, b = randn(2, 3), np.array(2.5, dtype=np.float32)
    case("div_opset6_scalar", "Div", [("A", a), ("B", b)], [("C", a / b)], 6, {"broadcast": 1})
    a, b = np.abs(randn(2, 3, 4)) + 0.5, randn(3)
    case("pow_opset1_axis1", "Pow", [("X", a), ("Y", b)],
         [("Z", np.power(a, b.reshape(3, 1)))], 1, {"broadcast": 1, "axis": 1})
    a, b = ints(0, 2, (2, 3, 4), np.bool_), ints(0, 2, (3,), np.bool_)
    case("and_opset1_axis1", "And", [("A", a), ("B", b)],
         [("C", np.logical_and(a, b.reshape(3, 1)))], 1, {"broadcast": 1, "axis": 1})
    a, b = randn(2, 3), randn(2, 3)
    case("greater_opset1_same_shape", "Greater", [("A", a), ("B", b)], [("C", a > b)], 1)
    a, b = randn(2, 3), randn(3)
    case("add_opset6_broadcast0_rejects_shapes", "Add", [("A", a), ("B", b)], [("C", None)], 6,
         output_types={"C": (TensorProto.FLOAT, [2, 3])}, error="broadcast attribute is 0")
    a, b = randn(2, 3), randn(2)
    case("add_opset6_axis_mismatch", "Add", [("A", a), ("B", b)], [("C", None)], 6,
         {"broadcast": 1, "axis": 1}, output_types={"C": (TensorProto.FLOAT, [2, 3])},
         error="does not broadcast")


def broadcasting():
    """Shapes that exercise the walker's collapsing and row modes."""
    a, b = randn(4, 1, 5), randn(3, 1)
    case("add_outer_broadcast", "Add", [("A", a), ("B", b)], [("C", a + b)], 14)
    a, b = randn(2, 3, 4, 5), randn(3, 1, 1)
    case("mul_channel", "Mul", [("A", a), ("B", b)], [("C", a * b)], 14)
    a, b = np.array(3.0, dtype=np.float32), randn(2, 7)
    case("sub_scalar_minus_tensor", "Sub", [("A", a), ("B", b)], [("C", a - b)], 14)
    a, b = randn(1, 1), randn(1)
    case("add_all_ones", "Add", [("A", a), ("B", b)], [("C", a + b)], 14)
    a, b = randn(2, 0, 3), randn(3)
    case("add_empty", "Add", [("A", a), ("B", b)], [("C", a + b)], 14)
    # Large enough (> 64K elements) to be split over threads (with --threads
    # 2 or more), with chunk boundaries inside rows.
    a, b = randn(131, 517), randn(517)
    case("add_bias_large", "Add", [("A", a), ("B", b)], [("C", a + b)], 14)
    a, b = randn(2, 6, 7, 9), randn(6, 1, 1)
    case("div_channel", "Div", [("A", a), ("B", b)], [("C", a / b)], 14)
    xs = [randn(3, 1, 4), randn(5, 1), randn(4), randn(1, 5, 4)]
    case("sum_four_broadcast", "Sum", [(f"x{i}", x) for i, x in enumerate(xs)],
         [("y", xs[0] + xs[1] + xs[2] + xs[3])], 13)
    case("max_four_broadcast", "Max", [(f"x{i}", x) for i, x in enumerate(xs)],
         [("y", np.maximum(np.maximum(np.maximum(xs[0], xs[1]), xs[2]), xs[3]))], 13)
    xs = [randn(2, 3), randn(3), randn(2, 1)]
    case("mean_three_broadcast", "Mean", [(f"x{i}", x) for i, x in enumerate(xs)],
         [("y", (xs[0] + xs[1] + xs[2]) / np.float32(3))], 13)
    x = np.array([1.0, np.nan, -2.0], dtype=np.float32)
    y = np.array([np.nan, 0.5, -3.0], dtype=np.float32)
    case("min_propagates_nan", "Min", [("a", x), ("b", y)], [("c", np.minimum(x, y))], 13)
    x, y = ints(-100, 100, (3, 4), np.int32), ints(-100, 100, (4,), np.int32)
    case("max_int32_broadcast", "Max", [("a", x), ("b", y)], [("c", np.maximum(x, y))], 13)
    x = randn(2, 3).astype(np.float16)
    y = randn(3).astype(np.float16)
    case("add_float16_broadcast", "Add", [("a", x), ("b", y)], [("c", x + y)], 14)
    a, b = randn(2, 3), randn(4, 3)
    case("add_shapes_clash", "Add", [("A", a), ("B", b)], [("C", None)], 14,
         output_types={"C": (TensorProto.FLOAT, None)}, data=False,
         error="cannot be broadcast")


def integer_arithmetic():
    i32 = np.iinfo(np.int32)
    a = np.array([i32.max, i32.min, 7, -7, i32.min], dtype=np.int32)
    b = np.array([1, -1, 2, 2, i32.max], dtype=np.int32)
    with np.errstate(over="ignore"):
        case("add_int32_wraps", "Add", [("a", a), ("b", b)], [("c", a + b)], 14)
        case("mul_int32_wraps", "Mul", [("a", a), ("b", b)], [("c", a * b)], 14)
    a = np.array([i32.min, 7, -7, 7, -7], dtype=np.int32)
    b = np.array([-1, 2, 2, -2, -2], dtype=np.int32)
    # C division truncates toward zero; INT_MIN / -1 wraps to INT_MIN.
    q = np.array([i32.min, 3, -3, -3, 3], dtype=np.int32)
    case("div_int32_truncates_and_int_min", "Div", [("a", a), ("b", b)], [("c", q)], 14)
    i64 = np.iinfo(np.int64)
    a = np.array([i64.min, 9], dtype=np.int64)
    b = np.array([-1, -4], dtype=np.int64)
    case("div_int64_int_min", "Div", [("a", a), ("b", b)],
         [("c", np.array([i64.min, -2], dtype=np.int64))], 14)
    case("mod_int64_int_min", "Mod", [("a", a), ("b", b)],
         [("c", np.array([0, -3], dtype=np.int64))], 13)
    a = np.array([5, -5, 5, -5], dtype=np.int32)
    b = np.array([0, 1, 2, 3], dtype=np.int32)
    case("div_int32_by_zero", "Div", [("a", a), ("b", b)], [("c", None)], 14,
         output_types={"c": (TensorProto.INT32, [4])}, error="division by zero")
    case("mod_int32_by_zero", "Mod", [("a", a), ("b", b)], [("c", None)], 13,
         output_types={"c": (TensorProto.INT32, [4])}, error="division by zero")
    a = np.array([5, 250], dtype=np.uint8)
    b = np.array([0, 3], dtype=np.uint8)
    case("div_uint8_by_zero", "Div", [("a", a), ("b", b)], [("c", None)], 14,
         output_types={"c": (TensorProto.UINT8, [2])}, error="division by zero")
    a = np.array([-7, 7, -7, 7, 0], dtype=np.int16)
    b = np.array([3, -3, -3, 3, -5], dtype=np.int16)
    case("mod_int16_sign_of_divisor", "Mod", [("a", a), ("b", b)], [("c", np.mod(a, b))], 13)
    case("mod_int16_fmod", "Mod", [("a", a), ("b", b)], [("c", np.fmod(a, b))], 13, {"fmod": 1})
    a = randn(3, 4) * 10
    b = randn(4) * 3
    case("mod_float_floor_without_fmod", "Mod", [("a", a), ("b", b)], [("c", np.mod(a, b))], 13)
    x = np.array([1, 255, 128, 3], dtype=np.uint8)
    s = np.array([8, 1, 9, 0], dtype=np.uint8)
    case("bitshift_left_by_width", "BitShift", [("x", x), ("s", s)],
         [("y", np.array([0, 254, 0, 3], dtype=np.uint8))], 11, {"direction": "LEFT"})
    x = np.array([1 << 63, 12], dtype=np.uint64)
    s = np.array([64, 2], dtype=np.uint64)
    case("bitshift_right_by_width", "BitShift", [("x", x), ("s", s)],
         [("y", np.array([0, 3], dtype=np.uint64))], 11, {"direction": "RIGHT"})
    case("bitshift_bad_direction", "BitShift", [("x", x), ("s", s)], [("y", None)], 11,
         {"direction": "UP"}, output_types={"y": (TensorProto.UINT64, [2])}, data=False,
         error="direction")
    x = np.array([2, -2, 3, 1, -1, -1, 0], dtype=np.int32)
    y = np.array([10, 3, -1, -5, -5, -4, 3], dtype=np.int32)
    case("pow_int32_negative_exponents", "Pow", [("x", x), ("y", y)],
         [("z", np.array([1024, -8, 0, 1, -1, 1, 0], dtype=np.int32))], 15)
    x = np.array([3, 5], dtype=np.int64)
    y = np.array([40, 2], dtype=np.int64)
    with np.errstate(over="ignore"):
        case("pow_int64_wraps", "Pow", [("x", x), ("y", y)],
             [("z", np.array([3 ** 40 % (1 << 64) - (1 << 64) if 3 ** 40 % (1 << 64) >= 1 << 63
                               else 3 ** 40 % (1 << 64), 25], dtype=np.int64))], 15)


def pow_cases():
    x = randn(3, 4)
    case("pow_square_scalar_exponent", "Pow", [("x", x), ("y", np.array(2.0, np.float32))],
         [("z", x * x)], 15)
    x = np.abs(randn(2, 3)) + 0.1
    case("pow_sqrt_scalar_exponent_initializer", "Pow",
         [("x", x), ("y", np.array([0.5], np.float32))], [("z", np.sqrt(x))], 15,
         initializers=["y"])
    x = randn(2, 3)
    case("pow_float_int64_scalar", "Pow", [("x", x), ("y", np.array(3, np.int64))],
         [("z", np.power(x, 3).astype(np.float32))], 15)
    x = np.array([2, 3, 4], dtype=np.int32)
    y = np.array([0.5, 2.0, -1.0], dtype=np.float64)
    case("pow_int32_float64", "Pow", [("x", x), ("y", y)],
         [("z", np.power(x, y).astype(np.int32))], 15)
    x = np.abs(randn(30, 40)) + 0.1
    y = randn(40)
    case("pow_bias_exponent", "Pow", [("x", x), ("y", y)], [("z", np.power(x, y))], 13)


def unary_cases():
    x = np.array([0.5, 1.5, 2.5, -0.5, -2.5, 3.7, -3.2, np.inf, np.nan], dtype=np.float32)
    case("round_half_to_even", "Round", [("x", x)], [("y", np.round(x))], 11)
    x = np.array([-np.inf, np.inf, 1.0, np.nan], dtype=np.float32)
    case("isinf_negative_only", "IsInf", [("x", x)], [("y", np.isneginf(x))], 10,
         {"detect_positive": 0})
    x = np.array([-3, 0, 5, np.iinfo(np.int32).min], dtype=np.int32)
    case("abs_int32", "Abs", [("x", x)],
         [("y", np.array([3, 0, 5, np.iinfo(np.int32).min], dtype=np.int32))], 13)
    case("neg_int32", "Neg", [("x", x)],
         [("y", np.array([3, 0, -5, np.iinfo(np.int32).min], dtype=np.int32))], 13)
    case("sign_int32", "Sign", [("x", x)], [("y", np.sign(x))], 13)
    x = np.array([-np.inf, -2.0, -0.0, 0.0, 3.0, np.nan], dtype=np.float64)
    case("sign_double", "Sign", [("x", x)], [("y", np.sign(x))], 13)
    # float32 kernels use vectorised approximations: check them across the
    # range (including where exp overflows/underflows), Exp on a tensor large
    # enough to be split over threads.
    special = [0.0, -0.0, 1e-30, -1e-30, 88.72, -87.5, 1e-4, -3e-4]
    x = np.concatenate([np.linspace(-110, 100, 60000), special,
                        rng.standard_normal(6000) * 3]).astype(np.float32)
    with np.errstate(over="ignore"):
        case("exp_range_large", "Exp", [("x", x)], [("y", np.exp(x.astype(np.float64))
                                                       .astype(np.float32))], 13)
    x = np.concatenate([np.linspace(-110, 100, 5000), special,
                        rng.standard_normal(3000) * 3]).astype(np.float32)
    erf = np.vectorize(math.erf)
    case("erf_range", "Erf", [("x", x)], [("y", erf(x.astype(np.float64))
                                                    .astype(np.float32))], 13)
    case("tanh_range", "Tanh", [("x", x)], [("y", np.tanh(x.astype(np.float64))
                                                      .astype(np.float32))], 13)
    with np.errstate(over="ignore"):
        case("sigmoid_range", "Sigmoid", [("x", x)],
             [("y", (1 / (1 + np.exp(-x.astype(np.float64)))).astype(np.float32))], 13)
    x = np.array([np.nan, np.inf, -np.inf], dtype=np.float32)
    case("exp_special_values", "Exp", [("x", x)], [("y", np.exp(x))], 13)
    x = randn(3, 4).astype(np.float16)
    case("sqrt_float16", "Sqrt", [("x", np.abs(x))], [("y", np.sqrt(np.abs(x)))], 13)


def activation_cases():
    x = randn(2, 3, 4, 5)
    slope = randn(3, 1, 1)
    case("prelu_channel_opset16", "PRelu", [("x", x), ("slope", slope)],
         [("y", np.where(x < 0, x * slope, x))], 16)
    slope = randn(3)
    case("prelu_opset6_per_channel", "PRelu", [("x", x), ("slope", slope)],
         [("y", np.where(x < 0, x * slope.reshape(3, 1, 1), x))], 6)
    xi = ints(-50, 50, (4, 5), np.int32)
    si = ints(-3, 3, (5,), np.int32)
    case("prelu_int32", "PRelu", [("x", xi), ("slope", si)],
         [("y", np.where(xi < 0, xi * si, xi).astype(np.int32))], 16)
    case("prelu_slope_mismatch", "PRelu", [("x", x), ("slope", randn(4))], [("y", None)], 16,
         output_types={"y": (TensorProto.FLOAT, [2, 3, 4, 5])}, error="does not broadcast")
    x = randn(3, 4) * 3
    case("clip_opset6_attributes", "Clip", [("x", x)], [("y", np.clip(x, -0.5, 1.0))], 6,
         {"min": -0.5, "max": 1.0})
    case("clip_opset6_defaults", "Clip", [("x", x)], [("y", x)], 6)
    case("clip_opset11_max_only", "Clip", [("x", x), ("", None), ("max", np.array(0.3, np.float32))],
         [("y", np.minimum(x, np.float32(0.3)))], 11)
    xi = ints(-100, 100, (3, 4), np.int64)
    case("clip_int64_min_above_max", "Clip",
         [("x", xi), ("min", np.array(10, np.int64)), ("max", np.array(-10, np.int64))],
         [("y", np.minimum(np.maximum(xi, 10), -10))], 13)
    xu = ints(0, 255, (10,), np.uint8)
    case("clip_uint8", "Clip", [("x", xu), ("min", np.array(20, np.uint8)),
                                ("max", np.array(200, np.uint8))],
         [("y", np.clip(xu, 20, 200))], 13)
    case("clip_non_scalar_bound", "Clip",
         [("x", x), ("min", np.array([0.1, 0.2], np.float32))], [("y", None)], 13,
         output_types={"y": (TensorProto.FLOAT, [3, 4])}, error="scalar")
    x = randn(4, 5)
    case("selu_opset1_defaults", "Selu", [("x", x)],
         [("y", np.where(x > 0, 1.0507 * x, 1.0507 * 1.6732 * (np.exp(x) - 1))
           .astype(np.float32))], 1)
    x = np.concatenate([randn(5000) * 4, np.array([-1e-6, 1e-6, -1e-3, -30, 30],
                                                      np.float32)]).astype(np.float32)
    xd = x.astype(np.float64)
    case("elu_alpha", "Elu", [("x", x)],
         [("y", np.where(xd < 0, 0.7 * np.expm1(xd), xd).astype(np.float32))], 6, {"alpha": 0.7})
    case("celu_alpha2", "Celu", [("x", x)],
         [("y", np.where(xd < 0, 2 * np.expm1(xd / 2), xd).astype(np.float32))], 12,
         {"alpha": 2.0})
    case("softplus_extremes", "Softplus", [("x", x)],
         [("y", np.logaddexp(0, xd).astype(np.float32))], 1)
    case("hardswish", "HardSwish", [("x", x)],
         [("y", (xd * np.clip(xd / 6 + 0.5, 0, 1)).astype(np.float32))], 14)
    xi = ints(-5, 6, (11,), np.int32)
    case("shrink_int32", "Shrink", [("x", xi)],
         [("y", np.where(xi < -2, xi + 1, np.where(xi > 2, xi - 1, 0)).astype(np.int32))], 9,
         {"lambd": 2.0, "bias": 1.0})
    xi = ints(-100, 100, (5,), np.int8)
    case("relu_int8", "Relu", [("x", xi)], [("y", np.maximum(xi, 0).astype(np.int8))], 14)
    x = randn(2, 3).astype(np.float16)
    case("leakyrelu_float16", "LeakyRelu", [("x", x)],
         [("y", np.where(x < 0, x.astype(np.float32) * np.float32(0.1), x).astype(np.float16))],
         16, {"alpha": 0.1})
    case("celu_zero_alpha", "Celu", [("x", randn(3))], [("y", None)], 12, {"alpha": 0.0},
         output_types={"y": (TensorProto.FLOAT, [3])}, data=False, error="alpha")


def logical_cases():
    a = np.array(["a", "bc", "", "héllo"], dtype=object)
    b = np.array(["a", "b", "", "héllo"], dtype=object)
    case("equal_string", "Equal", [("a", a), ("b", b)], [("c", a == b)], 13)
    a, b = ints(0, 2, (3, 4), np.bool_), ints(0, 2, (4,), np.bool_)
    case("equal_bool_broadcast", "Equal", [("a", a), ("b", b)], [("c", a == b)], 13)
    a = randn(3, 4).astype(np.float16)
    b = a.copy()
    b[0, :] = randn(4).astype(np.float16)
    case("less_or_equal_float16", "LessOrEqual", [("a", a), ("b", b)], [("c", a <= b)], 16)
    c = ints(0, 2, (2, 1, 3), np.bool_)
    x = np.array(["x0", "x1", "x2"], dtype=object)
    y = np.array([["y0"], ["y1"]], dtype=object)
    case("where_string_broadcast", "Where", [("c", c), ("x", x), ("y", y)],
         [("z", np.where(c, x, y))], 16)
    c = ints(0, 2, (27, 1), np.bool_)
    x = ints(-1000, 1000, (27, 25), np.int32)
    y = np.array(7, dtype=np.int32)
    case("where_int32_scalar_y", "Where", [("c", c), ("x", x), ("y", y)],
         [("z", np.where(c, x, y))], 16)
    c = ints(0, 2, (4, 5), np.bool_)
    x = randn(4, 5).astype(np.float16)
    y = randn(5).astype(np.float16)
    case("where_float16", "Where", [("c", c), ("x", x), ("y", y)], [("z", np.where(c, x, y))], 9)
    case("where_condition_not_bool", "Where",
         [("c", ints(0, 2, (3,), np.int32)), ("x", randn(3)), ("y", randn(3))], [("z", None)], 16,
         output_types={"z": (TensorProto.FLOAT, [3])}, data=False, error="not bool")


def cast_cases():
    # float -> int of NaN and out-of-range values is defined: NaN gives 0,
    # values truncate to int64 (saturating; uint64 saturates at its own
    # range) and wrap to the target width.
    x = np.array([np.nan, np.inf, -np.inf, 1e30, -1e30, 300.7, -1.5, -300.2, 2.9],
                 dtype=np.float32)

    def defined(target):
        out = []
        bits = np.dtype(target).itemsize * 8
        for v in x.astype(np.float64):
            unsigned = np.issubdtype(target, np.unsignedinteger)
            if math.isnan(v):
                i = 0
            elif unsigned and v >= 2.0 ** 64:
                i = 2 ** 64 - 1
            elif unsigned and v >= 2.0 ** 63:
                i = int(v)
            elif v >= 2.0 ** 63:
                i = 2 ** 63 - 1
            elif v <= -2.0 ** 63:
                i = -2 ** 63
            else:
                i = int(v)
            i &= (1 << bits) - 1
            if np.issubdtype(target, np.signedinteger) and i >= 1 << (bits - 1):
                i -= 1 << bits
            out.append(i)
        return np.array(out, dtype=target)

    for target, code in [(np.int32, TensorProto.INT32), (np.uint8, TensorProto.UINT8),
                         (np.int64, TensorProto.INT64), (np.uint64, TensorProto.UINT64),
                         (np.int8, TensorProto.INT8)]:
        case(f"cast_float_specials_to_{np.dtype(target).name}", "Cast", [("x", x)],
             [("y", defined(target))], 13, {"to": code})
    case("cast_float_specials_to_bool", "Cast", [("x", x)], [("y", x != 0)], 13,
         {"to": TensorProto.BOOL})
    x = np.array([0.0, -0.0, 1.0, 0.1, 1e-5, 1.5e-5, 123456789.0, 1e16, 3e15, 1e-45,
                  3.4028235e38, -2.5, 0.0001, 0.00012345, np.nan, np.inf, -np.inf],
                 dtype=np.float32)
    strs = []
    for v in x:
        s = str(v)
        strs.append({"nan": "NaN", "inf": "INF", "-inf": "-INF"}.get(s, s))
    case("cast_float_to_string_numpy_format", "Cast", [("x", x)],
         [("y", np.array(strs, dtype=object))], 13, {"to": TensorProto.STRING})
    xd = np.array([0.1, 1.0 / 3.0, 1e100, -5e-324, 2.0 ** 53 + 2], dtype=np.float64)
    case("cast_double_to_string", "Cast", [("x", xd)],
         [("y", np.array([str(v) for v in xd], dtype=object))], 13, {"to": TensorProto.STRING})
    xi = np.array([np.iinfo(np.int64).min, -1, 0, np.iinfo(np.int64).max], dtype=np.int64)
    case("cast_int64_to_string", "Cast", [("x", xi)],
         [("y", np.array([str(v) for v in xi], dtype=object))], 13, {"to": TensorProto.STRING})
    s = np.array(["1e-7", "INF", "-inf", "+Inf", " 42 ", "-0.5", "1E8", "3.14"], dtype=object)
    case("cast_string_to_double", "Cast", [("x", s)],
         [("y", np.array([1e-7, np.inf, -np.inf, np.inf, 42, -0.5, 1e8, 3.14]))], 13,
         {"to": TensorProto.DOUBLE})
    s = np.array(["9223372036854775807", "-12", "2.718", "1e3"], dtype=object)
    case("cast_string_to_int64", "Cast", [("x", s)],
         [("y", np.array([9223372036854775807, -12, 2, 1000], dtype=np.int64))], 13,
         {"to": TensorProto.INT64})
    s = np.array(["nan", "NaN", "0.5"], dtype=object)
    case("cast_string_to_float16", "Cast", [("x", s)],
         [("y", np.array([np.nan, np.nan, 0.5], dtype=np.float16))], 13,
         {"to": TensorProto.FLOAT16})
    s = np.array(["1", "0", "true", "0.0"], dtype=object)
    case("cast_string_to_bool", "Cast", [("x", s)],
         [("y", np.array([True, False, True, False]))], 13, {"to": TensorProto.BOOL})
    s = np.array(["1.5", "hello"], dtype=object)
    case("cast_string_not_a_number", "Cast", [("x", s)], [("y", None)], 13,
         {"to": TensorProto.FLOAT}, output_types={"y": (TensorProto.FLOAT, [2])},
         error="is not a number")
    x = randn(3, 4)
    case("cast_opset1_string_to", "Cast", [("x", x)], [("y", x.astype(np.float64))], 1,
         {"to": "DOUBLE"})
    case("cast_bad_to", "Cast", [("x", x)], [("y", None)], 13, {"to": 99},
         output_types={"y": (TensorProto.FLOAT, [3, 4])}, data=False, error="not a data type")
    xd = randn(1000).astype(np.float64) * 1e-3
    case("cast_double_to_float16", "Cast", [("x", xd)], [("y", xd.astype(np.float16))], 13,
         {"to": TensorProto.FLOAT16})
    x = (randn(26, 26) * 1000)
    case("cast_float_to_int32", "Cast", [("x", x)], [("y", x.astype(np.int32))], 13,
         {"to": TensorProto.INT32})
    xu = ints(0, 255, (5,), np.uint8)
    case("cast_uint8_to_float16", "Cast", [("x", xu)], [("y", xu.astype(np.float16))], 13,
         {"to": TensorProto.FLOAT16})
    x = randn(3, 2)
    case("castlike_to_int16", "CastLike", [("x", x), ("like", np.zeros(1, np.int16))],
         [("y", x.astype(np.int16))], 15)


def main():
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    legacy_broadcast()
    broadcasting()
    integer_arithmetic()
    pow_cases()
    unary_cases()
    activation_cases()
    logical_cases()
    cast_cases()
    print(f"wrote {len(os.listdir(OUT))} cases to {os.path.normpath(OUT)}")


if __name__ == "__main__":
    main()
