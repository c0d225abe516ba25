#!/usr/bin/python3
"""Writes the small hand-crafted seeds committed under fuzz/seeds/.

The ONNX backend test data (copied at run time by fuzz/seed_corpus.sh) covers
operators well but hardly touches the loader's own corners: Constant folding
in every variant, initializers shadowing graph inputs, nested graphs in
attributes, sequence and map values, external-data references, symbolic dims,
the ai.onnx.ml domain, and the typed (non-raw) TensorProto fields. These seeds
give the fuzzer a starting point in each.

Needs Debian's /usr/bin/python3 with python3-onnx and python3-numpy.
Usage: fuzz/make_seeds.py [OUT_DIR]   (default: fuzz/seeds next to this file)
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "seeds")


def model(nodes, inputs, outputs, initializers=(), opsets=(("", 13),), ir=7):
    graph = helper.make_graph(nodes, "seed", inputs, outputs, list(initializers))
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets])
    m.ir_version = ir
    return m


def write(kind, name, message):
    folder = os.path.join(OUT, kind)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(message.SerializeToString())


def tensor_vi(name, elem, shape):
    return helper.make_tensor_value_info(name, elem, shape)


def model_seeds():
    f = TensorProto.FLOAT
    write("model_load", "constants.onnx", model(
        [helper.make_node("Constant", [], ["c1"], value=numpy_helper.from_array(
            np.arange(6, dtype=np.float32).reshape(2, 3))),
         helper.make_node("Constant", [], ["c2"], value_floats=[1.0, 2.0, 3.0]),
         helper.make_node("Constant", [], ["c3"], value_ints=[2, 3]),
         helper.make_node("Constant", [], ["c4"], value_float=0.5),
         helper.make_node("Constant", [], ["c5"], value_string="s"),
         helper.make_node("Add", ["x", "c1"], ["a"]),
         helper.make_node("Mul", ["a", "c2"], ["b"]),
         helper.make_node("Reshape", ["b", "c3"], ["y"])],
        [tensor_vi("x", f, [2, 3])], [tensor_vi("y", f, [2, 3])]))

    w = numpy_helper.from_array(np.ones((3,), dtype=np.float32), "w")
    write("model_load", "input_with_initializer.onnx", model(
        [helper.make_node("Add", ["x", "w"], ["y"])],
        [tensor_vi("x", f, ["batch", 3]), tensor_vi("w", f, [3])],
        [tensor_vi("y", f, ["batch", 3])], [w]))

    typed = helper.make_tensor("t", TensorProto.INT64, [3], [1, -2, 3])
    halfs = helper.make_tensor("h", TensorProto.FLOAT16, [2], [15360, 16384])
    write("model_load", "typed_fields.onnx", model(
        [helper.make_node("Identity", ["t"], ["y"]), helper.make_node("Identity", ["h"], ["z"])],
        [], [tensor_vi("y", TensorProto.INT64, [3]), tensor_vi("z", TensorProto.FLOAT16, [2])],
        [typed, halfs]))

    then_g = helper.make_graph([helper.make_node("Identity", ["x"], ["t"])], "then", [],
                               [tensor_vi("t", f, [1])])
    else_g = helper.make_graph([helper.make_node("Neg", ["x"], ["e"])], "else", [],
                               [tensor_vi("e", f, [1])])
    write("model_load", "if_subgraph.onnx", model(
        [helper.make_node("If", ["c"], ["y"], then_branch=then_g, else_branch=else_g)],
        [tensor_vi("c", TensorProto.BOOL, []), tensor_vi("x", f, [1])],
        [tensor_vi("y", f, [1])]))

    write("model_load", "sequence.onnx", model(
        [helper.make_node("SequenceConstruct", ["x", "x"], ["s"]),
         helper.make_node("SequenceAt", ["s", "i"], ["y"])],
        [tensor_vi("x", f, [2]), tensor_vi("i", TensorProto.INT64, [])],
        [tensor_vi("y", f, [2])]))

    map_type = onnx.TypeProto()
    map_type.map_type.key_type = TensorProto.INT64
    map_type.map_type.value_type.CopyFrom(helper.make_tensor_type_proto(f, []))
    zipmap_out = helper.make_value_info("probs", helper.make_sequence_type_proto(map_type))
    linear = [helper.make_node("LinearClassifier", ["x"], ["label", "scores"],
                               domain="ai.onnx.ml", coefficients=[1.0, -1.0, 0.5, 0.5],
                               intercepts=[0.0, 0.1], classlabels_ints=[0, 1],
                               post_transform="SOFTMAX"),
              helper.make_node("ZipMap", ["scores"], ["probs"], domain="ai.onnx.ml",
                               classlabels_int64s=[0, 1])]
    outs = [tensor_vi("label", TensorProto.INT64, [1]), zipmap_out]
    write("model_load", "ml_linear_zipmap.onnx", model(
        linear, [tensor_vi("x", f, [1, 2])], outs, opsets=(("", 13), ("ai.onnx.ml", 1))))

    ext = TensorProto()
    ext.name = "w"
    ext.data_type = f
    ext.dims.extend([4])
    ext.data_location = TensorProto.EXTERNAL
    for k, v in (("location", "weights.bin"), ("offset", "0"), ("length", "16")):
        entry = ext.external_data.add()
        entry.key, entry.value = k, v
    write("model_load", "external_data.onnx", model(
        [helper.make_node("Add", ["x", "w"], ["y"])], [tensor_vi("x", f, [4])],
        [tensor_vi("y", f, [4])], [ext]))

    write("model_load", "unsupported_ops.onnx", model(
        [helper.make_node("NoSuchOp", ["x"], ["a"]),
         helper.make_node("Custom", ["a"], ["y"], domain="com.example")],
        [tensor_vi("x", f, [1])], [tensor_vi("y", f, [1])],
        opsets=(("", 13), ("com.example", 1))))

    write("model_load", "shapes_and_casts.onnx", model(
        [helper.make_node("Shape", ["x"], ["s"]),
         helper.make_node("ConstantOfShape", ["s"], ["z"],
                          value=numpy_helper.from_array(np.array([1], dtype=np.int32))),
         helper.make_node("Cast", ["z"], ["zf"], to=f),
         helper.make_node("Concat", ["x", "zf"], ["y"], axis=0)],
        [tensor_vi("x", f, [2, "n"])], [tensor_vi("y", f, [4, "n"])]))


def control_flow_and_opset21_seeds():
    """Loops with state and scan outputs, an If nested in a Loop body reading
    a value two graphs up, Scan, sequences in a loop, opset 18-21 operators
    and an IR 10 model: the loader's subgraph, capture and version paths."""
    f, b, i64 = TensorProto.FLOAT, TensorProto.BOOL, TensorProto.INT64
    inner_then = helper.make_graph([helper.make_node("Add", ["acc_in", "step"], ["a1"])], "t", [],
                                   [tensor_vi("a1", f, None)])
    inner_else = helper.make_graph([helper.make_node("Sub", ["acc_in", "step"], ["a2"])], "e", [],
                                   [tensor_vi("a2", f, None)])
    body = helper.make_graph(
        [helper.make_node("Cast", ["i"], ["i_f"], to=f),
         helper.make_node("Less", ["i_f", "step"], ["lt"]),
         helper.make_node("ReduceMin", ["lt"], ["first"], keepdims=0),
         helper.make_node("If", ["first"], ["acc_out"], then_branch=inner_then,
                          else_branch=inner_else),
         helper.make_node("Identity", ["cond_in"], ["cond_out"]),
         helper.make_node("Mul", ["acc_out", "i_f"], ["scan_out"])],
        "body", [tensor_vi("i", i64, []), tensor_vi("cond_in", b, []), tensor_vi("acc_in", f, None)],
        [tensor_vi("cond_out", b, []), tensor_vi("acc_out", f, None), tensor_vi("scan_out", f, None)])
    write("model_load", "loop_nested_if_outer_scope.onnx", model(
        [helper.make_node("Loop", ["m", "c", "acc0"], ["acc", "scanned"], body=body)],
        [tensor_vi("m", i64, []), tensor_vi("c", b, []), tensor_vi("acc0", f, [3]),
         tensor_vi("step", f, [3])], [tensor_vi("acc", f, [3]), tensor_vi("scanned", f, None)],
        opsets=(("", 20),), ir=10))

    scan_body = helper.make_graph(
        [helper.make_node("Add", ["s_in", "x_t"], ["s_out"]),
         helper.make_node("Identity", ["s_out"], ["y_t"])],
        "scan_body", [tensor_vi("s_in", f, [2]), tensor_vi("x_t", f, [2])],
        [tensor_vi("s_out", f, [2]), tensor_vi("y_t", f, [2])])
    write("model_load", "scan.onnx", model(
        [helper.make_node("Scan", ["s0", "xs"], ["s", "ys"], body=scan_body, num_scan_inputs=1,
                          scan_input_directions=[1], scan_output_axes=[1])],
        [tensor_vi("s0", f, [2]), tensor_vi("xs", f, [3, 2])],
        [tensor_vi("s", f, [2]), tensor_vi("ys", f, [2, 3])], opsets=(("", 19),), ir=9))

    seq_body = helper.make_graph(
        [helper.make_node("SequenceInsert", ["seq_in", "x"], ["seq_out"]),
         helper.make_node("Identity", ["cond_in"], ["cond_out"])],
        "seq_body", [tensor_vi("i", i64, []), tensor_vi("cond_in", b, []),
                     helper.make_tensor_sequence_value_info("seq_in", f, None)],
        [tensor_vi("cond_out", b, []), helper.make_tensor_sequence_value_info("seq_out", f, None)])
    write("model_load", "loop_sequence.onnx", model(
        [helper.make_node("SequenceEmpty", [], ["e"]),
         helper.make_node("Loop", ["m", "", "e"], ["s"], body=seq_body),
         helper.make_node("ConcatFromSequence", ["s"], ["y"], axis=0),
         helper.make_node("SplitToSequence", ["y"], ["parts"], axis=0),
         helper.make_node("SequenceErase", ["parts"], ["fewer"]),
         helper.make_node("SequenceLength", ["fewer"], ["n"])],
        [tensor_vi("m", i64, []), tensor_vi("x", f, [2])],
        [tensor_vi("y", f, None), tensor_vi("n", i64, [])], opsets=(("", 18),), ir=10))

    write("model_load", "opset18_21_ops.onnx", model(
        [helper.make_node("ReduceMean", ["x", "axes"], ["r"], keepdims=1),
         helper.make_node("Split", ["x"], ["s1", "s2"], axis=1, num_outputs=2),
         helper.make_node("Pad", ["s1", "pads", "", "pad_axes"], ["p"], mode="wrap"),
         helper.make_node("Mish", ["p"], ["m"]),
         helper.make_node("Gelu", ["s2"], ["g"], approximate="tanh"),
         helper.make_node("GroupNormalization", ["x4", "gs", "gb"], ["gn"], num_groups=2),
         helper.make_node("CenterCropPad", ["x", "shape"], ["c"]),
         helper.make_node("Resize", ["x4", "", "", "sizes"], ["rs"], mode="linear", axes=[2, 3],
                          keep_aspect_ratio_policy="not_larger"),
         helper.make_node("BitwiseXor", ["ia", "ib"], ["bx"])],
        [tensor_vi("x", f, [2, 4]), tensor_vi("x4", f, [1, 4, 3, 3]),
         tensor_vi("ia", TensorProto.INT32, [3]), tensor_vi("ib", TensorProto.INT32, [3])],
        [tensor_vi("r", f, None), tensor_vi("m", f, None), tensor_vi("g", f, None),
         tensor_vi("gn", f, None), tensor_vi("c", f, None), tensor_vi("rs", f, None),
         tensor_vi("s2", f, None), tensor_vi("bx", TensorProto.INT32, None)],
        [numpy_helper.from_array(np.array([1], np.int64), "axes"),
         numpy_helper.from_array(np.array([1, 2], np.int64), "pads"),
         numpy_helper.from_array(np.array([-1], np.int64), "pad_axes"),
         numpy_helper.from_array(np.ones(4, np.float32), "gs"),
         numpy_helper.from_array(np.zeros(4, np.float32), "gb"),
         numpy_helper.from_array(np.array([3, 3], np.int64), "shape"),
         numpy_helper.from_array(np.array([5, 4], np.int64), "sizes")],
        opsets=(("", 21),), ir=10))


