#!/usr/bin/python3
"""Writes tests/engine/ops/cases/shape/: cases for the shape, indexing and
layout operator families (src/engine/ops/{shape,indexing,layout}.c) that the
ONNX backend suite does not cover — old opset versions (Reshape-1's attribute,
Squeeze-1, Slice-1, Pad-2, Split-2, Tile-1, Dropout-7's float mask...), dtypes
it never uses (strings, int16, bool), fast paths (blocked transposes) and
errors that must be reported rather than crash (out-of-range indices, bad
shapes).

Layout is the backend suite's: <case>/model.onnx and
<case>/test_data_set_0/{input_N.pb,output_N.pb}; an error case has an
`expect_error` file with a substring of the expected message (at load when the
bad value is an initializer, at run time when it is a graph input). Expected
outputs come from numpy references written here.

Run with Debian's /usr/bin/python3 (python3-onnx, python3-numpy):
    /usr/bin/python3 tools/gen_op_cases_shape.py
"""
import os
import shutil

import numpy as np
import onnx
from onnx import helper, numpy_helper

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "tests", "engine", "ops", "cases", "shape")
RNG = np.random.default_rng(20240611)
I64_MAX = np.iinfo(np.int64).max
I64_MIN = np.iinfo(np.int64).min


def tensor_type(array):
    if array.dtype == object:
        return onnx.TensorProto.STRING
    return onnx.mapping.NP_TYPE_TO_TENSOR_TYPE[array.dtype]


def randn(*shape, dtype=np.float32):
    return RNG.standard_normal(shape).astype(dtype)


def strings(*shape):
    count = int(np.prod(shape)) if shape else 1
    words = np.array([f"s{i}".encode() * (i % 3 + 1) for i in range(count)], dtype=object)
    return words.reshape(shape)


def write_case(name, nodes, inputs, outputs, opset, initializers=(), expect_error=None,
               output_types=None, input_shapes=None):
    """inputs/outputs: lists of (name, array). output_types gives the declared
    (dtype, shape) of outputs whose array is None (error cases); input_shapes
    declares inputs with symbolic dims (e.g. ["N", 3])."""
    case_dir = os.path.join(OUT, name)
    shutil.rmtree(case_dir, ignore_errors=True)
    os.makedirs(os.path.join(case_dir, "test_data_set_0"))
    graph_inputs = [helper.make_tensor_value_info(n, tensor_type(a),
                                                  (input_shapes or {}).get(n, a.shape))
                    for n, a in inputs]
    graph_outputs = []
    for i, (n, a) in enumerate(outputs):
        if a is None:
            dtype, shape = (output_types or {}).get(n, (onnx.TensorProto.FLOAT, None))
            graph_outputs.append(helper.make_tensor_value_info(n, dtype, shape))
        else:
            graph_outputs.append(helper.make_tensor_value_info(n, tensor_type(a), a.shape))
    inits = [numpy_helper.from_array(a, n) for n, a in initializers]
    graph = helper.make_graph(nodes, name, graph_inputs, graph_outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="gen_op_cases_shape")
    model.ir_version = 7
    onnx.save(model, os.path.join(case_dir, "model.onnx"))
    for i, (n, a) in enumerate(inputs):
        with open(os.path.join(case_dir, "test_data_set_0", f"input_{i}.pb"), "wb") as f:
            f.write(numpy_helper.from_array(a, n).SerializeToString())
    if expect_error is not None:
        with open(os.path.join(case_dir, "expect_error"), "w") as f:
            f.write(expect_error + "\n")
        return
    for i, (n, a) in enumerate(outputs):
        with open(os.path.join(case_dir, "test_data_set_0", f"output_{i}.pb"), "wb") as f:
            f.write(numpy_helper.from_array(np.asarray(a), n).SerializeToString())


def node(op, inputs, outputs, **attrs):
    return helper.make_node(op, inputs, outputs, **attrs)


# ---- shape.c -------------------------------------------------------------

