#!/usr/bin/python3
"""Writes tests/engine/ops/cases/recurrent_threads/: RNN, GRU and LSTM cases
big enough (batch 8; hidden 72, 80, 144: at least 2^17 multiply-adds per
step) that inferd runs each step's chunks of hidden units over its thread
pool, with hidden sizes that leave a partial last chunk of 32 units, and
sequence_lens (including 0), both directions, peepholes, clip and initial
state. The backend suite's recurrent cases are too small to reach that path.
tests/CMakeLists.txt runs them at 1 and at 2 threads. Expected values come
from ONNX Runtime through tools/ort_reference.py, never from inferd.

Run with Debian's python (onnx 1.12, numpy) after `npm ci`:
    /usr/bin/python3 tools/gen_op_cases_recurrent_threads.py
"""
import json
import os
import shutil

import numpy as np

import gen_op_cases_opset18 as gen

OUT = os.path.join(gen.HERE, "..", "tests", "engine", "ops", "cases", "recurrent_threads")
F = gen.F


def recurrent_thread_cases():
    rng = np.random.default_rng(20261207)
    seq, batch, inp = 6, 8, 20
    lens = np.array([6, 5, 1, 6, 0, 3, 6, 2], np.int32)

    def randn(*shape, scale=1.0):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    x = randn(seq, batch, inp)
    for op, gates, hid in (("RNN", 1, 144), ("GRU", 3, 80), ("LSTM", 4, 72)):
        low = op.lower()
        dirs = 2
        # small weights keep the gates out of saturation, so the cases test
        # the arithmetic rather than the activations' flat tails
        w, r = randn(dirs, gates * hid, inp, scale=0.2), randn(dirs, gates * hid, hid, scale=0.1)
        b, h0 = randn(dirs, 2 * gates * hid, scale=0.3), randn(dirs, batch, hid, scale=0.5)
        ins = ["x", "w", "r", "b", "lens", "h0"]
        feeds = [("x", x), ("w", w), ("r", r), ("b", b), ("lens", lens), ("h0", h0)]
        outs = [("y", F), ("yh", F)]
        if op == "LSTM":
            ins += ["c0", "p"]
            feeds += [("c0", randn(dirs, batch, hid, scale=0.5)), ("p", randn(dirs, 3 * hid, scale=0.3))]
            outs.append(("yc", F))
        attrs = dict(hidden_size=hid, direction="bidirectional")
        if op == "GRU":
            attrs["linear_before_reset"] = 1
        gen.case(f"{low}_batch8_hidden{hid}_bidirectional_sequence_lens_initial_state" +
                 ("_peepholes" if op == "LSTM" else "_linear_before_reset" if op == "GRU" else ""),
                 [gen.node(op, ins, [n for n, _ in outs], **attrs)], feeds, outs, 18)
    # GRU without linear_before_reset: whole-batch products on the pool
    hid = 80
    w, r, b = randn(1, 3 * hid, inp, scale=0.2), randn(1, 3 * hid, hid, scale=0.1), randn(1, 6 * hid, scale=0.3)
    gen.case("gru_batch8_hidden80_reverse_sequence_lens",
             [gen.node("GRU", ["x", "w", "r", "b", "lens"], ["y", "yh"], hidden_size=hid,
                       direction="reverse")],
             [("x", x), ("w", w), ("r", r), ("b", b), ("lens", lens)], [("y", F), ("yh", F)], 18)
    # LSTM without peepholes (i, o and f in one call) and with clip; the
    # weights are initializers, so R is packed at load rather than per run
    hid = 72
    w, r, b = randn(1, 4 * hid, inp, scale=0.5), randn(1, 4 * hid, hid, scale=0.3), randn(1, 8 * hid, scale=0.3)
    for clip in (None, 0.7):
        attrs = dict(hidden_size=hid)
        if clip:
            attrs["clip"] = clip
        gen.case(f"lstm_batch8_hidden72_forward" + ("_clip" if clip else ""),
                 [gen.node("LSTM", ["x", "w", "r", "b"], ["y", "yh", "yc"], **attrs)],
                 [("x", x)], [("y", F), ("yh", F), ("yc", F)], 18,
                 initializers=[("w", w), ("r", r), ("b", b)])
    # Long enough that the projection of every step at once (seq x batch x 4H
    # floats) passes recurrent.c's XW_STEP_BYTES (512 KiB: here 553 KiB):
    # each step's chunks then multiply their X rows by W themselves. In both
    # layouts, reversed, with sequence_lens forward (rows share t), peepholes,
    # clip and activations other than the fused cell's.
    seq, batch, inp, hid = 40, 12, 16, 72
    long_lens = np.array([40, 39, 1, 40, 0, 17, 40, 2, 40, 33, 40, 8], np.int32)
    xl = randn(seq, batch, inp)
    for name, dirs, attrs, with_lens, layout in (
            ("forward_sequence_lens_peepholes_initial_state", 1, {}, True, 0),
            ("layout1_reverse_clip", 1, dict(direction="reverse", clip=0.9, layout=1), False, 1),
            ("bidirectional_hardsigmoid_relu", 2,
             dict(direction="bidirectional",
                  activations=["HardSigmoid", "Tanh", "Relu"] * 2,
                  activation_alpha=[0.25, 0.25], activation_beta=[0.5, 0.5]), False, 0)):
        w = randn(dirs, 4 * hid, inp, scale=0.4)
        r = randn(dirs, 4 * hid, hid, scale=0.2)
        b = randn(dirs, 8 * hid, scale=0.3)
        ins, feeds = ["x", "w", "r", "b"], [("x", xl.transpose(1, 0, 2).copy() if layout else xl)]
        if with_lens:
            ins += ["lens", "h0", "c0", "p"]
            feeds += [("lens", long_lens), ("h0", randn(dirs, batch, hid, scale=0.5)),
                      ("c0", randn(dirs, batch, hid, scale=0.5)), ("p", randn(dirs, 3 * hid, scale=0.3))]
        outs, inits = [("y", F), ("yh", F), ("yc", F)], [("w", w), ("r", r), ("b", b)]
        reference = None
        if layout:
            # ONNX Runtime refuses layout 1: its outputs are those of the
            # layout-0 twin of the case (X, Y, Y_h, Y_c with batch and
            # sequence/direction axes swapped)
            twin = dict(attrs, layout=0)
            gen.case("_twin", [gen.node("LSTM", ins, ["y", "yh", "yc"], hidden_size=hid, **twin)],
                     [("x", xl)], outs, 18, initializers=inits)
            twin_dir = os.path.join(OUT, "_twin")
            got, _ = gen.ort_reference.run(os.path.join(twin_dir, "model.onnx"), {"x": xl})
            shutil.rmtree(twin_dir)
            reference = lambda _inputs, got=got: {  # noqa: E731
                "y": got["y"].transpose(2, 0, 1, 3).copy(),
                "yh": got["yh"].transpose(1, 0, 2).copy(),
                "yc": got["yc"].transpose(1, 0, 2).copy()}
        gen.case(f"lstm_seq40_batch12_hidden72_step_input_{name}",
                 [gen.node("LSTM", ins, ["y", "yh", "yc"], hidden_size=hid, **attrs)],
                 feeds, outs, 18, initializers=inits, reference=reference)