def issue16_operator_seeds():
    """The operators added for issue 16's last items: random generators (also
    read by tests/engine/ops/test_random.c), signal transforms, TfIdf,
    RoiAlign, Scan-8, SequenceMap, the optimisers and com.microsoft ops."""
    f, i64 = TensorProto.FLOAT, TensorProto.INT64
    write("model_load", "random_generators.onnx", model(
        [helper.make_node("RandomUniform", [], ["u"], shape=[20000], low=-1.0, high=3.0, seed=7.0),
         helper.make_node("RandomNormal", [], ["n"], shape=[20000], mean=2.0, scale=0.5, seed=8.0),
         helper.make_node("RandomUniformLike", ["p"], ["free"]),
         helper.make_node("Bernoulli", ["p"], ["b"], seed=9.0),
         helper.make_node("Multinomial", ["logits"], ["m"], sample_size=20000, seed=10.0,
                          dtype=i64)],
        [tensor_vi("p", f, [20000]), tensor_vi("logits", f, [1, 3])],
        [tensor_vi("u", f, [20000]), tensor_vi("n", f, [20000]), tensor_vi("free", f, [20000]),
         tensor_vi("b", f, [20000]), tensor_vi("m", i64, [1, 20000])], opsets=(("", 15),), ir=8))
    write("model_load", "signal_text_detection.onnx", model(
        [helper.make_node("DFT", ["x", "", "axis"], ["spectrum"], onesided=1),
         helper.make_node("STFT", ["sig", "step", "win"], ["frames"]),
         helper.make_node("MelWeightMatrix", ["bins", "len", "sr", "lo", "hi"], ["mel"]),
         helper.make_node("TfIdfVectorizer", ["tokens"], ["tf"], mode="TFIDF", min_gram_length=1,
                          max_gram_length=2, max_skip_count=1, ngram_counts=[0, 2],
                          ngram_indexes=[0, 1, 2], pool_int64s=[3, 5, 3, 5],
                          weights=[1.0, 0.5, 2.0]),
         helper.make_node("RoiAlign", ["img", "rois", "bi"], ["pooled"], output_height=2,
                          output_width=2, mode="max")],
        [tensor_vi("x", f, [2, 12, 1]), tensor_vi("sig", f, [1, 64, 1]),
         tensor_vi("tokens", i64, [2, 6]), tensor_vi("img", f, [1, 2, 6, 6]),
         tensor_vi("rois", f, [2, 4]), tensor_vi("bi", i64, [2])],
        [tensor_vi("spectrum", f, None), tensor_vi("frames", f, None), tensor_vi("mel", f, None),
         tensor_vi("tf", f, None), tensor_vi("pooled", f, None)],
        [numpy_helper.from_array(np.array(1, np.int64), "axis"),
         numpy_helper.from_array(np.array(8, np.int64), "step"),
         numpy_helper.from_array(np.hanning(16).astype(np.float32), "win"),
         numpy_helper.from_array(np.array(8, np.int64), "bins"),
         numpy_helper.from_array(np.array(64, np.int64), "len"),
         numpy_helper.from_array(np.array(8000, np.int64), "sr"),
         numpy_helper.from_array(np.array(0, np.float32), "lo"),
         numpy_helper.from_array(np.array(4000, np.float32), "hi")],
        opsets=(("", 20),), ir=10))
    u8 = TensorProto.UINT8
    write("model_load", "contrib_microsoft.onnx", model(
        [helper.make_node("QLinearAdd", ["a", "s", "z", "a", "s", "z", "s", "z"], ["sum"],
                          domain="com.microsoft"),
         helper.make_node("QLinearSigmoid", ["sum", "s", "z", "s", "z"], ["sig"],
                          domain="com.microsoft"),
         helper.make_node("QLinearConcat", ["s", "z", "sig", "s", "z", "a", "s", "z"], ["cat"],
                          domain="com.microsoft", axis=1),
         helper.make_node("MatMulIntegerToFloat", ["a", "w", "s", "s", "z", "z"], ["mm"],
                          domain="com.microsoft"),
         helper.make_node("SkipLayerNormalization", ["mm", "mm", "g"], ["ln"],
                          domain="com.microsoft"),
         helper.make_node("FastGelu", ["ln", "g"], ["fg"], domain="com.microsoft"),
         helper.make_node("DynamicQuantizeMatMul", ["fg", "w2", "s"], ["dq"],
                          domain="com.microsoft")],
        [tensor_vi("a", u8, [1, 2, 4])],
        [tensor_vi("cat", u8, None), tensor_vi("dq", f, None)],
        [numpy_helper.from_array(np.array(0.05, np.float32), "s"),
         numpy_helper.from_array(np.array(128, np.uint8), "z"),
         numpy_helper.from_array(np.arange(12, dtype=np.uint8).reshape(4, 3), "w"),
         numpy_helper.from_array(np.ones(3, np.float32), "g"),
         numpy_helper.from_array(np.arange(6, dtype=np.uint8).reshape(3, 2), "w2")],
        opsets=(("", 17), ("com.microsoft", 1)), ir=8))
    # float8 and int4 (IR 9/10): a packed int4 weight, a float8 zero point in
    # int32_data and casts through both kinds
    w4 = onnx.TensorProto()
    w4.name, w4.data_type, w4.raw_data = "w4", 22, bytes([0x7f, 0x81, 0x0c])
    w4.dims.extend([5])
    z8 = onnx.TensorProto()
    z8.name, z8.data_type = "z8", 17
    z8.int32_data.extend([0])
    write("model_load", "float8_int4.onnx", model(
        [helper.make_node("DequantizeLinear", ["w4", "s"], ["w"]),
         helper.make_node("QuantizeLinear", ["x", "s", "z8"], ["q8"], saturate=0),
         helper.make_node("Cast", ["q8"], ["c4"], to=21),
         helper.make_node("Cast", ["c4"], ["y"], to=TensorProto.FLOAT)],
        [tensor_vi("x", f, [5])], [tensor_vi("w", f, [5]), tensor_vi("y", f, [5])],
        [numpy_helper.from_array(np.array(0.5, np.float32), "s"), w4, z8],
        opsets=(("", 21),), ir=10))


