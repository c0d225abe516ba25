#!/usr/bin/python3
"""Writes tests/engine/ops/cases/opset18/: ONNX backend-layout cases for the
operator versions of opsets 18 to 21 (onnx 1.13-1.16), which Debian's onnx
1.12 test data does not have. Models are IR 10 with opset_import 18-21, set
by hand (onnx 1.12's helpers and checker stop at opset 17, so the checker is
not run). Expected values come from ONNX Runtime (onnxruntime-node 1.30,
through tools/ort_reference.py with its telemetry off), never from inferd;
error cases hold an `expect_error` file instead.

Each case is a folder with model.onnx and test_data_set_0/{input,output}_N.pb.
Run with Debian's python (onnx 1.12, numpy) after `npm ci`:
    /usr/bin/python3 tools/gen_op_cases_opset18.py
"""
import os
import shutil
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import ort_reference  # noqa: E402

OUT = os.path.join(HERE, "..", "tests", "engine", "ops", "cases", "opset18")
rng = np.random.default_rng(20261206)

NP_TO_ONNX = {
    np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.float64): TensorProto.DOUBLE,
    np.dtype(np.float16): TensorProto.FLOAT16, np.dtype(np.int8): TensorProto.INT8,
    np.dtype(np.uint8): TensorProto.UINT8, np.dtype(np.int16): TensorProto.INT16,
    np.dtype(np.uint16): TensorProto.UINT16, np.dtype(np.int32): TensorProto.INT32,
    np.dtype(np.uint32): TensorProto.UINT32, np.dtype(np.int64): TensorProto.INT64,
    np.dtype(np.uint64): TensorProto.UINT64, np.dtype(np.bool_): TensorProto.BOOL,
    np.dtype(object): TensorProto.STRING,
}


def value_info(name, array_or_type, shape=None):
    if isinstance(array_or_type, np.ndarray):
        return helper.make_tensor_value_info(name, NP_TO_ONNX[array_or_type.dtype],
                                             array_or_type.shape)
    return helper.make_tensor_value_info(name, array_or_type, shape)


def write_model(name, nodes, inputs, outputs, opset, initializers=()):
    """inputs: [(name, array)] fed at run time; outputs: [(name, elem_type)];
    initializers: [(name, array)]."""
    graph = helper.make_graph(
        nodes, name, [value_info(n, a) for n, a in inputs],
        [helper.make_tensor_value_info(n, t, None) for n, t in outputs],
        [numpy_helper.from_array(a, n) for n, a in initializers])
    model = helper.make_model(graph, producer_name="gen_op_cases_opset18")
    del model.opset_import[:]
    model.opset_import.append(helper.make_opsetid("", opset))
    model.ir_version = 10
    path = os.path.join(OUT, name)
    os.makedirs(path)
    onnx.save(model, os.path.join(path, "model.onnx"))
    return path


def case(name, nodes, inputs, outputs, opset, initializers=(), reference=None):
    """A case whose expected outputs are ONNX Runtime's, or those of
    `reference` (inputs dict -> outputs dict) where ONNX Runtime lacks the
    feature."""
    path = write_model(name, nodes, inputs, outputs, opset, initializers)
    if reference:
        got = reference(dict(inputs))
    else:
        got, _ = ort_reference.run(os.path.join(path, "model.onnx"), dict(inputs))
    sets = os.path.join(path, "test_data_set_0")
    os.makedirs(sets)
    for i, (n, a) in enumerate(inputs):
        with open(os.path.join(sets, "input_%d.pb" % i), "wb") as f:
            f.write(numpy_helper.from_array(a, n).SerializeToString())
    for i, (n, _) in enumerate(outputs):
        with open(os.path.join(sets, "output_%d.pb" % i), "wb") as f:
            f.write(numpy_helper.from_array(got[n], n).SerializeToString())


def error_case(name, nodes, inputs, outputs, opset, error, initializers=(), feed=True):
    """A case inferd must refuse (at load, or at run with the inputs given)
    with a message containing `error`."""
    path = write_model(name, nodes, inputs, outputs, opset, initializers)
    with open(os.path.join(path, "expect_error"), "w") as f:
        f.write(error + "\n")
    if feed:
        sets = os.path.join(path, "test_data_set_0")
        os.makedirs(sets)
        for i, (n, a) in enumerate(inputs):
            with open(os.path.join(sets, "input_%d.pb" % i), "wb") as f:
                f.write(numpy_helper.from_array(a, n).SerializeToString())


def node(op, ins, outs, **attrs):
    return helper.make_node(op, ins, outs, **attrs)