def lstm_state_cases(prefix, configs, seed, lens_at=None, seq=7, inp=24):
    """LSTM cases with peepholes and initial state over `configs` of
    (batch, hidden, directions, attributes, layout); `lens_at` gives the
    batch whose case also takes sequence_lens (forward only)."""
    rng = np.random.default_rng(seed)

    def randn(*shape, scale=1.0):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    for batch, hid, dirs, attrs, layout in configs:
        w = randn(dirs, 4 * hid, inp, scale=0.3)
        r = randn(dirs, 4 * hid, hid, scale=0.15 if hid < 100 else 0.06)
        b = randn(dirs, 8 * hid, scale=0.3)
        x = randn(batch, seq, inp) if layout else randn(seq, batch, inp)
        state_dims = (batch, dirs, hid) if layout else (dirs, batch, hid)
        h0, c0 = randn(*state_dims, scale=0.5), randn(*state_dims, scale=0.5)
        p = randn(dirs, 3 * hid, scale=0.3)
        with_lens = lens_at == batch and not layout
        name = "%s_batch%d_hidden%d_%s%s%s_peepholes_initial_state" % (
            prefix, batch, hid, attrs.get("direction", "forward"),
            "_clip" if "clip" in attrs else "", "_sequence_lens" if with_lens else "")
        if layout:
            name += "_layout1"
        ins = ["x", "w", "r", "b", "lens" if with_lens else "", "h0", "c0", "p"]
        feeds = [("x", x)]
        if with_lens:
            feeds.append(("lens", np.resize(np.array([seq, 0, 3, seq, 1, seq, seq - 1, 2],
                                                     np.int32), batch)))
        feeds += [("h0", h0), ("c0", c0)]
        outs, inits = [("y", F), ("yh", F), ("yc", F)], [("w", w), ("r", r), ("b", b), ("p", p)]
        reference = None
        if layout:
            # ONNX Runtime refuses layout 1: the outputs of the layout-0 twin
            # with batch and sequence/direction axes swapped
            twin_feeds = [(n, a.transpose(1, 0, 2).copy()) for n, a in feeds]
            gen.case("_twin", [gen.node("LSTM", ins, ["y", "yh", "yc"], hidden_size=hid, **attrs)],
                     twin_feeds, outs, 18, initializers=inits)
            twin_dir = os.path.join(OUT, "_twin")
            got, _ = gen.ort_reference.run(os.path.join(twin_dir, "model.onnx"), dict(twin_feeds))
            shutil.rmtree(twin_dir)
            reference = lambda _inputs, got=got: {  # noqa: E731
                "y": got["y"].transpose(2, 0, 1, 3).copy(),
                "yh": got["yh"].transpose(1, 0, 2).copy(),
                "yc": got["yc"].transpose(1, 0, 2).copy()}
        gen.case(name, [gen.node("LSTM", ins, ["y", "yh", "yc"], hidden_size=hid,
                                 **dict(attrs, layout=layout))],
                 feeds, outs, 18, initializers=inits, reference=reference)