def shape_cases():
    x = randn(2, 3, 4)
    write_case("test_reshape_v1_attribute", [node("Reshape", ["x"], ["y"], shape=[4, 0, -1])],
               [("x", x)], [("y", x.reshape(4, 3, 2))], opset=4)
    write_case("test_reshape_v5_zero_copies_dim",
               [node("Reshape", ["x", "s"], ["y"])], [("x", x), ("s", np.array([0, -1], np.int64))],
               [("y", x.reshape(2, 12))], opset=6)
    z = np.zeros((0, 3), np.float32)
    write_case("test_reshape_allowzero_keeps_zero",
               [node("Reshape", ["x", "s"], ["y"], allowzero=1)],
               [("x", z), ("s", np.array([3, 0], np.int64))], [("y", z.reshape(3, 0))], opset=14)
    s = strings(2, 3)
    write_case("test_reshape_strings", [node("Reshape", ["x", "s"], ["y"])],
               [("x", s), ("s", np.array([3, 2], np.int64))], [("y", s.reshape(3, 2))], opset=13)
    write_case("test_reshape_rejects_two_inferred_dims", [node("Reshape", ["x", "s"], ["y"])],
               [("x", x)], [("y", None)], opset=13,
               initializers=[("s", np.array([-1, -1], np.int64))],
               expect_error="more than one -1")
    write_case("test_reshape_rejects_count_mismatch", [node("Reshape", ["x", "s"], ["y"])],
               [("x", x), ("s", np.array([5, 5], np.int64))], [("y", None)], opset=13,
               expect_error="cannot reshape 24 elements")
    write_case("test_reshape_constant_shape_symbolic_batch",
               [node("Reshape", ["x", "s"], ["r"]), node("Transpose", ["r"], ["y"])],
               [("x", x)], [("y", x.reshape(2, 12).T.copy())], opset=13,
               initializers=[("s", np.array([0, -1], np.int64))],
               input_shapes={"x": ["N", 3, 4]})
    # The shape arithmetic PyTorch exports for x.view(x.size(0), -1).
    write_case("test_reshape_dynamic_shape_chain",
               [node("Shape", ["x"], ["shape"]), node("Gather", ["shape", "zero"], ["n"]),
                node("Unsqueeze", ["n", "axes"], ["n1"]),
                node("Concat", ["n1", "minus_one"], ["target"], axis=0),
                node("Reshape", ["x", "target"], ["y"])],
               [("x", x)], [("y", x.reshape(2, 12))], opset=13,
               initializers=[("zero", np.array(0, np.int64)), ("axes", np.array([0], np.int64)),
                             ("minus_one", np.array([-1], np.int64))],
               input_shapes={"x": ["N", "C", 4]})
    write_case("test_unsqueeze_squeeze_constant_axes",
               [node("Unsqueeze", ["x", "a"], ["u"]), node("Squeeze", ["u", "b"], ["y"])],
               [("x", x)], [("y", x.reshape(2, 3, 4))], opset=13,
               initializers=[("a", np.array([0, -1], np.int64)),
                             ("b", np.array([4, 0], np.int64))],
               input_shapes={"x": [2, "H", 4]})
    write_case("test_flatten_v1_axis0", [node("Flatten", ["x"], ["y"], axis=0)], [("x", x)],
               [("y", x.reshape(1, 24))], opset=6)
    write_case("test_flatten_v9_rejects_negative_axis",
               [node("Flatten", ["x"], ["y"], axis=-1)], [("x", x)], [("y", None)], opset=9,
               expect_error="out of range")
    write_case("test_flatten_strings_negative_axis", [node("Flatten", ["x"], ["y"], axis=-1)],
               [("x", strings(2, 2, 3))], [("y", strings(2, 2, 3).reshape(4, 3))], opset=13)
    x1 = randn(1, 3, 1, 2)
    write_case("test_squeeze_v1_attribute", [node("Squeeze", ["x"], ["y"], axes=[0, 2])],
               [("x", x1)], [("y", x1.reshape(3, 2))], opset=6)
    write_case("test_squeeze_v13_no_axes", [node("Squeeze", ["x"], ["y"])], [("x", x1)],
               [("y", x1.reshape(3, 2))], opset=13)
    write_case("test_squeeze_empty_axes_squeezes_all", [node("Squeeze", ["x", "a"], ["y"])],
               [("x", x1), ("a", np.zeros(0, np.int64))], [("y", x1.reshape(3, 2))], opset=13)
    write_case("test_squeeze_rejects_non_unit_axis",
               [node("Squeeze", ["x", "a"], ["y"])], [("x", x1), ("a", np.array([1], np.int64))],
               [("y", None)], opset=13, expect_error="not 1")
    write_case("test_unsqueeze_v1_attribute", [node("Unsqueeze", ["x"], ["y"], axes=[0, 3])],
               [("x", x)], [("y", x.reshape(1, 2, 3, 1, 4))], opset=6)
    write_case("test_unsqueeze_v11_negative_axes",
               [node("Unsqueeze", ["x"], ["y"], axes=[-1, 1])],
               [("x", x)], [("y", x.reshape(2, 1, 3, 4, 1))], opset=11)
    write_case("test_unsqueeze_rejects_repeated_axis",
               [node("Unsqueeze", ["x", "a"], ["y"])],
               [("x", x), ("a", np.array([1, 1], np.int64))], [("y", None)], opset=13,
               expect_error="repeated")
    write_case("test_shape_v1", [node("Shape", ["x"], ["y"])], [("x", x)],
               [("y", np.array(x.shape, np.int64))], opset=6)
    write_case("test_shape_scalar", [node("Shape", ["x"], ["y"])],
               [("x", np.array(3.0, np.float32))],
               [("y", np.zeros(0, np.int64))], opset=13)
    write_case("test_size_strings", [node("Size", ["x"], ["y"])], [("x", strings(3, 2))],
               [("y", np.array(6, np.int64))], opset=6)
    write_case("test_identity_strings", [node("Identity", ["x"], ["y"])], [("x", strings(2, 3))],
               [("y", strings(2, 3))], opset=13)
    write_case("test_dropout_v7_float_mask", [node("Dropout", ["x"], ["y", "m"], ratio=0.3)],
               [("x", x)], [("y", x), ("m", np.ones_like(x))], opset=7)
    write_case("test_dropout_v10_bool_mask", [node("Dropout", ["x"], ["y", "m"])], [("x", x)],
               [("y", x), ("m", np.ones(x.shape, bool))], opset=10)
    write_case("test_dropout_v12_training_false",
               [node("Dropout", ["x", "r", "t"], ["y", "m"])],
               [("x", x), ("r", np.array(0.5, np.float32)), ("t", np.array(False))],
               [("y", x), ("m", np.ones(x.shape, bool))], opset=12)
    # Training mode draws from numpy's legacy generator seeded with `seed`,
    # exactly as ONNX's reference implementation does.
    np.random.seed(7)
    keep = np.random.uniform(0, 1.0, x.shape) >= 0.3
    write_case("test_dropout_training_seeded_matches_numpy",
               [node("Dropout", ["x", "r", "t"], ["y", "m"], seed=7)], [("x", x)],
               [("y", (keep * x / np.float32(0.7)).astype(np.float32)), ("m", keep)], opset=13,
               initializers=[("r", np.array(0.3, np.float32)), ("t", np.array(True))])
    write_case("test_dropout_training_rejects_ratio_one", [node("Dropout", ["x", "r", "t"], ["y"])],
               [("x", x)], [("y", None)], opset=13,
               initializers=[("r", np.array(1.0, np.float32)), ("t", np.array(True))],
               expect_error="outside [0, 1)")
    e = randn(3, 1)
    write_case("test_expand_v8_bidirectional", [node("Expand", ["x", "s"], ["y"])],
               [("x", e), ("s", np.array([2, 1, 4], np.int64))],
               [("y", e * np.ones((2, 1, 4), np.float32))], opset=8)
    write_case("test_expand_strings", [node("Expand", ["x", "s"], ["y"])],
               [("x", strings(1, 3)), ("s", np.array([2, 3], np.int64))],
               [("y", np.broadcast_to(strings(1, 3), (2, 3)).copy())], opset=13)
    write_case("test_expand_rejects_incompatible", [node("Expand", ["x", "s"], ["y"])],
               [("x", e), ("s", np.array([2, 4], np.int64))], [("y", None)], opset=13,
               expect_error="does not broadcast")
    t = randn(2, 3)
    write_case("test_tile_v1_tiles_axis", [node("Tile", ["x", "n", "a"], ["y"])],
               [("x", t), ("n", np.array(3, np.float32)), ("a", np.array(1, np.float32))],
               [("y", np.tile(t, (1, 3)))], opset=5)
    write_case("test_tile_v6_int16", [node("Tile", ["x", "r"], ["y"])],
               [("x", (t * 10).astype(np.int16)), ("r", np.array([2, 2], np.int64))],
               [("y", np.tile((t * 10).astype(np.int16), (2, 2)))], opset=6)
    write_case("test_tile_zero_repeat", [node("Tile", ["x", "r"], ["y"])],
               [("x", t), ("r", np.array([0, 2], np.int64))], [("y", np.tile(t, (0, 2)))],
               opset=13)
    value = numpy_helper.from_array(np.array([7], np.int64), "value")
    write_case("test_constantofshape_int64_from_initializer",
               [node("ConstantOfShape", ["s"], ["y"], value=value)], [],
               [("y", np.full((2, 3), 7, np.int64))], opset=9,
               initializers=[("s", np.array([2, 3], np.int64))])
    write_case("test_constantofshape_scalar", [node("ConstantOfShape", ["s"], ["y"])],
               [("s", np.zeros(0, np.int64))], [("y", np.array(0, np.float32))], opset=9)
    write_case("test_range_int16", [node("Range", ["a", "b", "d"], ["y"])],
               [("a", np.array(10, np.int16)), ("b", np.array(-7, np.int16)),
                ("d", np.array(-4, np.int16))], [("y", np.arange(10, -7, -4, dtype=np.int16))],
               opset=11)
    write_case("test_range_int64_extremes", [node("Range", ["a", "b", "d"], ["y"])],
               [("a", np.array(I64_MIN, np.int64)), ("b", np.array(I64_MAX, np.int64)),
                ("d", np.array(I64_MAX, np.int64))],
               [("y", np.array([I64_MIN, -1, I64_MAX - 1], np.int64))], opset=11)
    write_case("test_range_empty_double", [node("Range", ["a", "b", "d"], ["y"])],
               [("a", np.array(1.0)), ("b", np.array(0.5)), ("d", np.array(0.25))],
               [("y", np.zeros(0))], opset=11)
    write_case("test_range_rejects_zero_delta", [node("Range", ["a", "b", "d"], ["y"])],
               [("a", np.array(1, np.int32)), ("b", np.array(5, np.int32)),
                ("d", np.array(0, np.int32))], [("y", None)], opset=11,
               output_types={"y": (onnx.TensorProto.INT32, None)}, expect_error="delta is 0")
    write_case("test_eyelike_negative_k_bool", [node("EyeLike", ["x"], ["y"], k=-1, dtype=9)],
               [("x", randn(3, 5))], [("y", np.eye(3, 5, k=-1, dtype=bool))], opset=9)
    write_case("test_eyelike_k_outside", [node("EyeLike", ["x"], ["y"], k=7)],
               [("x", np.zeros((3, 5), np.int32))], [("y", np.eye(3, 5, k=7, dtype=np.int32))],
               opset=9)