def randn(*shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


F = TensorProto.FLOAT


# ---- opset 18: Reduce* take axes as an input ---------------------------------

def reduce_cases():
    x = randn(2, 3, 4)
    positive = np.abs(x) + 0.5
    for op in ("ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
               "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"):
        data = positive if op == "ReduceLogSum" else x
        low = op.lower()
        case(f"{low}18_axes_input_constant",
             [node(op, ["x", "axes"], ["y"], keepdims=0)], [("x", data)], [("y", F)], 18,
             initializers=[("axes", np.array([0, -1], np.int64))])
        case(f"{low}18_axes_input_fed_at_run_time",
             [node(op, ["x", "axes"], ["y"])],
             [("x", data), ("axes", np.array([1], np.int64))], [("y", F)], 18)
        case(f"{low}18_no_axes_reduces_all",
             [node(op, ["x"], ["y"], keepdims=1)], [("x", data)], [("y", F)], 18)
        case(f"{low}18_empty_axes_noop",
             [node(op, ["x", "axes"], ["y"], noop_with_empty_axes=1)], [("x", data)],
             [("y", F)], 18, initializers=[("axes", np.zeros(0, np.int64))])
    error_case("reducemean18_axes_attribute_refused",
               [node("ReduceMean", ["x"], ["y"], axes=[0])], [("x", x)], [("y", F)], 18,
               "axes is an input since ReduceMean-18, not an attribute")
    error_case("reducemax18_axis_out_of_range_fed",
               [node("ReduceMax", ["x", "axes"], ["y"])],
               [("x", x), ("axes", np.array([3], np.int64))], [("y", F)], 18,
               "axis 3 is out of range")
    # opset 13 semantics stay: the attribute, through opset 17
    case("reducemean17_axes_attribute_kept",
         [node("ReduceMean", ["x"], ["y"], axes=[1])], [("x", x)], [("y", F)], 17)
    b = rng.random((3, 4)) > 0.5
    for op in ("ReduceMax", "ReduceMin"):
        case(f"{op.lower()}20_bool",
             [node(op, ["x", "axes"], ["y"], keepdims=0)], [("x", b)],
             [("y", TensorProto.BOOL)], 20, initializers=[("axes", np.array([1], np.int64))])
    error_case("reducemax18_bool_refused",
               [node("ReduceMax", ["x"], ["y"])], [("x", b)], [("y", TensorProto.BOOL)], 18,
               "bool")


# ---- opset 18: Split num_outputs ----------------------------------------------

def split_cases():
    x = randn(7, 3)
    outs = [("a", F), ("b", F), ("c", F)]
    case("split18_num_outputs_uneven_last_smaller",
         [node("Split", ["x"], ["a", "b", "c"], axis=0, num_outputs=3)], [("x", x)], outs, 18)
    case("split18_num_outputs_even",
         [node("Split", ["x"], ["a", "b", "c"], axis=1, num_outputs=3)], [("x", x)], outs, 18)
    case("split18_split_input",
         [node("Split", ["x", "s"], ["a", "b", "c"], axis=0)], [("x", x)], outs, 18,
         initializers=[("s", np.array([1, 2, 4], np.int64))])
    error_case("split18_num_outputs_mismatch",
               [node("Split", ["x"], ["a", "b"], axis=0, num_outputs=3)], [("x", x)],
               [("a", F), ("b", F)], 18, "num_outputs is 3 but the node has 2 outputs")
    error_case("split18_num_outputs_and_split_input",
               [node("Split", ["x", "s"], ["a", "b", "c"], axis=0, num_outputs=3)], [("x", x)],
               outs, 18, "not both", initializers=[("s", np.array([1, 2, 4], np.int64))])
    error_case("split18_num_outputs_cannot_cut",
               [node("Split", ["x"], ["a", "b", "c", "d"], axis=0, num_outputs=4)],
               [("x", randn(5, 2))], [("a", F), ("b", F), ("c", F), ("d", F)], 18,
               "cannot be cut into 4 parts")


# ---- opsets 19-21: versions that only added types ----------------------------

def type_only_cases():
    x = randn(2, 3, 4)
    for opset in (19, 21):
        case(f"reshape_shape_size_identity_opset{opset}",
             [node("Reshape", ["x", "s"], ["r"]), node("Shape", ["r"], ["shape"]),
              node("Size", ["r"], ["size"]), node("Identity", ["r"], ["y"])],
             [("x", x)], [("y", F), ("shape", TensorProto.INT64), ("size", TensorProto.INT64)],
             opset, initializers=[("s", np.array([4, -1], np.int64))])
        case(f"cast_castlike_opset{opset}",
             [node("Cast", ["x"], ["i"], to=TensorProto.INT32),
              node("CastLike", ["x", "like"], ["h"])],
             [("x", x * 10)], [("i", TensorProto.INT32), ("h", TensorProto.FLOAT16)], opset,
             initializers=[("like", np.zeros(1, np.float16))])
        case(f"constantofshape_opset{opset}",
             [node("ConstantOfShape", ["s"], ["y"],
                   value=helper.make_tensor("v", TensorProto.INT32, [1], [7]))],
             [("s", np.array([2, 3], np.int64))], [("y", TensorProto.INT32)], opset)
    for name, dtype, value in (("float16", TensorProto.FLOAT16, [1.5]), ("bool", TensorProto.BOOL, [True]),
                               ("double", TensorProto.DOUBLE, [-2.25]), ("uint8", TensorProto.UINT8, [200])):
        case(f"constantofshape_{name}_value",
             [node("ConstantOfShape", ["s"], ["y"], value=helper.make_tensor("v", dtype, [1], value))],
             [("s", np.array([3, 5, 7], np.int64))], [("y", dtype)], 21)
    case("flatten_squeeze_unsqueeze_transpose_opset21",
         [node("Flatten", ["x"], ["f"], axis=1), node("Unsqueeze", ["f", "ax"], ["u"]),
          node("Transpose", ["u"], ["t"], perm=[2, 0, 1]), node("Squeeze", ["t", "ax0"], ["y"])],
         [("x", x)], [("y", F)], 21,
         initializers=[("ax", np.array([0], np.int64)), ("ax0", np.array([1], np.int64))])
    s = np.array(["cat", "dog", "", "cat"], dtype=object)
    case("equal19_strings",
         [node("Equal", ["a", "b"], ["y"])],
         [("a", s), ("b", np.array(["cat", "cow", "", "Cat"], dtype=object))],
         [("y", TensorProto.BOOL)], 19)
    h = np.array([1.0, np.inf, -np.inf, np.nan, 0.0], np.float16)
    case("isinf20_float16", [node("IsInf", ["x"], ["y"], detect_negative=0)], [("x", h)],
         [("y", TensorProto.BOOL)], 20)
    case("isnan20_float16", [node("IsNaN", ["x"], ["y"])], [("x", h)],
         [("y", TensorProto.BOOL)], 20)
    error_case("cast19_to_float8_refused",
               [node("Cast", ["x"], ["y"], to=17)], [("x", x)], [("y", 17)], 19,
               "float8", feed=False)


# ---- new operators of opsets 18 and 20 -----------------------------------------

def new_operator_cases():
    x = np.concatenate([randn(20), np.array([0.0, -30.0, 30.0, 1e-4], np.float32)])
    case("mish18_float", [node("Mish", ["x"], ["y"])], [("x", x)], [("y", F)], 18)
    case("mish18_double", [node("Mish", ["x"], ["y"])], [("x", x.astype(np.float64))],
         [("y", TensorProto.DOUBLE)], 18)
    for approximate in ("none", "tanh"):
        case(f"gelu20_{approximate}_float",
             [node("Gelu", ["x"], ["y"], approximate=approximate)], [("x", x)], [("y", F)], 20)
    # ONNX Runtime has no double Gelu (its function body needs a double Erf)
    case("gelu20_default_is_none", [node("Gelu", ["x"], ["y"])], [("x", x)], [("y", F)], 20)
    error_case("gelu20_unknown_approximate",
               [node("Gelu", ["x"], ["y"], approximate="fast")], [("x", x)], [("y", F)], 20,
               "approximate must be 'none' or 'tanh'")
    for dtype in (np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64,
                  np.uint64):
        info = np.iinfo(dtype)
        a = rng.integers(info.min, info.max, size=(3, 4), dtype=dtype, endpoint=True)
        b = rng.integers(info.min, info.max, size=(4,), dtype=dtype, endpoint=True)
        name = np.dtype(dtype).name
        onnx_type = NP_TO_ONNX[np.dtype(dtype)]
        case(f"bitwise18_and_or_xor_not_{name}_broadcast",
             [node("BitwiseAnd", ["a", "b"], ["and"]), node("BitwiseOr", ["a", "b"], ["or"]),
              node("BitwiseXor", ["a", "b"], ["xor"]), node("BitwiseNot", ["a"], ["not"])],
             [("a", a), ("b", b)],
             [("and", onnx_type), ("or", onnx_type), ("xor", onnx_type), ("not", onnx_type)], 18)
    error_case("bitwise18_float_refused",
               [node("BitwiseAnd", ["a", "b"], ["y"])], [("a", randn(2)), ("b", randn(2))],
               [("y", F)], 18, "float", feed=False)
    t = randn(2, 3)
    case("optionalhaselement18_tensor_input",
         [node("OptionalHasElement", ["x"], ["y"])], [("x", t)], [("y", TensorProto.BOOL)], 18)
    case("optionalgetelement18_tensor_input",
         [node("OptionalGetElement", ["x"], ["y"])], [("x", t)], [("y", F)], 18)
    empty_type = helper.make_tensor_type_proto(TensorProto.FLOAT, [2, 3])
    case("optional15_construct_then_get_and_empty_from_type",
         [node("Optional", ["x"], ["o"]), node("OptionalGetElement", ["o"], ["y"]),
          node("Optional", [], ["e"], type=empty_type),
          node("OptionalHasElement", ["e"], ["has"])],
         [("x", t)], [("y", F), ("has", TensorProto.BOOL)], 18)
    case("optionalhaselement18_omitted_input",
         [node("OptionalHasElement", [""], ["y"]), node("Identity", ["x"], ["z"])],
         [("x", t)], [("y", TensorProto.BOOL), ("z", F)], 18)


# ---- Pad-18 axes, Pad-19 wrap; ScatterElements/ScatterND-18 max and min -------

def pad_scatter_cases():
    x = randn(2, 3, 4)
    I = TensorProto.INT64
    case("pad18_axes_input_constant",
         [node("Pad", ["x", "pads", "value", "axes"], ["y"])], [("x", x)], [("y", F)], 18,
         initializers=[("pads", np.array([1, 0, 2, 3], np.int64)),
                       ("value", np.array(1.5, np.float32)),
                       ("axes", np.array([2, -3], np.int64))])
    case("pad18_axes_input_fed_reflect",
         [node("Pad", ["x", "pads", "", "axes"], ["y"], mode="reflect")],
         [("x", x), ("pads", np.array([2, 1], np.int64)), ("axes", np.array([1], np.int64))],
         [("y", F)], 18)
    case("pad18_axes_edge_crop",
         [node("Pad", ["x", "pads", "", "axes"], ["y"], mode="edge")], [("x", x)], [("y", F)],
         18, initializers=[("pads", np.array([-1, 3], np.int64)),
                           ("axes", np.array([2], np.int64))])
    case("pad19_wrap",
         [node("Pad", ["x", "pads"], ["y"], mode="wrap")], [("x", x)], [("y", F)], 19,
         initializers=[("pads", np.array([0, 2, 3, 0, 1, 5], np.int64))])
    case("pad19_wrap_with_axes_and_crop",
         [node("Pad", ["x", "pads", "", "axes"], ["y"], mode="wrap")], [("x", x)], [("y", F)],
         19, initializers=[("pads", np.array([-1, 2, 6, -1], np.int64)),
                           ("axes", np.array([2, 1], np.int64))])
    case("pad21_int32_constant",
         [node("Pad", ["x", "pads", "value"], ["y"])],
         [("x", np.arange(6, dtype=np.int32).reshape(2, 3))], [("y", TensorProto.INT32)], 21,
         initializers=[("pads", np.array([1, 1, 0, 2], np.int64)),
                       ("value", np.array(-7, np.int32))])
    error_case("pad18_wrap_needs_19",
               [node("Pad", ["x", "pads"], ["y"], mode="wrap")], [("x", x)], [("y", F)], 18,
               "wrap needs Pad-19", initializers=[("pads", np.zeros(6, np.int64))])
    error_case("pad18_axes_and_pads_disagree",
               [node("Pad", ["x", "pads", "", "axes"], ["y"])], [("x", x)], [("y", F)], 18,
               "pads must hold two entries per axis in axes",
               initializers=[("pads", np.zeros(6, np.int64)), ("axes", np.array([0], np.int64))])
    error_case("pad18_axis_listed_twice",
               [node("Pad", ["x", "pads", "", "axes"], ["y"])],
               [("x", x), ("axes", np.array([1, -2], np.int64))], [("y", F)], 18,
               "an axis is listed twice", initializers=[("pads", np.zeros(4, np.int64))])
    data = randn(4, 5)
    idx = np.array([[0, 1, 0], [2, 2, 4], [0, 0, 0]], np.int64)
    upd = randn(3, 3)
    for reduction in ("max", "min"):
        case(f"scatterelements18_{reduction}_duplicates",
             [node("ScatterElements", ["d", "i", "u"], ["y"], axis=1, reduction=reduction)],
             [("d", data), ("i", idx), ("u", upd)], [("y", F)], 18)
        nd_idx = np.array([[1], [3], [1]], np.int64)
        case(f"scatternd18_{reduction}_duplicates",
             [node("ScatterND", ["d", "i", "u"], ["y"], reduction=reduction)],
             [("d", data), ("i", nd_idx), ("u", randn(3, 5))], [("y", F)], 18)
        ints = rng.integers(-50, 50, size=(4, 5)).astype(np.int32)
        case(f"scatterelements18_{reduction}_int32",
             [node("ScatterElements", ["d", "i", "u"], ["y"], axis=0, reduction=reduction)],
             [("d", ints), ("i", np.array([[1, 3, 3, 0, 1]], np.int64)),
              ("u", rng.integers(-50, 50, size=(1, 5)).astype(np.int32))],
             [("y", TensorProto.INT32)], 18)
    error_case("scatterelements16_max_needs_18",
               [node("ScatterElements", ["d", "i", "u"], ["y"], reduction="max")],
               [("d", data), ("i", idx), ("u", upd)], [("y", F)], 16,
               "reduction 'max' is not one of none, add, mul", feed=False)


# ---- GroupNormalization-18/21, Col2Im-18, CenterCropPad-18 --------------------

def image_op_cases():
    x = randn(2, 6, 3, 4) * 3 + 1
    for opset, per in ((18, 3), (21, 6)):
        case(f"groupnormalization{opset}_three_groups",
             [node("GroupNormalization", ["x", "s", "b"], ["y"], num_groups=3, epsilon=1e-3)],
             [("x", x), ("s", randn(per)), ("b", randn(per))], [("y", F)], opset)
    case("groupnormalization21_one_group_rank3",
         [node("GroupNormalization", ["x", "s", "b"], ["y"], num_groups=1)],
         [("x", randn(3, 4, 5)), ("s", randn(4)), ("b", randn(4))], [("y", F)], 21)
    error_case("groupnormalization18_channels_do_not_divide",
               [node("GroupNormalization", ["x", "s", "b"], ["y"], num_groups=4)],
               [("x", x), ("s", randn(4)), ("b", randn(4))], [("y", F)], 18,
               "6 channels do not divide into 4 groups")
    error_case("groupnormalization21_scale_per_group_refused",
               [node("GroupNormalization", ["x", "s", "b"], ["y"], num_groups=3)],
               [("x", x), ("s", randn(3)), ("b", randn(3))], [("y", F)], 21,
               "scale and bias must have 6 values (one per channel)")
    # 2-D: image 5x5, block 2x2 -> 4x4 = 16 positions
    case("col2im18_2d",
         [node("Col2Im", ["x", "img", "blk"], ["y"])],
         [("x", randn(2, 3 * 4, 16))], [("y", F)], 18,
         initializers=[("img", np.array([5, 5], np.int64)), ("blk", np.array([2, 2], np.int64))])
    # strides 2, pads 1, dilations 2 on a 6x7 image, block 3x2
    hp, wp = (6 + 2 - (2 * 2 + 1)) // 2 + 1, (7 + 2 - (2 * 1 + 1)) // 2 + 1
    case("col2im18_2d_strides_pads_dilations",
         [node("Col2Im", ["x", "img", "blk"], ["y"], strides=[2, 2], pads=[1, 1, 1, 1],
               dilations=[2, 2])],
         [("x", randn(1, 2 * 6, hp * wp))], [("y", F)], 18,
         initializers=[("img", np.array([6, 7], np.int64)), ("blk", np.array([3, 2], np.int64))])
    case("col2im18_1d",
         [node("Col2Im", ["x", "img", "blk"], ["y"])],
         [("x", randn(1, 2 * 3, 6)), ("img", np.array([8], np.int64)),
          ("blk", np.array([3], np.int64))], [("y", F)], 18)
    case("col2im18_3d",
         [node("Col2Im", ["x", "img", "blk"], ["y"])],
         [("x", randn(1, 2 * 8, 2 * 3 * 2))], [("y", F)], 18,
         initializers=[("img", np.array([3, 4, 3], np.int64)),
                       ("blk", np.array([2, 2, 2], np.int64))])
    error_case("col2im18_wrong_position_count",
               [node("Col2Im", ["x", "img", "blk"], ["y"])],
               [("x", randn(1, 4, 15))], [("y", F)], 18, "is not the 16 block positions",
               initializers=[("img", np.array([5, 5], np.int64)),
                             ("blk", np.array([2, 2], np.int64))])
    z = randn(3, 5, 4)
    case("centercroppad18_crop_and_pad_all_axes",
         [node("CenterCropPad", ["x", "s"], ["y"])], [("x", z)], [("y", F)], 18,
         initializers=[("s", np.array([2, 8, 4], np.int64))])
    case("centercroppad18_odd_differences_axes",
         [node("CenterCropPad", ["x", "s"], ["y"], axes=[-1, 1])],
         [("x", z), ("s", np.array([7, 2], np.int64))], [("y", F)], 18)
    case("centercroppad18_int32",
         [node("CenterCropPad", ["x", "s"], ["y"], axes=[0])],
         [("x", np.arange(15, dtype=np.int32).reshape(5, 3))], [("y", TensorProto.INT32)], 18,
         initializers=[("s", np.array([2], np.int64))])
    error_case("centercroppad18_shape_length_mismatch",
               [node("CenterCropPad", ["x", "s"], ["y"], axes=[0, 1])],
               [("x", z), ("s", np.array([2], np.int64))], [("y", F)], 18,
               "shape must hold one size per axis (2)")


# ---- AveragePool-19 dilations, LpPool-18 ceil_mode and dilations -------------

def pool_cases():
    x = randn(1, 2, 7, 8)
    for include_pad in (0, 1):
        case(f"averagepool19_dilations_pads_count_include_pad{include_pad}",
             [node("AveragePool", ["x"], ["y"], kernel_shape=[3, 2], dilations=[2, 3],
                   pads=[1, 1, 2, 0], count_include_pad=include_pad)], [("x", x)], [("y", F)], 19)
    case("averagepool19_dilations_ceil_mode",
         [node("AveragePool", ["x"], ["y"], kernel_shape=[2, 2], dilations=[2, 2], strides=[2, 2],
               ceil_mode=1)], [("x", x)], [("y", F)], 19)
    case("averagepool19_1d_dilation",
         [node("AveragePool", ["x"], ["y"], kernel_shape=[3], dilations=[2])],
         [("x", randn(2, 3, 11))], [("y", F)], 19)
    for p in (1, 2, 3):
        case(f"lppool18_p{p}_dilations_ceil_mode",
             [node("LpPool", ["x"], ["y"], kernel_shape=[2, 3], dilations=[2, 1], strides=[2, 2],
                   ceil_mode=1, p=p)], [("x", x)], [("y", F)], 18)
    case("lppool18_pads",
         [node("LpPool", ["x"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])], [("x", x)],
         [("y", F)], 18)


# ---- Resize-18 axes and keep_aspect_ratio_policy, Resize-19 half_pixel_symmetric

def resize_cases():
    x = randn(1, 2, 4, 6)
    case("resize18_axes_scales_linear",
         [node("Resize", ["x", "", "scales"], ["y"], mode="linear", axes=[3, 2])], [("x", x)],
         [("y", F)], 18, initializers=[("scales", np.array([1.5, 0.5], np.float32))])
    case("resize18_axes_sizes_cubic",
         [node("Resize", ["x", "", "", "sizes"], ["y"], mode="cubic", axes=[-1])], [("x", x)],
         [("y", F)], 18, initializers=[("sizes", np.array([9], np.int64))])
    for policy in ("not_larger", "not_smaller", "stretch"):
        case(f"resize18_keep_aspect_ratio_{policy}",
             [node("Resize", ["x", "", "", "sizes"], ["y"], mode="linear", axes=[2, 3],
                   keep_aspect_ratio_policy=policy)], [("x", x)], [("y", F)], 18,
             initializers=[("sizes", np.array([7, 7], np.int64))])
    case("resize18_nearest_sizes_not_larger_all_axes",
         [node("Resize", ["x", "", "", "sizes"], ["y"], mode="nearest",
               keep_aspect_ratio_policy="not_larger")], [("x", x)], [("y", F)], 18,
         initializers=[("sizes", np.array([1, 2, 3, 12], np.int64))])
    case("resize18_tf_crop_and_resize_axes",
         [node("Resize", ["x", "roi", "", "sizes"], ["y"], mode="linear", axes=[2, 3],
               coordinate_transformation_mode="tf_crop_and_resize", extrapolation_value=-1.0)],
         [("x", x)], [("y", F)], 18,
         initializers=[("roi", np.array([0.1, -0.2, 0.9, 0.8], np.float32)),
                       ("sizes", np.array([3, 5], np.int64))])
    for mode in ("linear", "nearest", "cubic"):
        case(f"resize19_half_pixel_symmetric_{mode}",
             [node("Resize", ["x", "", "scales"], ["y"], mode=mode,
                   coordinate_transformation_mode="half_pixel_symmetric")], [("x", x)],
             [("y", F)], 19, initializers=[("scales", np.array([1, 1, 1.7, 0.6], np.float32))])
    # antialias (Resize-18) is implemented: its cases are in gen_op_cases_ops16.py
    error_case("resize18_half_pixel_symmetric_needs_19",
               [node("Resize", ["x", "", "scales"], ["y"],
                     coordinate_transformation_mode="half_pixel_symmetric")],
               [("x", x)], [("y", F)], 18, "half_pixel_symmetric needs Resize-19",
               initializers=[("scales", np.array([1, 1, 2, 2], np.float32))], feed=False)
    error_case("resize18_scales_do_not_match_axes",
               [node("Resize", ["x", "", "scales"], ["y"], axes=[2])], [("x", x)], [("y", F)], 18,
               "scales has 2 entries for 1 axes",
               initializers=[("scales", np.array([2, 2], np.float32))])


# ---- sequences (opset 11 operators, in opset 18 models) -------------------------

def sequence_cases():
    a, b, c = randn(2, 3), randn(1, 3), randn(4, 3)
    I = TensorProto.INT64
    case("sequence_construct_insert_erase_at_length",
         [node("SequenceConstruct", ["a", "b"], ["s"]),
          node("SequenceInsert", ["s", "c", "p0"], ["s2"]),
          node("SequenceErase", ["s2", "m1"], ["s3"]),
          node("SequenceAt", ["s3", "p0"], ["first"]),
          node("SequenceAt", ["s3", "m1"], ["last"]),
          node("SequenceLength", ["s3"], ["n"]),
          node("ConcatFromSequence", ["s3"], ["cat"], axis=0)],
         [("a", a), ("b", b), ("c", c)], [("first", F), ("last", F), ("n", I), ("cat", F)], 18,
         initializers=[("p0", np.array(0, np.int64)), ("m1", np.array(-1, np.int32))])
    case("sequence_split_to_sequence_chunks_concat_new_axis",
         [node("SplitToSequence", ["x", "k"], ["s"], axis=1),
          node("SequenceErase", ["s"], ["s2"]),
          node("ConcatFromSequence", ["s2"], ["y"], axis=-1, new_axis=1),
          node("SequenceLength", ["s"], ["n"])],
         [("x", randn(3, 8))], [("y", F), ("n", I)], 18,
         initializers=[("k", np.array(3, np.int64))])
    case("sequence_split_to_sequence_no_split_keepdims0",
         [node("SplitToSequence", ["x"], ["s"], axis=0, keepdims=0),
          node("SequenceAt", ["s", "p"], ["y"])],
         [("x", randn(4, 2, 3))], [("y", F)], 18, initializers=[("p", np.array(2, np.int64))])
    case("sequence_split_to_sequence_sizes",
         [node("SplitToSequence", ["x", "sizes"], ["s"], axis=-1),
          node("SequenceAt", ["s", "p"], ["y"])],
         [("x", randn(2, 7))], [("y", F)], 18,
         initializers=[("sizes", np.array([2, 0, 5], np.int64)), ("p", np.array(2, np.int64))])
    case("sequence_empty_insert_int32",
         [node("SequenceEmpty", [], ["e"], dtype=TensorProto.INT32),
          node("SequenceInsert", ["e", "x"], ["s"]),
          node("SequenceInsert", ["s", "x"], ["s2"]),
          node("ConcatFromSequence", ["s2"], ["y"], axis=0)],
         [("x", np.arange(6, dtype=np.int32).reshape(2, 3))], [("y", TensorProto.INT32)], 18)
    error_case("sequence_at_position_out_of_range",
               [node("SequenceConstruct", ["a", "b"], ["s"]), node("SequenceAt", ["s", "p"], ["y"])],
               [("a", a), ("b", b), ("p", np.array(2, np.int64))], [("y", F)], 18,
               "position 2 is out of range for a sequence of 2 tensors (allowed: -2 to 1)")
    error_case("sequence_insert_position_out_of_range",
               [node("SequenceConstruct", ["a"], ["s"]),
                node("SequenceInsert", ["s", "b", "p"], ["s2"]),
                node("SequenceLength", ["s2"], ["y"])],
               [("a", a), ("b", b), ("p", np.array(-3, np.int64))], [("y", I)], 18,
               "position -3 is out of range for a sequence of 1 tensors (allowed: -1 to 1)")
    error_case("sequence_erase_from_empty",
               [node("SequenceEmpty", [], ["e"]), node("SequenceErase", ["e"], ["s"]),
                node("SequenceLength", ["s"], ["y"])], [], [("y", I)], 18,
               "cannot erase from an empty sequence")
    error_case("sequence_construct_mixed_types",
               [node("SequenceConstruct", ["a", "i"], ["s"]), node("SequenceLength", ["s"], ["y"])],
               [("a", a), ("i", np.zeros(2, np.int64))], [("y", I)], 18,
               "input 1 is int64 but input 0 is float", feed=False)
    error_case("sequence_concat_mismatched_items",
               [node("SequenceConstruct", ["a", "c"], ["s"]),
                node("ConcatFromSequence", ["s"], ["y"], axis=1)],
               [("a", a), ("c", c)], [("y", F)], 18, "item 1 has dim 4 on axis 0, item 0 2")


# ---- control flow: If, Loop, Scan with outer-scope values ------------------------

def graph(nodes, name, inputs, outputs, initializers=()):
    """A subgraph: inputs/outputs are (name, elem_type, shape) triples."""
    return helper.make_graph(
        nodes, name, [helper.make_tensor_value_info(n, t, sh) for n, t, sh in inputs],
        [helper.make_tensor_value_info(n, t, sh) for n, t, sh in outputs],
        [numpy_helper.from_array(a, n) for n, a in initializers])


def control_flow_cases():
    B, I = TensorProto.BOOL, TensorProto.INT64
    x, w = randn(2, 3), randn(2, 3)
    # If: both branches read outer values (x, w) and the then branch a value
    # computed in the main graph after a node (xw)
    then_b = graph([node("Mul", ["xw", "w"], ["t"])], "then", [], [("t", F, None)])
    else_b = graph([node("Sub", ["x", "w"], ["e"]), node("Neg", ["e"], ["e2"])], "else", [],
                   [("e2", F, None)])
    for flag in (True, False):
        case(f"if{19 if flag else 21}_outer_scope_{'then' if flag else 'else'}",
             [node("Add", ["x", "w"], ["xw"]),
              node("If", ["c"], ["y"], then_branch=then_b, else_branch=else_b)],
             [("x", x), ("w", w), ("c", np.array(flag))], [("y", F)], 19 if flag else 21)
    # Loop with a trip count and a condition, loop-carried state, a scan output,
    # and a nested If in the body reading the main graph's `step` (two levels up)
    inner_then = graph([node("Add", ["acc_in", "step"], ["a1"])], "inner_then", [],
                       [("a1", F, None)])
    inner_else = graph([node("Sub", ["acc_in", "step"], ["a2"])], "inner_else", [],
                       [("a2", F, None)])
    body = graph(
        [node("Cast", ["i"], ["i_f"], to=F),
         node("Less", ["i_f", "half"], ["first_half"]),
         node("If", ["first_half"], ["acc_out"], then_branch=inner_then, else_branch=inner_else),
         node("ReduceSum", ["acc_out"], ["total"], keepdims=0),
         node("Less", ["total", "limit"], ["cond_out"]),
         node("Mul", ["acc_out", "i_f"], ["scan_out"])],
        "body", [("i", I, []), ("cond_in", B, []), ("acc_in", F, None)],
        [("cond_out", B, []), ("acc_out", F, None), ("scan_out", F, None)],
        initializers=[("half", np.array(2.0, np.float32))])
    case("loop19_state_scan_output_nested_if_outer_scope",
         [node("Loop", ["m", "c", "acc0"], ["acc", "scanned"], body=body)],
         [("m", np.array(5, np.int64)), ("c", np.array(True)), ("acc0", randn(3)),
          ("step", np.array([1.0, 2.0, 3.0], np.float32)),
          ("limit", np.array(100.0, np.float32))], [("acc", F), ("scanned", F)], 19)
    case("loop18_condition_stops_early",
         [node("Loop", ["m", "c", "acc0"], ["acc", "scanned"], body=body)],
         [("m", np.array(50, np.int64)), ("c", np.array(True)), ("acc0", randn(3)),
          ("step", np.array([5.0, 5.0, 5.0], np.float32)),
          ("limit", np.array(40.0, np.float32))], [("acc", F), ("scanned", F)], 18)
    case("loop18_zero_trip_count",
         [node("Loop", ["m", "c", "acc0"], ["acc", "scanned"], body=body)],
         [("m", np.array(0, np.int64)), ("c", np.array(True)), ("acc0", randn(3)),
          ("step", np.array([1.0, 1.0, 1.0], np.float32)),
          ("limit", np.array(40.0, np.float32))], [("acc", F)], 18)
    # a growing loop-carried value (its shape changes every iteration)
    grow = graph([node("Concat", ["v_in", "piece"], ["v_out"], axis=0),
                  node("Identity", ["cond_in"], ["cond_out"])],
                 "grow", [("i", I, []), ("cond_in", B, []), ("v_in", F, None)],
                 [("cond_out", B, []), ("v_out", F, None)])
    case("loop21_growing_state",
         [node("Loop", ["m", "", "v0"], ["v"], body=grow)],
         [("m", np.array(4, np.int64)), ("v0", randn(1, 2)), ("piece", randn(2, 2))],
         [("v", F)], 21)
    # Scan: running sum over axis 1 reversed, outputs stacked on axis 1
    scan_body = graph([node("Add", ["s_in", "x_t"], ["s_out"]), node("Identity", ["s_out"], ["y_t"])],
                      "scan_body", [("s_in", F, [2]), ("x_t", F, [2])],
                      [("s_out", F, [2]), ("y_t", F, [2])])
    case("scan19_reverse_input_axes_and_output_axes",
         [node("Scan", ["s0", "xs"], ["s", "ys"], body=scan_body, num_scan_inputs=1,
               scan_input_axes=[1], scan_input_directions=[1], scan_output_axes=[1])],
         [("s0", np.zeros(2, np.float32)), ("xs", randn(2, 5))], [("s", F), ("ys", F)], 19)
    case("scan16_two_scan_inputs_reversed_output",
         [node("Scan", ["s0", "xs", "zs"], ["s", "ys"], num_scan_inputs=2,
               scan_output_directions=[1],
               body=graph([node("Mul", ["x_t", "z_t"], ["p"]), node("Add", ["s_in", "p"], ["s_out"]),
                           node("Identity", ["s_out"], ["y_t"])],
                          "b2", [("s_in", F, [2]), ("x_t", F, [2]), ("z_t", F, [2])],
                          [("s_out", F, [2]), ("y_t", F, [2])]))],
         [("s0", np.zeros(2, np.float32)), ("xs", randn(4, 2)), ("zs", randn(4, 2))],
         [("s", F), ("ys", F)], 16)
    # ---- refused
    error_case("if18_branch_output_count_mismatch",
               [node("If", ["c"], ["y"],
                     then_branch=graph([node("Neg", ["x"], ["t"])], "t", [], [("t", F, None)]),
                     else_branch=graph([node("Neg", ["x"], ["a"]), node("Neg", ["x"], ["b"])],
                                       "else2", [], [("a", F, None), ("b", F, None)]))],
               [("x", x), ("w", w), ("c", np.array(True))], [("y", F)], 18,
               "else_branch gives 2 outputs; the node has 1", feed=False)
    error_case("if18_missing_else_branch",
               [node("If", ["c"], ["y"], then_branch=graph([node("Neg", ["x"], ["t"])], "t", [],
                                                           [("t", F, None)]))],
               [("x", x), ("c", np.array(True))], [("y", F)], 18,
               "needs the graph attributes then_branch and else_branch", feed=False)
    error_case("if18_cond_not_bool",
               [node("If", ["c"], ["y"], then_branch=then_b, else_branch=else_b)],
               [("x", x), ("w", w), ("c", np.array(1.0, np.float32)), ("xw", x)], [("y", F)], 18,
               "cond must be a bool tensor", feed=False)
    error_case("if18_unsupported_operator_in_branch_named",
               [node("If", ["c"], ["y"],
                     then_branch=graph([node("NoSuchOp", ["x"], ["t"], name="inner")], "t", [],
                                       [("t", F, None)]),
                     else_branch=graph([node("Neg", ["x"], ["e"])], "e", [], [("e", F, None)]),
                     name="choose")],
               [("x", x), ("c", np.array(True))], [("y", F)], 18,
               "NoSuchOp (ai.onnx opset 18) in If node 'choose' then_branch, node 'inner'",
               feed=False)
    error_case("if18_branch_reads_undefined_name",
               [node("If", ["c"], ["y"],
                     then_branch=graph([node("Neg", ["nowhere"], ["t"])], "t", [], [("t", F, None)]),
                     else_branch=graph([node("Neg", ["x"], ["e"])], "e", [], [("e", F, None)]),
                     name="choose")],
               [("x", x), ("c", np.array(True))], [("y", F)], 18,
               "If node 'choose' then_branch: Neg node '': input 'nowhere' is not produced",
               feed=False)
    error_case("loop18_negative_constant_trip_count",
               [node("Loop", ["m", "c", "v0"], ["v"], body=grow)],
               [("c", np.array(True)), ("v0", randn(1, 2)), ("piece", randn(2, 2))], [("v", F)], 18,
               "trip count M is negative (-2)", initializers=[("m", np.array(-2, np.int64))],
               feed=False)
    error_case("loop18_negative_trip_count_at_run_time",
               [node("Loop", ["m", "c", "v0"], ["v"], body=grow)],
               [("m", np.array(-1, np.int64)), ("c", np.array(True)), ("v0", randn(1, 2)),
                ("piece", randn(2, 2))], [("v", F)], 18, "trip count M is negative (-1)")
    error_case("loop18_condition_not_bool",
               [node("Loop", ["m", "c", "v0"], ["v"], body=grow)],
               [("m", np.array(2, np.int64)), ("c", np.array(1, np.int64)), ("v0", randn(1, 2)),
                ("piece", randn(2, 2))], [("v", F)], 18, "condition must be a bool tensor",
               feed=False)
    error_case("loop18_no_trip_count_no_condition",
               [node("Loop", ["", "", "v0"], ["v"], body=grow)],
               [("v0", randn(1, 2)), ("piece", randn(2, 2))], [("v", F)], 18,
               "has neither a trip count M nor a condition", feed=False)
    error_case("loop18_body_output_count_wrong",
               [node("Loop", ["m", "c", "v0"], ["v"],
                     body=graph([node("Identity", ["cond_in"], ["cond_out"])], "short",
                                [("i", I, []), ("cond_in", B, []), ("v_in", F, None)],
                                [("cond_out", B, [])]))],
               [("m", np.array(2, np.int64)), ("c", np.array(True)), ("v0", randn(1, 2))],
               [("v", F)], 18, "body gives 1 outputs", feed=False)
    error_case("scan18_inputs_of_different_lengths",
               [node("Scan", ["s0", "xs", "zs"], ["s", "ys"], num_scan_inputs=2,
                     body=graph([node("Mul", ["x_t", "z_t"], ["p"]),
                                 node("Add", ["s_in", "p"], ["s_out"]),
                                 node("Identity", ["s_out"], ["y_t"])],
                                "b2", [("s_in", F, [2]), ("x_t", F, [2]), ("z_t", F, [2])],
                                [("s_out", F, [2]), ("y_t", F, [2])]))],
               [("s0", np.zeros(2, np.float32)), ("xs", randn(4, 2)), ("zs", randn(3, 2))],
               [("s", F), ("ys", F)], 18, "scan inputs have different lengths")
    error_case("scan18_input_axis_out_of_range",
               [node("Scan", ["s0", "xs"], ["s", "ys"], body=scan_body, num_scan_inputs=1,
                     scan_input_axes=[2])],
               [("s0", np.zeros(2, np.float32)), ("xs", randn(2, 5))], [("s", F), ("ys", F)], 18,
               "scan_input_axes[0] = 2 is out of range for rank 2", feed=False)


# ---- RNN, GRU, LSTM ---------------------------------------------------------------

def recurrent_cases():
    seq, batch, inp, hid = 5, 3, 4, 6
    x = randn(seq, batch, inp)
    lens = np.array([5, 2, 0], np.int32)

    def weights(gates, dirs):
        return (randn(dirs, gates * hid, inp) * 0.5, randn(dirs, gates * hid, hid) * 0.5,
                randn(dirs, 2 * gates * hid) * 0.3, randn(dirs, batch, hid) * 0.5)

    for op, gates in (("RNN", 1), ("GRU", 3), ("LSTM", 4)):
        low = op.lower()
        for direction, dirs in (("forward", 1), ("reverse", 1), ("bidirectional", 2)):
            w, r, b, h0 = weights(gates, dirs)
            ins = ["x", "w", "r", "b", "lens", "h0"]
            feeds = [("x", x), ("w", w), ("r", r), ("b", b), ("lens", lens), ("h0", h0)]
            outs = [("y", F), ("yh", F)]
            attrs = dict(hidden_size=hid, direction=direction)
            if op == "LSTM":
                ins += ["c0", "p"]
                feeds += [("c0", randn(dirs, batch, hid) * 0.5), ("p", randn(dirs, 3 * hid) * 0.3)]
                outs.append(("yc", F))
            case(f"{low}18_{direction}_sequence_lens_initial_state" +
                 ("_peepholes" if op == "LSTM" else ""),
                 [node(op, ins, [n for n, _ in outs], **attrs)], feeds, outs, 18)
        w, r, b, h0 = weights(gates, 1)

        def batch_first(feeds, op=op, w=w, r=r):
            # ONNX Runtime has no layout=1: run layout 0 on the transposed
            # input and transpose its answers (numpy), never inferd's
            import tempfile
            with tempfile.TemporaryDirectory() as tmp:
                g = helper.make_graph(
                    [node(op, ["x", "w", "r"], ["y", "yh"], hidden_size=hid)], "ref",
                    [value_info("x", x), value_info("w", w), value_info("r", r)],
                    [helper.make_tensor_value_info("y", F, None),
                     helper.make_tensor_value_info("yh", F, None)])
                m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
                m.ir_version = 8
                onnx.save(m, os.path.join(tmp, "m.onnx"))
                got, _ = ort_reference.run(os.path.join(tmp, "m.onnx"),
                                           {"x": np.ascontiguousarray(
                                               feeds["xb"].transpose(1, 0, 2)),
                                            "w": w, "r": r})
            return {"y": np.ascontiguousarray(got["y"].transpose(2, 0, 1, 3)),
                    "yh": np.ascontiguousarray(got["yh"].transpose(1, 0, 2))}
        case(f"{low}18_layout1_batch_first_no_bias",
             [node(op, ["xb", "w", "r"], ["y", "yh"], hidden_size=hid, layout=1)],
             [("xb", np.ascontiguousarray(x.transpose(1, 0, 2))), ("w", w), ("r", r)],
             [("y", F), ("yh", F)], 18, reference=batch_first)
        acts = {"RNN": ["LeakyRelu"], "GRU": ["HardSigmoid", "ScaledTanh"],
                "LSTM": ["HardSigmoid", "Tanh", "Softsign"]}[op]
        case(f"{low}18_activations_alpha_beta_clip",
             [node(op, ["x", "w", "r", "b"], ["y"], hidden_size=hid, activations=acts,
                   activation_alpha=[0.3, 0.8], activation_beta=[0.4, 0.6], clip=0.9)],
             [("x", x), ("w", w), ("r", r), ("b", b)], [("y", F)], 18)
    w, r, b, h0 = weights(3, 1)
    case("gru18_linear_before_reset",
         [node("GRU", ["x", "w", "r", "b", "", "h0"], ["y", "yh"], hidden_size=hid,
               linear_before_reset=1)],
         [("x", x), ("w", w), ("r", r), ("b", b), ("h0", h0)], [("y", F), ("yh", F)], 18)
    w, r, b, h0 = weights(4, 1)
    case("lstm18_input_forget",
         [node("LSTM", ["x", "w", "r", "b"], ["y", "yh", "yc"], hidden_size=hid, input_forget=1)],
         [("x", x), ("w", w), ("r", r), ("b", b)], [("y", F), ("yh", F), ("yc", F)], 18)
    error_case("lstm18_hidden_size_disagrees_with_r",
               [node("LSTM", ["x", "w", "r"], ["y"], hidden_size=hid + 1)],
               [("x", x), ("w", w), ("r", r)], [("y", F)], 18, "W has shape [1, 24, 4]; 1 direction(s) and hidden_size 7",
               feed=False)
    error_case("gru18_w_rows_do_not_match_gates",
               [node("GRU", ["x", "w", "r"], ["y"], hidden_size=hid)],
               [("x", x), ("w", randn(1, 2 * hid, inp)), ("r", randn(1, 3 * hid, hid))],
               [("y", F)], 18, "W has shape [1, 12, 4]", feed=False)
    error_case("rnn18_wrong_activation_count",
               [node("RNN", ["x", "w", "r"], ["y"], hidden_size=hid, direction="bidirectional",
                     activations=["Tanh"])],
               [("x", x), ("w", randn(2, hid, inp)), ("r", randn(2, hid, hid))], [("y", F)], 18,
               "activations has 1 names; RNN with 2 directions takes 2", feed=False)
    error_case("rnn18_sequence_lens_out_of_range",
               [node("RNN", ["x", "w", "r", "", "lens"], ["y"], hidden_size=hid)],
               [("x", x), ("w", randn(1, hid, inp)), ("r", randn(1, hid, hid)),
                ("lens", np.array([5, 6, 1], np.int32))], [("y", F)], 18,
               "sequence_lens[1] = 6 is outside 0..5")


# ---- QuantizeLinear / DequantizeLinear 19 and 21, DynamicQuantizeLinear ----------

def quantize_cases():
    x = randn(2, 3, 4) * 4
    U8, I8, I16, U16 = TensorProto.UINT8, TensorProto.INT8, TensorProto.INT16, TensorProto.UINT16
    case("quantizelinear19_per_tensor_int8_round_half_even",
         [node("QuantizeLinear", ["x", "s", "z"], ["y"])],
         [("x", np.array([0.5, 1.5, 2.5, -0.5, -1.5, 300.0, -300.0], np.float32))],
         [("y", I8)], 19, initializers=[("s", np.array(1.0, np.float32)),
                                       ("z", np.array(3, np.int8))])
    case("quantizelinear19_per_axis_uint8_then_dequantize",
         [node("QuantizeLinear", ["x", "s", "z"], ["q"], axis=1),
          node("DequantizeLinear", ["q", "s", "z"], ["y"], axis=1)],
         [("x", x)], [("q", U8), ("y", F)], 19,
         initializers=[("s", np.array([0.05, 0.1, 0.2], np.float32)),
                       ("z", np.array([128, 100, 10], np.uint8))])
    case("quantizelinear19_float16_input_and_scale",
         [node("QuantizeLinear", ["x", "s"], ["q"]), node("DequantizeLinear", ["q", "s"], ["y"])],
         [("x", (x * 0.5).astype(np.float16))], [("q", U8), ("y", TensorProto.FLOAT16)], 19,
         initializers=[("s", np.array(0.03, np.float16))])
    case("quantizelinear21_blocked_int16",
         [node("QuantizeLinear", ["x", "s", "z"], ["q"], axis=2, block_size=3),
          node("DequantizeLinear", ["q", "s", "z"], ["y"], axis=2, block_size=3)],
         [("x", x * 100)], [("q", I16), ("y", F)], 21,
         initializers=[("s", (np.abs(randn(2, 3, 2)) * 0.01 + 0.005).astype(np.float32)),
                       ("z", rng.integers(-50, 50, size=(2, 3, 2)).astype(np.int16))])
    case("quantizelinear21_output_dtype_uint16",
         [node("QuantizeLinear", ["x", "s"], ["q"], output_dtype=U16)],
         [("x", np.abs(x) * 1000)], [("q", U16)], 21,
         initializers=[("s", np.array(0.5, np.float32))])
    case("dequantizelinear21_int32_per_axis_axis0",
         [node("DequantizeLinear", ["x", "s"], ["y"], axis=0)],
         [("x", rng.integers(-1000, 1000, size=(3, 4)).astype(np.int32))], [("y", F)], 21,
         initializers=[("s", np.array([0.1, 0.01, 2.0], np.float32))])
    case("dynamicquantizelinear18_positive_only",
         [node("DynamicQuantizeLinear", ["x"], ["y", "s", "z"])],
         [("x", np.abs(x) + 1)], [("y", U8), ("s", F), ("z", U8)], 18)
    error_case("quantizelinear19_zero_scale_refused",
               [node("QuantizeLinear", ["x", "s"], ["y"])], [("x", x)], [("y", U8)], 19,
               "scale 0 is 0: scales must be positive and finite",
               initializers=[("s", np.array(0.0, np.float32))], feed=False)
    error_case("quantizelinear19_zero_scale_at_run_time",
               [node("QuantizeLinear", ["x", "s"], ["y"], axis=1)],
               [("x", x), ("s", np.array([0.1, 0.0, 0.2], np.float32))], [("y", U8)], 19,
               "scale 1 is 0: scales must be positive and finite")
    error_case("dequantizelinear19_zero_point_type_mismatch",
               [node("DequantizeLinear", ["x", "s", "z"], ["y"])],
               [("x", np.zeros(3, np.uint8))], [("y", F)], 19,
               "x_zero_point is int8 but x is uint8: they must match",
               initializers=[("s", np.array(1.0, np.float32)), ("z", np.array(0, np.int8))],
               feed=False)
    error_case("quantizelinear19_per_axis_scale_wrong_length",
               [node("QuantizeLinear", ["x", "s"], ["y"], axis=1)],
               [("x", x), ("s", np.array([0.1, 0.2], np.float32))], [("y", U8)], 19,
               "a per-axis scale must be 1-D with 3 values")
    error_case("quantizelinear21_blocked_scale_wrong_shape",
               [node("QuantizeLinear", ["x", "s"], ["y"], axis=2, block_size=3)],
               [("x", x), ("s", np.ones((2, 3, 1), np.float32))], [("y", U8)], 21,
               "blocked scale dim 2 is 1; block_size 3 needs 2")


# ---- Einsum, NonMaxSuppression, Det, window functions, StringNormalizer ----------

def suite_operator_cases():
    I = TensorProto.INT64
    for name, eq, shapes in (
            ("ellipsis_batch_matmul", "...ij,...jk->...ik", [(2, 3, 4, 5), (2, 3, 5, 2)]),
            ("implicit_output", "ij,jk", [(3, 4), (4, 2)]),
            ("diagonal_trace", "ii->", [(4, 4)]),
            ("outer_product_three", "i,j,k->ijk", [(2,), (3,), (4,)]),
            ("bilinear", "bn,anm,bm->ba", [(2, 3), (4, 3, 5), (2, 5)]),
            ("broadcast_ellipsis_sum", "...i->...", [(2, 1, 3, 4)])):
        feeds = [("x%d" % i, randn(*sh)) for i, sh in enumerate(shapes)]
        case(f"einsum18_{name}", [node("Einsum", [n for n, _ in feeds], ["y"], equation=eq)],
             feeds, [("y", F)], 18)
    case("einsum18_int64_matmul",
         [node("Einsum", ["a", "b"], ["y"], equation="ij,jk->ik")],
         [("a", rng.integers(-9, 9, size=(3, 4)).astype(np.int64)),
          ("b", rng.integers(-9, 9, size=(4, 2)).astype(np.int64))], [("y", I)], 18)
    error_case("einsum18_operand_count_mismatch",
               [node("Einsum", ["a"], ["y"], equation="ij,jk->ik")], [("a", randn(2, 2))],
               [("y", F)], 18, "equation 'ij,jk->ik' has 2 operands; the node has 1", feed=False)
    error_case("einsum18_size_mismatch",
               [node("Einsum", ["a", "b"], ["y"], equation="ij,jk->ik")],
               [("a", randn(2, 3)), ("b", randn(4, 2))], [("y", F)], 18, "does not fit")
    boxes = np.abs(randn(2, 12, 4)) * 10
    boxes[..., 2:] = boxes[..., :2] + np.abs(randn(2, 12, 2)) * 5 + 1
    scores = rng.random((2, 3, 12)).astype(np.float32)
    for center, iou, thr in ((0, 0.3, None), (1, 0.5, 0.4), (0, 0.0, 0.2)):
        ins = ["boxes", "scores", "max", "iou"] + (["thr"] if thr is not None else [])
        inits = [("max", np.array(4, np.int64)), ("iou", np.array(iou, np.float32))]
        if thr is not None:
            inits.append(("thr", np.array(thr, np.float32)))
        case(f"nonmaxsuppression18_center{center}_iou{iou}_thr{thr}",
             [node("NonMaxSuppression", ins, ["sel"], center_point_box=center)],
             [("boxes", boxes), ("scores", scores)], [("sel", I)], 18, initializers=inits)
    case("det18_batch_3x3", [node("Det", ["x"], ["y"])], [("x", randn(2, 4, 3, 3))], [("y", F)], 18)
    for op in ("HannWindow", "HammingWindow", "BlackmanWindow"):
        for periodic in (0, 1):
            case(f"{op.lower()}18_periodic{periodic}_double",
                 [node(op, ["n"], ["y"], periodic=periodic, output_datatype=TensorProto.DOUBLE)],
                 [("n", np.array(9, np.int64))], [("y", TensorProto.DOUBLE)], 18)
    # ONNX Runtime needs the host's en_US.UTF-8 locale for StringNormalizer:
    # Python's own case mapping is the reference (words whose case pairs are
    # one-to-one)
    words = np.array(["Monday", "ÉTÉ", "Ärger", "Привет", "mOnDaY", "Ωmega", "x"], dtype=object)
    for action in ("LOWER", "UPPER"):
        def normalize(feeds, action=action):
            kept = [w for w in feeds["x"] if w.lower() != "monday"]
            return {"y": np.array([w.lower() if action == "LOWER" else w.upper() for w in kept],
                                  dtype=object)}
        case(f"stringnormalizer18_{action.lower()}_utf8_case_insensitive_stopwords",
             [node("StringNormalizer", ["x"], ["y"], case_change_action=action,
                   stopwords=["monday"], is_case_sensitive=0)],
             [("x", words)], [("y", TensorProto.STRING)], 18, reference=normalize)


# ---- GridSample-20 -------------------------------------------------------------------

def grid_sample_cases():
    x = randn(2, 3, 5, 6)
    grid = (rng.random((2, 4, 7, 2)).astype(np.float32) * 3.2 - 1.6)  # some far outside
    for mode in ("nearest", "linear", "cubic"):
        for padding in ("zeros", "border", "reflection"):
            for align in (0, 1):
                case(f"gridsample20_{mode}_{padding}_align{align}",
                     [node("GridSample", ["x", "g"], ["y"], mode=mode, padding_mode=padding,
                           align_corners=align)], [("x", x), ("g", grid)], [("y", F)], 20)
    # 5-D volumes came with GridSample-20 (cases in gen_op_cases_ops16.py);
    # GridSample-16 stays 4-D.
    error_case("gridsample16_5d_refused",
               [node("GridSample", ["x", "g"], ["y"])],
               [("x", randn(1, 1, 2, 2, 2)), ("g", randn(1, 2, 2, 2, 3))], [("y", F)], 16,
               "GridSample-16 takes only 4-D X", feed=False)
    error_case("gridsample16_v20_mode_name_refused",
               [node("GridSample", ["x", "g"], ["y"], mode="linear")],
               [("x", x), ("g", grid)], [("y", F)], 16,
               "mode 'linear' is not one of GridSample-16's", feed=False)


GROUPS = [reduce_cases, split_cases, type_only_cases, new_operator_cases, pad_scatter_cases,
          image_op_cases, pool_cases, resize_cases, sequence_cases, control_flow_cases,
          recurrent_cases, quantize_cases, suite_operator_cases, grid_sample_cases]


def main():
    if not ort_reference.available():
        sys.exit("onnxruntime-node is not installed: run `npm ci` first")
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    for group in GROUPS:
        group()
    print("wrote %d cases to %s" % (len(os.listdir(OUT)), os.path.relpath(OUT)))


if __name__ == "__main__":
    main()