def fused_step_cases():
    """An LSTM of 1 to 3 batch rows with the default activations and a
    hidden size a multiple of 16 runs each step as one fused product and
    cell (kernels/lstm_cell.h's lstm_step_rows_f32), R read chunk by chunk
    in its packed layout: hidden 48 ends in a chunk of 16 units, hidden 272
    has two K panels of R (256 + 16 rows) and takes the pool at 2 threads
    for batch 1 (2^17 multiply-adds a step) instead. Peepholes, clip,
    initial state, both directions and layout 1."""
    lstm_state_cases("lstm_fused", (
        (1, 48, 1, dict(clip=1.5), 0),
        (2, 48, 2, dict(direction="bidirectional"), 0),
        (3, 48, 1, dict(direction="reverse"), 1),
        (1, 272, 1, {}, 0)), 20261206)


def lane_projection_cases():
    """At 2 threads a step of batch 8 and hidden 64 (2^17 multiply-adds)
    runs on the pool's lanes, and its projection fits in cache: each
    chunk's first step projects every step's X rows onto its units
    (recurrent.c's lane_xw), then the steps add H x R^T in place. The
    projection goes by blocks of 32 rows or more ahead of the steps (4 of
    these 7 steps, then the last 3), one product per step in layout 1 (rows
    of a step strided), one per block of steps in layout 0 (forward, and
    reverse from the sequence's end: the second direction at batch 9). Both
    layouts, reverse, and forward sequence_lens (including 0)."""
    lstm_state_cases("lstm_lanes", (
        (8, 64, 1, dict(direction="reverse"), 1),
        (8, 64, 1, {}, 0),
        (9, 64, 2, dict(direction="bidirectional"), 0)), 20261208, lens_at=8)