def value_seeds():
    write("value_decode", "tensor_raw.pb", numpy_helper.from_array(
        np.arange(6, dtype=np.float32).reshape(2, 3), "x"))
    write("value_decode", "tensor_typed_int64.pb",
          helper.make_tensor("x", TensorProto.INT64, [2], [7, -7]))
    write("value_decode", "tensor_strings.pb",
          helper.make_tensor("x", TensorProto.STRING, [2], [b"a", b"bc"]))
    write("value_decode", "tensor_complex.pb",
          helper.make_tensor("x", TensorProto.COMPLEX64, [1], [1 + 2j]))
    seq = onnx.SequenceProto()
    seq.name = "s"
    seq.elem_type = onnx.SequenceProto.TENSOR
    seq.tensor_values.extend([numpy_helper.from_array(np.ones(2, np.float32)),
                              numpy_helper.from_array(np.zeros(3, np.float32))])
    write("value_decode", "sequence.pb", seq)
    nested = onnx.SequenceProto()
    nested.elem_type = onnx.SequenceProto.SEQUENCE
    nested.sequence_values.extend([seq, seq])
    write("value_decode", "sequence_nested.pb", nested)
    for name, key_type, keys in (("map_int64.pb", TensorProto.INT64, [1, 2]),
                                 ("map_string.pb", TensorProto.STRING, [b"a", b"b"])):
        mp = onnx.MapProto()
        mp.key_type = key_type
        if key_type == TensorProto.STRING:
            mp.string_keys.extend(keys)
        else:
            mp.keys.extend(keys)
        mp.values.elem_type = onnx.SequenceProto.TENSOR
        mp.values.tensor_values.extend([helper.make_tensor("", TensorProto.FLOAT, [], [0.25]),
                                        helper.make_tensor("", TensorProto.FLOAT, [], [0.75])])
        write("value_decode", name, mp)
    maps = onnx.SequenceProto()
    maps.elem_type = onnx.SequenceProto.MAP
    maps.map_values.extend([mp])
    write("value_decode", "sequence_of_maps.pb", maps)


if __name__ == "__main__":
    model_seeds()
    control_flow_and_opset21_seeds()
    issue16_operator_seeds()
    value_seeds()