# ---- indexing.c ----------------------------------------------------------

def indexing_cases():
    d = randn(5, 4)
    write_case("test_gather_v1_strings_axis1", [node("Gather", ["x", "i"], ["y"], axis=1)],
               [("x", strings(3, 4)), ("i", np.array([[3, 0], [1, 1]], np.int64))],
               [("y", np.take(strings(3, 4), [[3, 0], [1, 1]], axis=1))], opset=6)
    write_case("test_gather_int32_negative", [node("Gather", ["x", "i"], ["y"])],
               [("x", d), ("i", np.array([-1, 0, -5], np.int32))],
               [("y", np.take(d, [-1, 0, -5], axis=0))], opset=13)
    write_case("test_gather_scalar_index", [node("Gather", ["x", "i"], ["y"], axis=-1)],
               [("x", d), ("i", np.array(2, np.int64))], [("y", d[:, 2])], opset=13)
    write_case("test_gather_rejects_out_of_range", [node("Gather", ["x", "i"], ["y"])],
               [("x", d), ("i", np.array([0, 5], np.int64))], [("y", None)], opset=13,
               expect_error="index 5 is out of range")
    write_case("test_gather_rejects_huge_negative", [node("Gather", ["x", "i"], ["y"])],
               [("x", d), ("i", np.array([I64_MIN], np.int64))], [("y", None)], opset=13,
               expect_error="out of range")
    gi = np.array([[1, 0, 3, 2], [-1, 2, 0, 0]], np.int64)
    write_case("test_gather_elements_axis0_rows", [node("GatherElements", ["x", "i"], ["y"])],
               [("x", d), ("i", gi)], [("y", np.take_along_axis(d, gi % 5, axis=0))], opset=11)
    write_case("test_gather_elements_rejects_out_of_range",
               [node("GatherElements", ["x", "i"], ["y"], axis=1)],
               [("x", d), ("i", np.array([[4]], np.int64))], [("y", None)], opset=13,
               expect_error="out of range")
    nd = randn(2, 3, 4)
    write_case("test_gathernd_v11_slices", [node("GatherND", ["x", "i"], ["y"])],
               [("x", nd), ("i", np.array([[1, 2], [0, -1]], np.int64))],
               [("y", np.stack([nd[1, 2], nd[0, -1]]))], opset=11)
    idx = np.array([[[1], [0]], [[2], [2]]], np.int64)
    ref = np.stack([np.stack([nd[b, idx[b, t, 0]] for t in range(2)]) for b in range(2)])
    write_case("test_gathernd_batch_dims_rows", [node("GatherND", ["x", "i"], ["y"], batch_dims=1)],
               [("x", nd), ("i", idx)], [("y", ref)], opset=13)
    write_case("test_gathernd_rejects_out_of_range", [node("GatherND", ["x", "i"], ["y"])],
               [("x", nd), ("i", np.array([[2, 0]], np.int64))], [("y", None)], opset=13,
               expect_error="out of range")
    data = np.arange(12, dtype=np.int64).reshape(3, 4)
    si = np.array([[2, 0], [2, 1]], np.int64)
    su = np.array([[100, 200], [300, 400]], np.int64)

    def scatter(reduction):
        out = data.copy()
        for r in range(2):
            for c in range(2):
                if reduction == "add":
                    out[si[r, c], c] += su[r, c]
                elif reduction == "mul":
                    out[si[r, c], c] *= su[r, c]
                else:
                    out[si[r, c], c] = su[r, c]
        return out
    write_case("test_scatter_v9_deprecated", [node("Scatter", ["x", "i", "u"], ["y"])],
               [("x", data), ("i", si), ("u", su)], [("y", scatter("none"))], opset=9)
    write_case("test_scatter_elements_add_int64",
               [node("ScatterElements", ["x", "i", "u"], ["y"], reduction="add")],
               [("x", data), ("i", si), ("u", su)], [("y", scatter("add"))], opset=16)
    write_case("test_scatter_elements_mul_int64",
               [node("ScatterElements", ["x", "i", "u"], ["y"], reduction="mul")],
               [("x", data), ("i", si), ("u", su)], [("y", scatter("mul"))], opset=16)
    sd = strings(3, 2)
    sref = sd.copy()
    sref[0, 1] = b"new"
    write_case("test_scatter_elements_strings",
               [node("ScatterElements", ["x", "i", "u"], ["y"], axis=1)],
               [("x", sd), ("i", np.array([[1]], np.int32)), ("u", np.array([[b"new"]], object))],
               [("y", sref)], opset=13)
    write_case("test_scatter_elements_rejects_out_of_range",
               [node("ScatterElements", ["x", "i", "u"], ["y"])],
               [("x", data), ("i", np.array([[3]], np.int64)), ("u", np.array([[1]], np.int64))],
               [("y", None)], opset=13, output_types={"y": (onnx.TensorProto.INT64, None)},
               expect_error="out of range")
    write_case("test_scatternd_rejects_out_of_range",
               [node("ScatterND", ["x", "i", "u"], ["y"])],
               [("x", data), ("i", np.array([[0, 4]], np.int64)), ("u", np.array([1], np.int64))],
               [("y", None)], opset=13, output_types={"y": (onnx.TensorProto.INT64, None)},
               expect_error="out of range")
    x = randn(4, 5, 6)
    write_case("test_slice_v1_attributes",
               [node("Slice", ["x"], ["y"], starts=[1, -3], ends=[1000, -1], axes=[0, 2])],
               [("x", x)], [("y", x[1:, :, -3:-1])], opset=6)
    write_case("test_slice_v10_int32", [node("Slice", ["x", "s", "e"], ["y"])],
               [("x", x), ("s", np.array([0, 1], np.int32)), ("e", np.array([2, 4], np.int32))],
               [("y", x[0:2, 1:4])], opset=10)
    write_case("test_slice_extreme_bounds_negative_steps",
               [node("Slice", ["x", "s", "e", "a", "t"], ["y"])],
               [("x", x), ("s", np.array([I64_MAX, I64_MIN, -1], np.int64)),
                ("e", np.array([I64_MIN, I64_MAX, I64_MIN], np.int64)),
                ("a", np.array([0, 1, 2], np.int64)), ("t", np.array([-1, 2, -3], np.int64))],
               [("y", x[::-1, 0::2, ::-3])], opset=13)
    write_case("test_slice_huge_step", [node("Slice", ["x", "s", "e", "a", "t"], ["y"])],
               [("x", x), ("s", np.array([-1], np.int64)), ("e", np.array([I64_MIN], np.int64)),
                ("a", np.array([-1], np.int64)), ("t", np.array([I64_MIN], np.int64))],
               [("y", x[:, :, -1:])], opset=13)
    write_case("test_slice_strings_constant_lists", [node("Slice", ["x", "s", "e"], ["y"])],
               [("x", strings(3, 4))], [("y", strings(3, 4)[1:3, 2:])], opset=13,
               initializers=[("s", np.array([1, 2], np.int64)),
                             ("e", np.array([3, 4], np.int64))])
    write_case("test_slice_rejects_zero_step", [node("Slice", ["x", "s", "e", "a", "t"], ["y"])],
               [("x", x), ("s", np.array([0], np.int64)), ("e", np.array([2], np.int64)),
                ("a", np.array([0], np.int64)), ("t", np.array([0], np.int64))], [("y", None)],
               opset=13, expect_error="step for axis 0 is 0")
    write_case("test_slice_rejects_repeated_axis", [node("Slice", ["x", "s", "e", "a"], ["y"])],
               [("x", x)], [("y", None)], opset=13,
               initializers=[("s", np.array([0, 0], np.int64)), ("e", np.array([1, 1], np.int64)),
                             ("a", np.array([1, -2], np.int64))], expect_error="repeated")
    c = np.array([True, False, True], bool)
    write_case("test_compress_v9_flattened", [node("Compress", ["x", "c"], ["y"])],
               [("x", d), ("c", c)], [("y", np.compress(c, d))], opset=9)
    write_case("test_compress_strings_axis1", [node("Compress", ["x", "c"], ["y"], axis=1)],
               [("x", strings(2, 4)), ("c", np.array([False, True, True], bool))],
               [("y", np.compress([False, True, True], strings(2, 4), axis=1))], opset=11)
    write_case("test_compress_rejects_long_condition",
               [node("Compress", ["x", "c"], ["y"], axis=0)],
               [("x", randn(2, 2)), ("c", np.array([False, True, True], bool))], [("y", None)],
               opset=11, expect_error="past axis size")
    oi = np.array([[0, -1], [7, 2]], np.int64)

    def onehot(indices, depth, values, axis):
        out = np.empty(indices.shape + (depth,), values.dtype)
        out[...] = values[0]
        for pos in np.ndindex(indices.shape):
            v = indices[pos]
            if -depth <= v < depth:
                out[pos + (v % depth,)] = values[1]
        return np.moveaxis(out, -1, axis)
    ov = np.array([b"off", b"on"], object)
    write_case("test_onehot_v9_strings_axis0", [node("OneHot", ["i", "d", "v"], ["y"], axis=0)],
               [("i", oi), ("d", np.array([3.0], np.float32)), ("v", ov)],
               [("y", onehot(oi, 3, ov, 0))], opset=9)
    write_case("test_onehot_float_indices", [node("OneHot", ["i", "d", "v"], ["y"])],
               [("i", np.array([1.7, -2.2, 5.0], np.float32)), ("d", np.array(4, np.int32)),
                ("v", np.array([0, 9], np.int8))],
               [("y", onehot(np.array([1, -2, 5]), 4, np.array([0, 9], np.int8), -1))], opset=11)
    nz = np.array([[0.0, -0.0, np.nan], [1.5, 0.0, -2.0]], np.float32)
    write_case("test_nonzero_float_signed_zero_nan", [node("NonZero", ["x"], ["y"])],
               [("x", nz)], [("y", np.array(np.nonzero(nz), np.int64))], opset=13)
    nb = RNG.random((2, 3, 4)) > 0.5
    write_case("test_nonzero_bool_3d", [node("NonZero", ["x"], ["y"])], [("x", nb)],
               [("y", np.array(np.nonzero(nb), np.int64))], opset=9)