def batch_share_cases():
    """At 2 threads a batch of 16 rows or more is cut between the threads,
    each running every step of its own rows (recurrent.c's run_batch_share):
    batch 17 splits 8 / 9 rows (18 rows 9 / 9 for both directions, which
    take no sequence_lens here: the split needs every row of a step at the
    same t). Its projection fits in cache, so each share makes it up front,
    one product per step over its rows, strided in X: forward sequence_lens
    (including 0), reverse in layout 1, both directions, clip. With 34 rows and 28 steps a share's projection passes
    XW_STEP_BYTES and its steps multiply their own X rows instead (layout 1,
    activations other than the fused cell's)."""
    lstm_state_cases("lstm_shares", (
        (17, 72, 1, {}, 0),
        (17, 72, 1, dict(direction="reverse", clip=1.2), 1),
        (18, 40, 2, dict(direction="bidirectional"), 0)), 20261209, lens_at=17)
    rng = np.random.default_rng(20261210)
    seq, batch, inp, hid = 28, 34, 8, 72

    def randn(*shape, scale=1.0):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    x = randn(seq, batch, inp)
    w, r = randn(1, 4 * hid, inp, scale=0.4), randn(1, 4 * hid, hid, scale=0.2)
    b, p = randn(1, 8 * hid, scale=0.3), randn(1, 3 * hid, scale=0.3)
    attrs = dict(hidden_size=hid, activations=["HardSigmoid", "Tanh", "Relu"],
                 activation_alpha=[0.25], activation_beta=[0.5])
    ins, outs = ["x", "w", "r", "b", "", "", "", "p"], [("y", F), ("yh", F), ("yc", F)]
    inits = [("w", w), ("r", r), ("b", b), ("p", p)]
    # ONNX Runtime refuses layout 1: the layout-0 twin's outputs, transposed
    gen.case("_twin", [gen.node("LSTM", ins, ["y", "yh", "yc"], **attrs)], [("x", x)], outs, 18,
             initializers=inits)
    twin_dir = os.path.join(OUT, "_twin")
    got, _ = gen.ort_reference.run(os.path.join(twin_dir, "model.onnx"), {"x": x})
    shutil.rmtree(twin_dir)
    reference = lambda _inputs: {  # noqa: E731
        "y": got["y"].transpose(2, 0, 1, 3).copy(),
        "yh": got["yh"].transpose(1, 0, 2).copy(),
        "yc": got["yc"].transpose(1, 0, 2).copy()}
    gen.case("lstm_shares_seq28_batch34_hidden72_step_input_layout1_hardsigmoid_relu_peepholes",
             [gen.node("LSTM", ins, ["y", "yh", "yc"], layout=1, **attrs)],
             [("x", x.transpose(1, 0, 2).copy())], outs, 18, initializers=inits,
             reference=reference)


def write_tolerances():
    """Hidden states near 0 come from sums of terms near 1 that cancel (an RNN
    output of 2.5e-4 from a 144-term sum): a different but equally exact
    summation order (GEMM tiles, vectorised tanh) moves them by a few 1e-7,
    which the default atol of 1e-7 on a relative 1e-3 of a tiny value does
    not allow. The absolute bound is float32 rounding of the sum, not slack."""
    for case in sorted(os.listdir(OUT)):
        with open(os.path.join(OUT, case, "fixture.json"), "w") as f:
            json.dump({"tolerance": {"rtol": 1e-3, "atol": 2e-6}}, f)


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    gen.OUT = OUT
    recurrent_thread_cases()
    fused_step_cases()
    lane_projection_cases()
    batch_share_cases()
    write_tolerances()
    print("wrote %d cases to %s" % (len(os.listdir(OUT)), os.path.relpath(OUT)))


if __name__ == "__main__":
    main()
