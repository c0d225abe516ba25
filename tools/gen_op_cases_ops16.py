#!/usr/bin/python3
"""Writes tests/engine/ops/cases/ops16/: ONNX backend-layout cases for the
operators added for issue 16's last items — DFT-20 (and DFT/STFT lengths the
backend suite lacks), MelWeightMatrix, TfIdfVectorizer, RoiAlign, the random
generators, Scan-8, SequenceMap, the training optimisers and the
com.microsoft contrib operators — plus error cases.

Expected values come from ONNX Runtime (onnxruntime-node through
tools/ort_reference.py, telemetry off) or, where ONNX Runtime has no kernel
(the ai.onnx.preview.training optimisers) or cannot be fed (sequences), from
an independent numpy reference written here from the spec; never from inferd.
Random generators' cases are checked on dtype and shape (run_conformance.py's
rule for them). Error cases hold an `expect_error` file.

Run with Debian's python (onnx 1.12, numpy) after `npm ci`:
    /usr/bin/python3 tools/gen_op_cases_ops16.py
"""
import json
import os
import shutil
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import ort_reference  # noqa: E402

OUT = os.path.join(HERE, "..", "tests", "engine", "ops", "cases", "ops16")
rng = np.random.default_rng(16)
F = TensorProto.FLOAT
MS = "com.microsoft"
TRAINING = "ai.onnx.preview.training"


def onnx_type(dtype):
    return onnx.mapping.NP_TYPE_TO_TENSOR_TYPE[np.dtype(dtype)]


def value_info(name, value):
    if isinstance(value, list):
        elem = helper.make_tensor_type_proto(
            onnx_type(value[0].dtype), None)
        return helper.make_value_info(name, helper.make_sequence_type_proto(elem))
    return helper.make_tensor_value_info(name, onnx_type(value.dtype),
                                         value.shape)


def output_info(name, kind):
    if isinstance(kind, tuple) and kind[0] == "seq":
        return helper.make_value_info(
            name, helper.make_sequence_type_proto(helper.make_tensor_type_proto(kind[1], None)))
    return helper.make_tensor_value_info(name, kind, None)


def write_model(name, nodes, inputs, outputs, opsets, initializers=()):
    graph = helper.make_graph(
        nodes, name, [value_info(n, a) for n, a in inputs],
        [output_info(n, t) for n, t in outputs],
        [a if isinstance(a, onnx.TensorProto) else numpy_helper.from_array(a, n)
         for n, a in initializers])
    model = helper.make_model(graph, producer_name="gen_op_cases_ops16")
    del model.opset_import[:]
    for domain, version in opsets.items():
        model.opset_import.append(helper.make_opsetid(domain, version))
    model.ir_version = 10 if opsets.get("", 0) >= 18 else 8
    path = os.path.join(OUT, name)
    os.makedirs(path)
    onnx.save(model, os.path.join(path, "model.onnx"))
    return path


def save_value(path, name, value):
    proto = (numpy_helper.from_list(value, name) if isinstance(value, list)
             else numpy_helper.from_array(value, name))
    with open(path, "wb") as f:
        f.write(proto.SerializeToString())


def case(name, nodes, inputs, outputs, opsets, initializers=(), reference=None, atol=None):
    """Expected outputs: ONNX Runtime's, or `reference`'s (inputs -> outputs).
    atol: the absolute tolerance the case states (fixture.json), where ONNX
    Runtime's float32 arithmetic leaves rounding noise around exact zeros
    (FFT bins, tanh-approximated tails) that inferd, computing in double,
    does not have."""
    path = write_model(name, nodes, inputs, outputs, opsets, initializers)
    if atol is not None:
        with open(os.path.join(path, "fixture.json"), "w") as f:
            json.dump({"tolerance": {"rtol": 1e-3, "atol": atol}}, f)
    if reference:
        got = reference(dict(inputs))
    else:
        got, _ = ort_reference.run(os.path.join(path, "model.onnx"), dict(inputs))
    sets = os.path.join(path, "test_data_set_0")
    os.makedirs(sets)
    for i, (n, a) in enumerate(inputs):
        save_value(os.path.join(sets, "input_%d.pb" % i), n, a)
    for i, (n, _) in enumerate(outputs):
        save_value(os.path.join(sets, "output_%d.pb" % i), n, got[n])


def error_case(name, nodes, inputs, outputs, opsets, error, initializers=(), feed=True):
    path = write_model(name, nodes, inputs, outputs, opsets, initializers)
    with open(os.path.join(path, "expect_error"), "w") as f:
        f.write(error + "\n")
    if feed:
        sets = os.path.join(path, "test_data_set_0")
        os.makedirs(sets)
        for i, (n, a) in enumerate(inputs):
            save_value(os.path.join(sets, "input_%d.pb" % i), n, a)


def node(op, ins, outs, domain="", **attrs):
    return helper.make_node(op, ins, outs, domain=domain or None, **attrs)


