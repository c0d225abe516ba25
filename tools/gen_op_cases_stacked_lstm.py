#!/usr/bin/python3
"""Writes tests/engine/ops/cases/stacked_lstm/: two LSTM layers stacked as
torch.onnx writes nn.LSTM(num_layers=2), LSTM -> Squeeze(axis 1) -> LSTM,
which inferd's optimiser turns into one StackedLSTM node
(src/engine/optimize/fuse_stacked_lstm.c) that runs the two layers as a
pipeline at 2 threads (batches 2-3 and 8-13). Odd batches and sequence
lengths, different hidden sizes per layer, initial states given (as inputs)
or not, peepholes, clip, bias or none; a stack whose lower layer's Y_h is
read too (not fused); batches of 5 and 20 (fused, but run layer by layer:
the lanes, and each layer's rows split over the threads).
tests/CMakeLists.txt runs them at 1, 2, 3 and 8 threads, with the optimiser
on and off, and graph_opt_compare checks that the fusion happened.
Expected values come from ONNX Runtime through tools/ort_reference.py.

Run with Debian's python (onnx 1.12, numpy) after `npm ci`:
    /usr/bin/python3 tools/gen_op_cases_stacked_lstm.py
"""
import json
import os
import shutil

import numpy as np

import gen_op_cases_opset18 as gen

OUT = os.path.join(gen.HERE, "..", "tests", "engine", "ops", "cases", "stacked_lstm")
F = gen.F


def stacked_cases():
    rng = np.random.default_rng(20261208)

    def randn(*shape, scale=1.0):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    # name, seq, batch, input, lower hidden, upper hidden, initial states,
    # peepholes, clip, bias, lower Y_h read too
    configs = [
        ("batch11_seq9_hidden96_128_initial_state", 9, 11, 20, 96, 128, True, False, None, True,
         False),
        ("batch9_seq7_hidden64_64_peepholes_clip", 7, 9, 16, 64, 64, False, True, 0.8, True, False),
        ("batch13_seq6_hidden128_96_no_bias_initial_state_peepholes", 6, 13, 24, 128, 96, True,
         True, None, False, False),
        ("batch5_seq6_hidden64_96_initial_state", 6, 5, 16, 64, 96, True, False, None, True,
         False),
        ("batch3_seq5_hidden128_128", 5, 3, 12, 128, 128, False, False, None, True, False),
        ("batch8_seq32_input64_hidden128_128", 32, 8, 64, 128, 128, False, False, None, True,
         False),
        ("batch20_seq5_hidden64_64_initial_state", 5, 20, 16, 64, 64, True, False, None, True,
         False),
        ("batch8_seq5_hidden96_96_lower_state_read", 5, 8, 16, 96, 96, False, False, None, True,
         True),
    ]
    for name, seq, batch, inp, h1, h2, states, peep, clip, bias, lower_read in configs:
        feeds = [("x", randn(seq, batch, inp))]
        inits = [("axes", np.array([1], np.int64))]
        nodes = []
        for layer, (k, hid) in enumerate(((inp, h1), (h1, h2))):
            tag = str(layer + 1)
            inits += [("w" + tag, randn(1, 4 * hid, k, scale=0.4 / np.sqrt(k / 16))),
                      ("r" + tag, randn(1, 4 * hid, hid, scale=0.3 / np.sqrt(hid / 16)))]
            ins = ["x" if layer == 0 else "x2", "w" + tag, "r" + tag]
            ins.append("b" + tag if bias else "")
            if bias:
                inits.append(("b" + tag, randn(1, 8 * hid, scale=0.3)))
            ins.append("")  # sequence_lens
            if states:
                feeds += [("h0_" + tag, randn(1, batch, hid, scale=0.5)),
                          ("c0_" + tag, randn(1, batch, hid, scale=0.5))]
                ins += ["h0_" + tag, "c0_" + tag]
            else:
                ins += ["", ""]
            if peep:
                inits.append(("p" + tag, randn(1, 3 * hid, scale=0.3)))
                ins.append("p" + tag)
            while ins and ins[-1] == "":
                ins.pop()
            attrs = dict(hidden_size=hid)
            if clip:
                attrs["clip"] = clip
            outs = ["y1", "yh1"] if layer == 0 else ["y", "yh", "yc"]
            if layer == 0 and not lower_read:
                outs = ["y1"]
            nodes.append(gen.node("LSTM", ins, outs, **attrs))
            if layer == 0:
                nodes.append(gen.node("Squeeze", ["y1", "axes"], ["x2"]))
        outputs = [("y", F), ("yh", F), ("yc", F)]
        if lower_read:
            outputs.append(("yh1", F))
        gen.case("stacked_lstm_" + name, nodes, feeds, outputs, 18, initializers=inits)


def write_tolerances():
    """As recurrent_threads/: float32 rounding of sums that cancel near 0,
    in another equally exact order, plus the fused cell's few ulp."""
    for case in sorted(os.listdir(OUT)):
        with open(os.path.join(OUT, case, "fixture.json"), "w") as f:
            json.dump({"tolerance": {"rtol": 1e-3, "atol": 2e-6}}, f)


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    gen.OUT = OUT
    stacked_cases()
    write_tolerances()
    print("wrote %d cases to %s" % (len(os.listdir(OUT)), os.path.relpath(OUT)))


if __name__ == "__main__":
    main()