# ---- layout.c ------------------------------------------------------------

def layout_cases():
    x = randn(2, 3, 4)
    write_case("test_transpose_v1_default_reverses", [node("Transpose", ["x"], ["y"])],
               [("x", x)], [("y", x.T)], opset=6)
    m = randn(67, 45)
    write_case("test_transpose_2d_blocked", [node("Transpose", ["x"], ["y"], perm=[1, 0])],
               [("x", m)], [("y", m.T.copy())], opset=13)
    nchw = randn(2, 33, 17, 9)
    write_case("test_transpose_nchw_to_nhwc", [node("Transpose", ["x"], ["y"], perm=[0, 2, 3, 1])],
               [("x", nchw)], [("y", nchw.transpose(0, 2, 3, 1).copy())], opset=13)
    nhwc = randn(2, 10, 11, 12).astype(np.float16)
    write_case("test_transpose_nhwc_to_nchw_float16",
               [node("Transpose", ["x"], ["y"], perm=[0, 3, 1, 2])],
               [("x", nhwc)], [("y", nhwc.transpose(0, 3, 1, 2).copy())], opset=13)
    keep = np.arange(2 * 3 * 4 * 5, dtype=np.int64).reshape(2, 3, 4, 5)
    write_case("test_transpose_keeps_inner_dim",
               [node("Transpose", ["x"], ["y"], perm=[1, 0, 2, 3])],
               [("x", keep)], [("y", keep.transpose(1, 0, 2, 3).copy())], opset=13)
    write_case("test_transpose_strings", [node("Transpose", ["x"], ["y"], perm=[1, 0])],
               [("x", strings(2, 3))], [("y", strings(2, 3).T.copy())], opset=13)
    write_case("test_transpose_rejects_bad_perm", [node("Transpose", ["x"], ["y"], perm=[0, 0, 1])],
               [("x", x)], [("y", None)], opset=13, expect_error="not a permutation")
    a, b = randn(2, 3), randn(2, 1)
    write_case("test_concat_v1_default_axis", [node("Concat", ["a", "b"], ["y"])],
               [("a", a), ("b", b)], [("y", np.concatenate([a, b], axis=1))], opset=3)
    write_case("test_concat_strings_negative_axis", [node("Concat", ["a", "b"], ["y"], axis=-2)],
               [("a", strings(2, 2)), ("b", strings(1, 2))],
               [("y", np.concatenate([strings(2, 2), strings(1, 2)], axis=0))], opset=13)
    write_case("test_concat_empty_input", [node("Concat", ["a", "b"], ["y"], axis=0)],
               [("a", np.zeros((0, 3), np.float32)), ("b", a.reshape(2, 3))],
               [("y", a.reshape(2, 3))], opset=13)
    write_case("test_concat_rejects_mismatched_dims", [node("Concat", ["a", "b"], ["y"], axis=0)],
               [("a", randn(2, 3)), ("b", randn(2, 4))], [("y", None)], opset=13,
               expect_error="dim")
    s = randn(2, 6)
    write_case("test_split_v2_uneven_attribute",
               [node("Split", ["x"], ["y0", "y1"], axis=1, split=[1, 5])],
               [("x", s)], [("y0", s[:, :1]), ("y1", s[:, 1:])], opset=6)
    write_case("test_split_v11_negative_axis_equal",
               [node("Split", ["x"], ["y0", "y1", "y2"], axis=-1)],
               [("x", s)], [("y0", s[:, 0:2]), ("y1", s[:, 2:4]), ("y2", s[:, 4:])], opset=11)
    write_case("test_split_v13_runtime_sizes", [node("Split", ["x", "p"], ["y0", "y1"], axis=1)],
               [("x", s), ("p", np.array([4, 2], np.int64))],
               [("y0", s[:, :4]), ("y1", s[:, 4:])], opset=13)
    write_case("test_split_rejects_unequal_parts",
               [node("Split", ["x"], ["y0", "y1", "y2", "y3"], axis=1)],
               [("x", s)], [("y0", None), ("y1", None), ("y2", None), ("y3", None)], opset=13,
               expect_error="equal parts")
    write_case("test_split_rejects_bad_sizes", [node("Split", ["x", "p"], ["y0", "y1"], axis=1)],
               [("x", s), ("p", np.array([4, 3], np.int64))], [("y0", None), ("y1", None)],
               opset=13, expect_error="add up to more")
    p = randn(1, 2, 3, 4)
    width = ((0, 0), (0, 0), (1, 2), (3, 1))
    pads = [0, 0, 1, 3, 0, 0, 2, 1]
    write_case("test_pad_v2_constant_value", [node("Pad", ["x"], ["y"], pads=pads, value=1.5)],
               [("x", p)], [("y", np.pad(p, width, constant_values=1.5))], opset=6)
    write_case("test_pad_v2_reflect", [node("Pad", ["x"], ["y"], pads=pads, mode="reflect")],
               [("x", p)], [("y", np.pad(p, width, mode="reflect"))], opset=6)
    write_case("test_pad_v1_paddings_edge",
               [node("Pad", ["x"], ["y"], paddings=pads, mode="edge")],
               [("x", p)], [("y", np.pad(p, width, mode="edge"))], opset=1)
    write_case("test_pad_reflect_wider_than_axis",
               [node("Pad", ["x", "p"], ["y"], mode="reflect")],
               [("x", p), ("p", np.array([0, 0, 5, 0, 0, 0, 0, 9], np.int64))],
               [("y", np.pad(p, ((0, 0), (0, 0), (5, 0), (0, 9)), mode="reflect"))], opset=13)
    crop = np.array([0, -1, 1, -2, 0, 0, -1, 2], np.int64)
    ref = np.pad(p, ((0, 0), (0, 0), (1, 0), (0, 2)))[:, 1:, :-1, 2:]
    write_case("test_pad_negative_pads_crop", [node("Pad", ["x", "p"], ["y"])],
               [("x", p), ("p", crop)], [("y", ref)], opset=11)
    pi = np.arange(6, dtype=np.int32).reshape(2, 3)
    write_case("test_pad_int32_constant_input", [node("Pad", ["x", "p", "v"], ["y"])],
               [("x", pi), ("p", np.array([1, 0, 0, 2], np.int64)), ("v", np.array(-7, np.int32))],
               [("y", np.pad(pi, ((1, 0), (0, 2)), constant_values=-7))], opset=11)
    write_case("test_pad_strings", [node("Pad", ["x", "p", "v"], ["y"])],
               [("x", strings(2, 2)), ("p", np.array([0, 1, 1, 0], np.int64)),
                ("v", np.array(b"pad", object))],
               [("y", np.pad(strings(2, 2), ((0, 1), (1, 0)), constant_values=b"pad"))], opset=13)
    write_case("test_pad_rejects_crop_below_zero", [node("Pad", ["x", "p"], ["y"])],
               [("x", p), ("p", np.array([0, 0, 0, -3, 0, 0, 0, -2], np.int64))], [("y", None)],
               opset=13, expect_error="below zero")
    write_case("test_pad_rejects_bad_mode", [node("Pad", ["x", "p"], ["y"], mode="wrap")],
               [("x", p), ("p", np.zeros(8, np.int64))], [("y", None)], opset=13,
               expect_error="mode 'wrap'")
    dts = randn(2, 8, 3, 2)

    def depth_to_space(x, b, mode):
        n, c, h, w = x.shape
        if mode == "DCR":
            t = x.reshape(n, b, b, c // (b * b), h, w).transpose(0, 3, 4, 1, 5, 2)
        else:
            t = x.reshape(n, c // (b * b), b, b, h, w).transpose(0, 1, 4, 2, 5, 3)
        return t.reshape(n, c // (b * b), h * b, w * b)
    write_case("test_depthtospace_v1_dcr", [node("DepthToSpace", ["x"], ["y"], blocksize=2)],
               [("x", dts)], [("y", depth_to_space(dts, 2, "DCR"))], opset=6)
    write_case("test_depthtospace_crd_strings",
               [node("DepthToSpace", ["x"], ["y"], blocksize=2, mode="CRD")],
               [("x", strings(1, 4, 2, 1))], [("y", depth_to_space(strings(1, 4, 2, 1), 2, "CRD"))],
               opset=13)
    std = randn(1, 2, 6, 4)
    n, ch, h, w = std.shape
    ref = std.reshape(n, ch, h // 2, 2, w // 2, 2).transpose(0, 3, 5, 1, 2, 4).reshape(
        n, ch * 4, h // 2, w // 2)
    write_case("test_spacetodepth_v1", [node("SpaceToDepth", ["x"], ["y"], blocksize=2)],
               [("x", std)], [("y", ref)], opset=6)
    write_case("test_spacetodepth_rejects_indivisible",
               [node("SpaceToDepth", ["x"], ["y"], blocksize=4)], [("x", std)], [("y", None)],
               opset=13, expect_error="is not a multiple of 4")
    tr = randn(2, 3, 5)
    write_case("test_trilu_lower_batched_k1", [node("Trilu", ["x", "k"], ["y"], upper=0)],
               [("x", tr), ("k", np.array(1, np.int64))], [("y", np.tril(tr, 1))], opset=14)
    write_case("test_trilu_upper_huge_negative_k", [node("Trilu", ["x", "k"], ["y"])],
               [("x", tr), ("k", np.array(I64_MIN, np.int64))], [("y", tr)], opset=14)
    write_case("test_trilu_lower_huge_k_strings", [node("Trilu", ["x", "k"], ["y"], upper=0)],
               [("x", strings(3, 2)), ("k", np.array(I64_MAX, np.int64))], [("y", strings(3, 2))],
               opset=14)
    rs = strings(3, 2, 2)
    lens = np.array([3, 1], np.int64)
    ref = rs.copy()
    for bi, ln in enumerate(lens):
        ref[:ln, bi] = rs[:ln, bi][::-1]
    write_case("test_reversesequence_strings", [node("ReverseSequence", ["x", "l"], ["y"])],
               [("x", rs), ("l", lens)], [("y", ref)], opset=10)
    write_case("test_reversesequence_rejects_long_length",
               [node("ReverseSequence", ["x", "l"], ["y"], batch_axis=0, time_axis=1)],
               [("x", randn(2, 3)), ("l", np.array([1, 4], np.int64))], [("y", None)], opset=10,
               expect_error="outside [0, 3]")


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    shape_cases()
    indexing_cases()
    layout_cases()
    print(f"wrote {len(os.listdir(OUT))} cases to {os.path.relpath(OUT, ROOT)}")


if __name__ == "__main__":
    main()