def randn(*shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


def i64(*values):
    return np.array(values, np.int64)


# ---- signal: DFT-20, DFT-17 at Bluestein lengths, STFT, MelWeightMatrix --------

def signal_cases():
    real = randn(2, 12, 3, 1)
    cplx = randn(2, 12, 3, 2)
    for axis in (1, -3, 2, -2):
        case(f"dft20_axis_input_{axis}".replace("-", "m"),
             [node("DFT", ["x", "", "axis"], ["y"])], [("x", real)], [("y", F)], {"": 20},
             initializers=[("axis", np.array(axis, np.int64))], atol=1e-4)
    for n in (7, 12, 16, 30):
        case(f"dft20_complex_length_{n}",
             [node("DFT", ["x", "n", "axis"], ["y"])], [("x", cplx)], [("y", F)], {"": 20},
             initializers=[("n", np.array(n, np.int64)), ("axis", np.array(1, np.int64))], atol=1e-4)
    case("dft20_inverse_complex", [node("DFT", ["x", "", "axis"], ["y"], inverse=1)],
         [("x", cplx)], [("y", F)], {"": 20}, initializers=[("axis", np.array(1, np.int64))],
         atol=1e-4)
    case("dft20_onesided_real_length_11",
         [node("DFT", ["x", "n", "axis"], ["y"], onesided=1)], [("x", real)], [("y", F)],
         {"": 20}, initializers=[("n", np.array(11, np.int64)), ("axis", np.array(1, np.int64))],
         atol=1e-4)
    def numpy_fft(feeds):
        # ONNX Runtime sums length-97 DFTs directly in float32 (errors near
        # 4e-4 here); numpy's double FFT is the sharper reference.
        c = feeds["x"][..., 0].astype(np.float64) + 1j * feeds["x"][..., 1]
        y = np.fft.fft(c, axis=1)
        return {"y": np.stack([y.real, y.imag], -1).astype(np.float32)}
    case("dft17_bluestein_length_97", [node("DFT", ["x"], ["y"], axis=1)],
         [("x", randn(1, 97, 2))], [("y", F)], {"": 17}, reference=numpy_fft, atol=1e-5)
    case("dft17_double_onesided", [node("DFT", ["x"], ["y"], axis=1, onesided=1)],
         [("x", randn(3, 20, 1, dtype=np.float64))], [("y", TensorProto.DOUBLE)], {"": 17})
    signal = randn(2, 100, 1)
    case("stft17_window_length_12_step_5",
         [node("STFT", ["s", "step", "w"], ["y"])], [("s", signal)], [("y", F)], {"": 17},
         initializers=[("step", np.array(5, np.int64)),
                       ("w", np.hanning(12).astype(np.float32))], atol=1e-4)
    case("stft17_two_sided_frame_length_input",
         [node("STFT", ["s", "step", "", "len"], ["y"], onesided=0)], [("s", signal)],
         [("y", F)], {"": 17},
         initializers=[("step", np.array(9, np.int64)), ("len", np.array(16, np.int64))],
         atol=1e-4)
    case("melweightmatrix17_40_bins_512",
         [node("MelWeightMatrix", ["m", "n", "sr", "lo", "hi"], ["y"])], [], [("y", F)], {"": 17},
         initializers=[("m", np.array(40, np.int64)), ("n", np.array(512, np.int64)),
                       ("sr", np.array(16000, np.int64)), ("lo", np.array(20, np.float32)),
                       ("hi", np.array(8000, np.float32))])
    error_case("dft17_onesided_complex_refused", [node("DFT", ["x"], ["y"], onesided=1)],
               [("x", randn(1, 8, 2))], [("y", F)], {"": 17}, "onesided=1 needs a real input")
    error_case("dft20_axis_on_the_complex_axis",
               [node("DFT", ["x", "", "axis"], ["y"])], [("x", real)], [("y", F)], {"": 20},
               "axis -1 is out of range", initializers=[("axis", np.array(-1, np.int64))])
    error_case("stft17_frame_longer_than_signal",
               [node("STFT", ["s", "step", "", "len"], ["y"])], [("s", randn(1, 10, 1))],
               [("y", F)], {"": 17}, "frame length 16 must be in [1, 10]",
               initializers=[("step", np.array(2, np.int64)), ("len", np.array(16, np.int64))])


# ---- TfIdfVectorizer ----------------------------------------------------------

def tfidf_cases():
    words = np.array([["the", "cat", "sat", "on", "the", "mat"],
                      ["a", "cat", "and", "a", "dog", "sat"]], dtype=object)
    pool = ["cat", "sat", "the", "mat", "dog", "the", "cat", "a", "dog", "cat", "sat"]
    attrs = dict(min_gram_length=1, max_gram_length=2, max_skip_count=1,
                 ngram_counts=[0, 5], ngram_indexes=list(range(8)), pool_strings=pool)
    for mode in ("TF", "IDF", "TFIDF"):
        extra = {} if mode == "TF" else {"weights": [0.5, 1.5, 2.0, 0.25, 3.0, 1.0, 0.75, 2.5]}
        case(f"tfidfvectorizer9_strings_{mode.lower()}",
             [node("TfIdfVectorizer", ["x"], ["y"], mode=mode, **attrs, **extra)],
             [("x", words)], [("y", F)], {"": 9})
    ints = np.array([4, 1, 4, 2, 9, 4, 1, 7, 4, 2], np.int64)
    case("tfidfvectorizer9_int64_trigrams_skip2",
         [node("TfIdfVectorizer", ["x"], ["y"], mode="TF", min_gram_length=2, max_gram_length=3,
               max_skip_count=2, ngram_counts=[0, 2, 6], ngram_indexes=[5, 4, 3, 2, 0],
               pool_int64s=[4, 9, 4, 1, 4, 2, 4, 4, 4])],
         [("x", ints)], [("y", F)], {"": 9})
    error_case("tfidfvectorizer9_ngram_counts_split_a_bigram",
               [node("TfIdfVectorizer", ["x"], ["y"], mode="TF", min_gram_length=2,
                     max_gram_length=2, max_skip_count=0, ngram_counts=[0, 1],
                     ngram_indexes=[0, 1], pool_int64s=[1, 2, 3, 4])],
               [("x", ints)], [("y", F)], {"": 9}, "does not split the pool")
    error_case("tfidfvectorizer9_unknown_mode",
               [node("TfIdfVectorizer", ["x"], ["y"], mode="BM25", min_gram_length=1,
                     max_gram_length=1, ngram_counts=[0], ngram_indexes=[0], pool_int64s=[1])],
               [("x", ints)], [("y", F)], {"": 9}, "mode 'BM25' is not TF, IDF or TFIDF")


# ---- RoiAlign -----------------------------------------------------------------

def roialign_cases():
    x = randn(2, 3, 10, 12)
    rois = np.array([[0, 0, 9, 9], [1.5, 2.25, 7.5, 8.0], [3, 3, 3.4, 3.2], [-2, -1, 14, 11]],
                    np.float32)
    batch = i64(0, 1, 1, 0)
    for mode in ("avg", "max"):
        for ctm in ("half_pixel", "output_half_pixel"):
            case(f"roialign16_{mode}_{ctm}_adaptive",
                 [node("RoiAlign", ["x", "r", "b"], ["y"], mode=mode, output_height=3,
                       output_width=4, spatial_scale=0.9, coordinate_transformation_mode=ctm)],
                 [("x", x), ("r", rois), ("b", batch)], [("y", F)], {"": 16})
    case("roialign10_avg_sampling_2", [node("RoiAlign", ["x", "r", "b"], ["y"], output_height=2,
                                            output_width=2, sampling_ratio=2)],
         [("x", x), ("r", rois), ("b", batch)], [("y", F)], {"": 10})
    error_case("roialign16_batch_index_out_of_range",
               [node("RoiAlign", ["x", "r", "b"], ["y"])],
               [("x", x), ("r", rois), ("b", i64(0, 1, 2, 0))], [("y", F)], {"": 16},
               "batch_indices[2] = 2 is outside [0, 2)")


# ---- random generators (dtype and shape checked) -------------------------------

def random_cases():
    case("randomuniform1_seeded_shape", [node("RandomUniform", [], ["y"], shape=[3, 4], seed=2.0,
                                              low=-1.0, high=3.0)], [], [("y", F)], {"": 1})
    case("randomnormal1_double", [node("RandomNormal", [], ["y"], shape=[5], dtype=11)], [],
         [("y", TensorProto.DOUBLE)], {"": 1})
    x = randn(2, 3)
    case("randomuniformlike1_from_input", [node("RandomUniformLike", ["x"], ["y"])], [("x", x)],
         [("y", F)], {"": 1})
    case("randomnormallike1_dtype_attribute",
         [node("RandomNormalLike", ["x"], ["y"], dtype=11, seed=1.0)], [("x", x)],
         [("y", TensorProto.DOUBLE)], {"": 1})
    p = rng.uniform(0, 1, (4, 5)).astype(np.float32)
    case("bernoulli15_int32_output", [node("Bernoulli", ["p"], ["y"], dtype=6, seed=3.0)],
         [("p", p)], [("y", TensorProto.INT32)], {"": 15})
    case("multinomial7_samples", [node("Multinomial", ["x"], ["y"], sample_size=6, seed=4.0)],
         [("x", randn(3, 5))], [("y", TensorProto.INT32)], {"": 7})
    error_case("randomuniform1_needs_shape", [node("RandomUniform", [], ["y"])], [],
               [("y", F)], {"": 1}, "attribute 'shape' is required")
    error_case("bernoulli15_probability_above_one", [node("Bernoulli", ["p"], ["y"])],
               [("p", np.array([0.5, 1.5], np.float32))], [("y", F)], {"": 15},
               "probability 1.5 at element 1 is outside [0, 1]")
    error_case("multinomial7_float_output_refused",
               [node("Multinomial", ["x"], ["y"], dtype=1)], [("x", randn(2, 3))], [("y", F)],
               {"": 7}, "dtype float32 is not int32 or int64")


# ---- Scan-8, SequenceMap ------------------------------------------------------

def scan8_cases():
    body = helper.make_graph(
        [node("Add", ["s_in", "x_t"], ["s_out"]), node("Mul", ["s_out", "x_t"], ["y_t"])],
        "body", [helper.make_tensor_value_info("s_in", F, [2]),
                 helper.make_tensor_value_info("x_t", F, [2])],
        [helper.make_tensor_value_info("s_out", F, [2]),
         helper.make_tensor_value_info("y_t", F, [2])])
    init = randn(3, 2)
    xs = randn(3, 4, 2)
    lens = i64(4, 2, 0)

    def reference(feeds, reverse=False):
        state, x, lengths = feeds["init"], feeds["xs"], feeds.get("lens", i64(4, 4, 4))
        finals, ys = np.zeros_like(state), np.zeros_like(x)
        for b in range(x.shape[0]):
            s = state[b].copy()
            for t in range(lengths[b]):
                at = lengths[b] - 1 - t if reverse else t
                s = s + x[b, at]
                ys[b, t] = s * x[b, at]
            finals[b] = s
        return {"final": finals, "ys": ys}

    case("scan8_sequence_lens_zero_padded",
         [node("Scan", ["lens", "init", "xs"], ["final", "ys"], body=body, num_scan_inputs=1)],
         [("lens", lens), ("init", init), ("xs", xs)], [("final", F), ("ys", F)], {"": 8},
         reference=reference)
    case("scan8_reverse_direction_no_lens",
         [node("Scan", ["", "init", "xs"], ["final", "ys"], body=body, num_scan_inputs=1,
               directions=[1])],
         [("init", init), ("xs", xs)], [("final", F), ("ys", F)], {"": 8},
         reference=lambda f: reference(f, reverse=True))
    error_case("scan8_sequence_lens_too_long",
               [node("Scan", ["lens", "init", "xs"], ["final", "ys"], body=body,
                     num_scan_inputs=1)],
               [("lens", i64(4, 5, 0)), ("init", init), ("xs", xs)], [("final", F), ("ys", F)],
               {"": 8}, "sequence_lens[1] = 5 is outside [0, 4]")


def sequence_map_cases():
    body = helper.make_graph(
        [node("Mul", ["item", "w"], ["scaled"]), node("ReduceSum", ["scaled"], ["total"],
                                                      keepdims=0)],
        "body", [helper.make_tensor_value_info("item", F, None),
                 helper.make_tensor_value_info("w", F, None)],
        [helper.make_tensor_value_info("scaled", F, None),
         helper.make_tensor_value_info("total", F, None)])
    seq = [randn(3), randn(3), randn(3)]
    w = randn(3)
    case("sequencemap17_sequence_and_tensor_two_outputs",
         [node("SequenceMap", ["s", "w"], ["a", "b"], body=body)],
         [("s", seq), ("w", w)], [("a", ("seq", F)), ("b", ("seq", F))], {"": 17},
         reference=lambda f: {"a": [x * f["w"] for x in f["s"]],
                              "b": [np.array(np.sum(x * f["w"]), np.float32) for x in f["s"]]})
    error_case("sequencemap17_body_input_count_wrong",
               [node("SequenceMap", ["s"], ["a", "b"], body=body)], [("s", seq)],
               [("a", ("seq", F)), ("b", ("seq", F))], {"": 17},
               "body declares 2 inputs; it must take 1", feed=False)
    error_case("sequencemap17_sequences_of_different_lengths",
               [node("SequenceMap", ["s", "t"], ["a", "b"], body=body)],
               [("s", seq), ("t", seq[:2])], [("a", ("seq", F)), ("b", ("seq", F))], {"": 17},
               "input 1 is a sequence of 2 items; input_sequence has 3")


# ---- ai.onnx.preview.training (numpy references of the spec's formulas) --------

def training_cases():
    r, t = np.array(0.05, np.float32), np.array(3, np.int64)
    x, g, h = randn(4), randn(4), np.abs(randn(4))
    v = randn(4)
    opsets = {"": 17, TRAINING: 1}

    def adagrad(f):
        rate = f["r"] / (1 + f["t"] * 0.1)
        gr = 0.01 * f["x"] + f["g"]
        hn = f["h"] + gr * gr
        return {"xn": (f["x"] - rate * gr / (np.sqrt(hn) + 1e-3)).astype(np.float32),
                "hn": hn.astype(np.float32)}
    case("adagrad1_decay_and_norm", [node("Adagrad", ["r", "t", "x", "g", "h"], ["xn", "hn"],
                                          TRAINING, decay_factor=0.1, epsilon=1e-3,
                                          norm_coefficient=0.01)],
         [("r", r), ("t", t), ("x", x), ("g", g), ("h", h)], [("xn", F), ("hn", F)], opsets,
         reference=adagrad)

    def adam(f):
        gr = 0.02 * f["x"] + f["g"]
        vn = 0.8 * f["v"] + 0.2 * gr
        hn = 0.9 * f["h"] + 0.1 * gr * gr
        rate = f["r"] * np.sqrt(1 - 0.9 ** 3) / (1 - 0.8 ** 3)
        xn = (1 - 0.1) * (f["x"] - rate * vn / (np.sqrt(hn) + 1e-2))
        return {"xn": xn.astype(np.float32), "vn": vn.astype(np.float32),
                "hn": hn.astype(np.float32)}
    case("adam1_step_3_post_norm",
         [node("Adam", ["r", "t", "x", "g", "v", "h"], ["xn", "vn", "hn"], TRAINING, alpha=0.8,
               beta=0.9, epsilon=1e-2, norm_coefficient=0.02, norm_coefficient_post=0.1)],
         [("r", r), ("t", t), ("x", x), ("g", g), ("v", v), ("h", h)],
         [("xn", F), ("vn", F), ("hn", F)], opsets, reference=adam)
    error_case("momentum1_unknown_mode",
               [node("Momentum", ["r", "t", "x", "g", "v"], ["xn", "vn"], TRAINING, alpha=0.9,
                     beta=0.1, mode="heavy", norm_coefficient=0.0)],
               [("r", r), ("t", t), ("x", x), ("g", g), ("v", v)], [("xn", F), ("vn", F)],
               opsets, "mode 'heavy' is not 'standard' or 'nesterov'", feed=False)


# ---- com.microsoft -------------------------------------------------------------

def contrib_cases():
    opsets = {"": 17, MS: 1}
    x = randn(2, 3, 8) * 2
    bias = randn(8)
    case("ms_gelu", [node("Gelu", ["x"], ["y"], MS)], [("x", x)], [("y", F)], opsets)
    case("ms_biasgelu", [node("BiasGelu", ["x", "b"], ["y"], MS)], [("x", x), ("b", bias)],
         [("y", F)], opsets)
    case("ms_fastgelu_with_bias", [node("FastGelu", ["x", "b"], ["y"], MS)],
         [("x", x), ("b", bias)], [("y", F)], opsets, atol=1e-5)
    case("ms_fastgelu", [node("FastGelu", ["x"], ["y"], MS)], [("x", x)], [("y", F)], opsets,
         atol=1e-5)
    case("ms_quickgelu_alpha", [node("QuickGelu", ["x"], ["y"], MS, alpha=1.5)], [("x", x)],
         [("y", F)], opsets)
    gamma, beta = randn(8), randn(8)
    skip = randn(2, 3, 8)
    case("ms_skiplayernormalization_all_outputs",
         [node("SkipLayerNormalization", ["x", "s", "g", "be", "bi"], ["y", "", "", "sum"], MS,
               epsilon=1e-5)],
         [("x", x), ("s", skip), ("g", gamma), ("be", beta), ("bi", bias)],
         [("y", F), ("sum", F)], opsets)
    case("ms_skiplayernormalization_no_beta",
         [node("SkipLayerNormalization", ["x", "s", "g"], ["y"], MS)],
         [("x", x), ("s", skip), ("g", gamma)], [("y", F)], opsets)
    case("layernormalization1_ort_contrib_at_opset_13",
         [node("LayerNormalization", ["x", "g", "be"], ["y"], epsilon=1e-5)],
         [("x", x), ("g", gamma), ("be", beta)], [("y", F)], {"": 13})

    for qt, npt in (("uint8", np.uint8), ("int8", np.int8)):
        lo, hi = np.iinfo(npt).min, np.iinfo(npt).max
        a = rng.integers(lo, hi + 1, (2, 3, 4)).astype(npt)
        b = rng.integers(lo, hi + 1, (3, 4)).astype(npt)
        zp = lambda v: np.array(v, npt)  # noqa: E731
        sc = lambda v: np.array(v, np.float32)  # noqa: E731
        za, zb, zc = (zp(3), zp(-5 if qt == "int8" else 130), zp(10))
        for op in ("QLinearAdd", "QLinearMul"):
            case(f"ms_{op.lower()}_{qt}_broadcast",
                 [node(op, ["a", "sa", "za", "b", "sb", "zb", "sc", "zc"], ["c"], MS)],
                 [("a", a), ("b", b)], [("c", onnx_type(np.dtype(npt)))],
                 opsets, initializers=[("sa", sc(0.05)), ("za", za), ("sb", sc(0.02)),
                                       ("zb", zb), ("sc", sc(0.07 if op == "QLinearAdd" else 0.4)),
                                       ("zc", zc)])
        for op, extra in (("QLinearSigmoid", {}), ("QLinearLeakyRelu", {"alpha": 0.2})):
            case(f"ms_{op.lower()}_{qt}",
                 [node(op, ["x", "sx", "zx", "sy", "zy"], ["y"], MS, **extra)], [("x", a)],
                 [("y", onnx_type(np.dtype(npt)))], opsets,
                 initializers=[("sx", sc(0.06)), ("zx", za), ("sy", sc(0.01 if op == "QLinearSigmoid" else 0.05)),
                               ("zy", zp(lo if op == "QLinearSigmoid" else 0))])
        img = rng.integers(lo, hi + 1, (2, 3, 5, 4)).astype(npt)
        for last in (0, 1):
            case(f"ms_qlinearglobalaveragepool_{qt}_channels_last_{last}",
                 [node("QLinearGlobalAveragePool", ["x", "sx", "zx", "sy", "zy"], ["y"], MS,
                       channels_last=last)], [("x", img)],
                 [("y", onnx_type(np.dtype(npt)))], opsets,
                 initializers=[("sx", sc(0.1)), ("zx", za), ("sy", sc(0.08)), ("zy", zc)])
        case(f"ms_qlinearconcat_{qt}_requantized",
             [node("QLinearConcat", ["sy", "zy", "a", "sa", "za", "b", "sb", "zb", "a", "sy", "zy"],
                   ["y"], MS, axis=1)],
             [("a", a[:, :2]), ("b", a[:, 1:])],
             [("y", onnx_type(np.dtype(npt)))], opsets,
             initializers=[("sy", sc(0.05)), ("zy", zc), ("sa", sc(0.03)), ("za", za),
                           ("sb", sc(0.11)), ("zb", zb)])
        w = rng.integers(lo, hi + 1, (4, 5)).astype(npt)
        case(f"ms_matmulintegertofloat_{qt}_per_column",
             [node("MatMulIntegerToFloat", ["a", "w", "sa", "sw", "za", "zw", "bias"], ["y"], MS)],
             [("a", a)], [("y", F)], opsets,
             initializers=[("w", w), ("sa", sc(0.05)), ("sw", rng.uniform(0.01, 0.1, 5).astype(np.float32)),
                           ("za", za), ("zw", rng.integers(lo, hi + 1, 5).astype(npt)),
                           ("bias", randn(5))])
        case(f"ms_dynamicquantizematmul_{qt}_weight",
             [node("DynamicQuantizeMatMul", ["a", "w", "sw", "zw", "bias"], ["y"], MS)],
             [("a", randn(2, 3, 4))], [("y", F)], opsets,
             initializers=[("w", w), ("sw", sc(0.03)), ("zw", zp(0)), ("bias", randn(5))])
    u8 = rng.integers(0, 256, (2, 4)).astype(np.uint8)
    error_case("ms_qlinearadd_zero_scale_refused",
               [node("QLinearAdd", ["a", "sa", "za", "a", "sa", "za", "sz", "za"], ["c"], MS)],
               [("a", u8)], [("c", TensorProto.UINT8)], opsets,
               "C_scale is 0; a positive finite scale expected",
               initializers=[("sa", np.array(0.1, np.float32)), ("za", np.array(1, np.uint8)),
                             ("sz", np.array(0, np.float32))], feed=False)
    error_case("ms_qlinearmul_zero_point_type_mismatch",
               [node("QLinearMul", ["a", "sa", "zi", "a", "sa", "", "sa", ""], ["c"], MS)],
               [("a", u8)], [("c", TensorProto.UINT8)], opsets,
               "A_zero_point has dtype int8; it must match the quantized data's uint8",
               initializers=[("sa", np.array(0.1, np.float32)), ("zi", np.array(1, np.int8))],
               feed=False)
    error_case("ms_qlinearsigmoid_scale_zero_at_run_time",
               [node("QLinearSigmoid", ["a", "s", "", "s", ""], ["c"], MS)],
               [("a", u8), ("s", np.array(0, np.float32))], [("c", TensorProto.UINT8)], opsets,
               "X_scale is 0; a positive finite scale expected")
    error_case("ms_matmulintegertofloat_batched_weight_refused",
               [node("MatMulIntegerToFloat", ["a", "w", "s", "s"], ["y"], MS)],
               [("a", u8)], [("y", F)], opsets, "only a 2-D weight [K, N] is supported",
               initializers=[("w", rng.integers(0, 256, (2, 4, 3)).astype(np.uint8)),
                             ("s", np.array(0.1, np.float32))], feed=False)
    error_case("ms_skiplayernormalization_gamma_wrong_size",
               [node("SkipLayerNormalization", ["x", "s", "g"], ["y"], MS)],
               [("x", x), ("s", skip), ("g", randn(7))], [("y", F)], opsets,
               "gamma has 7 values; hidden size is 8")
    error_case("ms_attention_refused_by_name",
               [node("Attention", ["x", "w"], ["y"], MS, num_heads=2)],
               [("x", x), ("w", randn(8, 24))], [("y", F)], opsets,
               "Attention (com.microsoft opset 1)", feed=False)


# ---- GridSample-20 on 5-D volumes --------------------------------------------

def grid_sample_nd_cases():
    x = randn(2, 2, 3, 4, 5)
    grid = rng.uniform(-1.2, 1.2, (2, 2, 3, 4, 3)).astype(np.float32)
    for mode in ("nearest", "linear"):
        for padding in ("zeros", "border", "reflection"):
            for align in (0, 1):
                case(f"gridsample20_5d_{mode}_{padding}_align{align}",
                     [node("GridSample", ["x", "g"], ["y"], mode=mode, padding_mode=padding,
                           align_corners=align)], [("x", x), ("g", grid)], [("y", F)],
                     {"": 20}, atol=1e-5)
    x3 = randn(1, 2, 7)
    g3 = rng.uniform(-1.1, 1.1, (1, 5, 1)).astype(np.float32)

    def cubic_1d(feeds):
        # Keys' cubic convolution (a = -0.75) on one spatial axis, zeros
        # padding, align_corners 0: the N-cubic rule at N = 1.
        xs, gs = feeds["x"].astype(np.float64), feeds["g"].astype(np.float64)
        n = xs.shape[2]
        out = np.zeros((1, 2, 5))
        for i in range(5):
            pos = ((gs[0, i, 0] + 1) * n - 1) / 2
            base = int(np.floor(pos))
            t = pos - base
            for j in range(4):
                d = abs(t + 1 - j)
                a = -0.75
                w = ((a + 2) * d - (a + 3)) * d * d + 1 if d <= 1 else \
                    ((a * d - 5 * a) * d + 8 * a) * d - 4 * a
                at = base - 1 + j
                if 0 <= at < n:
                    out[0, :, i] += w * xs[0, :, at]
        return {"y": out.astype(np.float32)}
    case("gridsample20_3d_cubic_numpy_reference",
         [node("GridSample", ["x", "g"], ["y"], mode="cubic")], [("x", x3), ("g", g3)],
         [("y", F)], {"": 20}, reference=cubic_1d, atol=1e-5)
    error_case("gridsample20_grid_last_axis_wrong",
               [node("GridSample", ["x", "g"], ["y"])],
               [("x", x), ("g", rng.uniform(-1, 1, (2, 2, 3, 4, 2)).astype(np.float32))],
               [("y", F)], {"": 20}, "grid [N, spatial..., 3]")


# ---- Resize-18 antialias -----------------------------------------------------

def resize_antialias_cases():
    x = randn(1, 2, 13, 17)
    for mode in ("linear", "cubic"):
        for scales in ([1, 1, 0.5, 0.5], [1, 1, 0.3, 0.71], [1, 1, 1.5, 0.4]):
            tag = "_".join(str(v).replace(".", "p") for v in scales[2:])
            case(f"resize18_antialias_{mode}_scales_{tag}",
                 [node("Resize", ["x", "", "scales"], ["y"], mode=mode, antialias=1)],
                 [("x", x)], [("y", F)], {"": 18}, atol=1e-5,
                 initializers=[("scales", np.array(scales, np.float32))])
    case("resize18_antialias_cubic_exclude_outside_sizes_axes",
         [node("Resize", ["x", "", "", "sizes"], ["y"], mode="cubic", antialias=1,
               exclude_outside=1, axes=[3, 2], cubic_coeff_a=-0.5)],
         [("x", x)], [("y", F)], {"": 18}, atol=1e-5,
         initializers=[("sizes", np.array([5, 4], np.int64))])
    for ctm in ("pytorch_half_pixel", "asymmetric", "half_pixel_symmetric"):
        for mode in ("linear", "cubic"):
            case(f"resize19_antialias_{mode}_{ctm}",
                 [node("Resize", ["x", "", "scales"], ["y"], mode=mode, antialias=1,
                       coordinate_transformation_mode=ctm)],
                 [("x", x)], [("y", F)], {"": 19}, atol=1e-5,
                 initializers=[("scales", np.array([1, 1, 0.3, 0.71], np.float32))])
    error_case("resize18_antialias_align_corners_refused",
               [node("Resize", ["x", "", "scales"], ["y"], mode="linear", antialias=1,
                     coordinate_transformation_mode="align_corners")],
               [("x", x)], [("y", F)], {"": 18},
               "antialias with coordinate_transformation_mode 'align_corners' is not supported",
               initializers=[("scales", np.array([1, 1, 0.25, 0.6], np.float32))], feed=False)


# ---- float8 (19) and int4 (21) element types ---------------------------------
# onnx 1.12's numpy_helper knows neither type, so every case keeps them inside
# the graph (float in, float out) or in initializers written by hand.

FLOAT8 = {"e4m3fn": 17, "e4m3fnuz": 18, "e5m2": 19, "e5m2fnuz": 20}


def narrow_tensor(name, code, dims, int32_data):
    """A TensorProto of a type onnx 1.12's helpers refuse, by hand."""
    t = onnx.TensorProto()
    t.name, t.data_type = name, code
    t.dims.extend(dims)
    t.int32_data.extend(int32_data)
    return t


def narrow_type_cases():
    x = np.concatenate([randn(40) * 50, np.array(
        [0, -0.0, 448, 449, 464, 480, 500, -1e6, 57344, 61440, 1e-3, -2e-3, 3.5e-5, np.inf,
         -np.inf, np.nan, 240, 241, 248, 0.0625, 0.09375], np.float32)]).astype(np.float32)
    for name, code in FLOAT8.items():
        for saturate in (1, 0):
            case(f"cast19_float_to_float8{name}_saturate{saturate}_and_back",
                 [node("Cast", ["x"], ["q"], to=code, saturate=saturate),
                  node("Cast", ["q"], ["y"], to=TensorProto.FLOAT)],
                 [("x", x)], [("y", F)], {"": 19})
        case(f"quantizelinear19_float8{name}_roundtrip",
             [node("QuantizeLinear", ["x", "s", "z"], ["q"]),
              node("DequantizeLinear", ["q", "s", "z"], ["y"])],
             [("x", x[:40])], [("y", F)], {"": 19},
             initializers=[("s", np.array(0.5, np.float32)),
                           ("z", narrow_tensor("z", code, [], [0]))])
    for name, code in (("int4", 22), ("uint4", 21)):
        lo, hi = (-8, 7) if name == "int4" else (0, 15)
        values = rng.integers(lo, hi + 1, 15)
        packed = bytes(((int(values[i]) & 15) | ((int(values[i + 1]) & 15) << 4) if i + 1 < 15
                        else int(values[i]) & 15) for i in range(0, 15, 2))
        w = onnx.TensorProto()
        w.name, w.data_type, w.raw_data = "w", code, packed
        w.dims.extend([3, 5])
        # zero points in int32_data, packed two per entry as ONNX stores int4
        zp = [lo + 1, 0, hi - 1]
        zero = narrow_tensor("wz", code, [3], [(zp[0] & 15) | ((zp[1] & 15) << 4), zp[2] & 15])
        case(f"dequantizelinear21_{name}_weight_initializer_per_axis",
             [node("DequantizeLinear", ["w", "ws", "wz"], ["y"], axis=0)], [], [("y", F)],
             {"": 21}, initializers=[("ws", np.array([0.5, 0.25, 2.0], np.float32)),
                                     ("w", w), ("wz", zero)])
        case(f"quantizelinear21_{name}_blocked_roundtrip",
             [node("QuantizeLinear", ["x", "s"], ["q"], axis=1, block_size=2, output_dtype=code),
              node("DequantizeLinear", ["q", "s"], ["y"], axis=1, block_size=2)],
             [("x", randn(3, 6) * 4)], [("y", F)], {"": 21},
             initializers=[("s", np.array([[0.5, 1.0, 0.25]] * 3, np.float32))])
        # ONNX's reference clips then rounds half to even; ONNX Runtime 1.30
        # wraps modulo 16 instead, so the numpy reference of the spec decides.
        case(f"cast21_float_to_{name}_and_back",
             [node("Cast", ["x"], ["q"], to=code), node("Cast", ["q"], ["y"], to=TensorProto.FLOAT)],
             [("x", np.array([-9.7, -8.5, -7.5, -2.5, -0.4, 0.6, 1.5, 2.5, 6.9, 7.5, 15.2, 16.8,
                              100], np.float32))], [("y", F)], {"": 21},
             reference=lambda f, lo=lo, hi=hi: {
                 "y": np.rint(np.clip(f["x"], lo, hi)).astype(np.float32)})
    error_case("cast13_to_float8_refused_before_19",
               [node("Cast", ["x"], ["q"], to=17), node("Cast", ["q"], ["y"], to=1)],
               [("x", x)], [("y", F)], {"": 13}, "Cast-13 cannot cast to float8e4m3fn",
               feed=False)


# ---- ai.onnx.ml 4: LabelEncoder tensor attributes -------------------------------

def label_encoder_cases():
    ml = {"": 17, "ai.onnx.ml": 4}
    words = np.array(["a", "b", "zebra", "c", "b"], dtype=object)
    case("labelencoder4_string_to_int64_tensors",
         [node("LabelEncoder", ["x"], ["y"], "ai.onnx.ml",
               keys_tensor=numpy_helper.from_array(np.array(["a", "b", "c"], dtype=object)),
               values_tensor=numpy_helper.from_array(i64(10, 20, 30)),
               default_tensor=numpy_helper.from_array(i64(-7)))],
         [("x", words)], [("y", TensorProto.INT64)], ml)
    case("labelencoder4_int64_to_float_tensors",
         [node("LabelEncoder", ["x"], ["y"], "ai.onnx.ml",
               keys_tensor=numpy_helper.from_array(i64(1, 5, 9)),
               values_tensor=numpy_helper.from_array(np.array([0.5, 1.5, 2.5], np.float32)),
               default_tensor=numpy_helper.from_array(np.array([-1.0], np.float32)))],
         [("x", i64(5, 1, 3, 9))], [("y", F)], ml)
    case("labelencoder4_float_to_string_lists",
         [node("LabelEncoder", ["x"], ["y"], "ai.onnx.ml", keys_floats=[0.5, 1.5],
               values_strings=["half", "one and a half"], default_string="none")],
         [("x", np.array([1.5, 0.5, 2.0], np.float32))], [("y", TensorProto.STRING)], ml)
    error_case("labelencoder4_double_keys_refused",
               [node("LabelEncoder", ["x"], ["y"], "ai.onnx.ml",
                     keys_tensor=numpy_helper.from_array(np.array([1.0, 2.0])),
                     values_tensor=numpy_helper.from_array(i64(1, 2)))],
               [("x", np.array([1.0]))], [("y", TensorProto.INT64)], ml,
               "keys_tensor of type float64 is not supported", feed=False)


# ---- ai.onnx.ml 5: TreeEnsemble -------------------------------------------------

def tree_ensemble_cases():
    ml = {"": 17, "ai.onnx.ml": 5}
    x = randn(12, 3)
    # feature 0 feeds the membership node: integer categories, where the
    # spec's exact test and ONNX Runtime's integer truncation agree
    x[:, 0] = rng.integers(-2, 3, 12)
    x[2, 1] = np.nan
    x[5, 0] = 2.0
    # two trees over 7 nodes: tree 0 = nodes 0-3, tree 1 = nodes 4-6; leaves 0-7
    attrs = dict(
        nodes_featureids=[0, 1, 2, 0, 2, 1, 0],
        nodes_splits=numpy_helper.from_array(np.array([0.1, -0.3, 0.5, 2.0, 0.0, 0.7, -1.0],
                                                      np.float32)),
        nodes_modes=numpy_helper.from_array(np.array([0, 1, 2, 4, 3, 5, 6], np.uint8)),
        nodes_truenodeids=[1, 0, 2, 3, 5, 4, 6],
        nodes_trueleafs=[0, 1, 1, 1, 0, 1, 1],
        nodes_falsenodeids=[2, 1, 3, 4, 6, 5, 7],
        nodes_falseleafs=[0, 1, 0, 1, 0, 1, 1],
        nodes_missing_value_tracks_true=[0, 1, 0, 0, 1, 0, 0],
        membership_values=numpy_helper.from_array(np.array([2.0, -1.0, np.nan], np.float32)),
        tree_roots=[0, 4],
        leaf_targetids=[0, 1, 0, 1, 0, 1, 0, 1],
        leaf_weights=numpy_helper.from_array(np.array([1.0, -2.0, 0.5, 3.0, -1.5, 2.5, 4.0, -0.25],
                                                      np.float32)),
        n_targets=2)
    for aggregate in (0, 1, 2, 3):
        case(f"treeensemble5_aggregate_{aggregate}",
             [node("TreeEnsemble", ["x"], ["y"], "ai.onnx.ml", aggregate_function=aggregate,
                   **attrs)], [("x", x)], [("y", F)], ml)
    for transform in (1, 2, 3):
        case(f"treeensemble5_post_transform_{transform}",
             [node("TreeEnsemble", ["x"], ["y"], "ai.onnx.ml", post_transform=transform, **attrs)],
             [("x", x)], [("y", F)], ml, atol=1e-6)
    case("treeensemble5_double",
         [node("TreeEnsemble", ["x"], ["y"], "ai.onnx.ml", **dict(
             attrs, nodes_splits=numpy_helper.from_array(
                 np.array([0.1, -0.3, 0.5, 2.0, 0.0, 0.7, -1.0], np.float64)),
             leaf_weights=numpy_helper.from_array(
                 np.array([1.0, -2.0, 0.5, 3.0, -1.5, 2.5, 4.0, -0.25], np.float64)),
             membership_values=numpy_helper.from_array(np.array([2.0, -1.0, np.nan]))))],
         [("x", x.astype(np.float64))], [("y", TensorProto.DOUBLE)], ml)
    error_case("treeensemble5_leaf_target_out_of_range",
               [node("TreeEnsemble", ["x"], ["y"], "ai.onnx.ml", **dict(attrs, n_targets=1))],
               [("x", x)], [("y", F)], ml, "leaf_targetids[1] = 1 is outside [0, 1)", feed=False)
    error_case("treeensemble5_cycle_refused",
               [node("TreeEnsemble", ["x"], ["y"], "ai.onnx.ml", **dict(
                   attrs, nodes_truenodeids=[1, 0, 0, 3, 5, 4, 6],
                   nodes_trueleafs=[0, 1, 0, 1, 0, 1, 1]))],
               [("x", x)], [("y", F)], ml, "reaches node 0 twice", feed=False)


GROUPS = [tree_ensemble_cases, label_encoder_cases, narrow_type_cases, resize_antialias_cases, grid_sample_nd_cases, signal_cases, tfidf_cases, roialign_cases, random_cases, scan8_cases,
          sequence_map_cases, training_cases, contrib_cases]


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
