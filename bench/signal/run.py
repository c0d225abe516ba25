#!/usr/bin/python3
"""bench/signal/run.py — DFT and STFT on inferd's FFT (kernels/fft.c: radix-2,
Bluestein for other lengths) against ONNX Runtime, side by side in one run.

Models (written to BUILD_DIR/signal-bench, float32, batch 1, 1 thread):
  dft_4096   a length-4096 complex DFT (power of two: radix-2)
  dft_4099   a length-4099 complex DFT (a prime: Bluestein on 16384 points)
  stft_400   one second of 16 kHz audio framed as Whisper does (400-sample
             Hann window, hop 160, one-sided): 98 length-400 transforms
For each model, bench/bench_inferd and bench/bench_ort.js run alternately
(which goes first swaps every repeat) on identical input bytes; each prints
its median; the table shows the median over repeats, and the load average
before and after. One command:

    /usr/bin/python3 bench/signal/run.py [--repeats 3] [--min-time 0.5]

Needs a Release build in BUILD_DIR (default build) with bench_inferd, and
node_modules/onnxruntime-node (npm ci). ORT_DISABLE_TELEMETRY=1 is set for
every node process.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


def write_models(out):
    os.makedirs(out, exist_ok=True)
    models = {}

    def save(name, nodes, inputs, initializers=()):
        graph = helper.make_graph(nodes, name, inputs,
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                                  list(initializers))
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        path = os.path.join(out, name + ".onnx")
        onnx.save(model, path)
        models[name] = path

    for n in (4096, 4099):
        save(f"dft_{n}", [helper.make_node("DFT", ["x"], ["y"], axis=1)],
             [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, n, 2])])
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(400) / 400)).astype(np.float32)
    save("stft_400", [helper.make_node("STFT", ["x", "step", "w"], ["y"])],
         [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16000, 1])],
         [numpy_helper.from_array(np.array(160, np.int64), "step"),
          numpy_helper.from_array(window, "w")])
    shapes = {"dft_4096": "x=4096,2", "dft_4099": "x=4099,2", "stft_400": "x=16000,1"}
    return models, shapes


def run(cmd):
    env = dict(os.environ, ORT_DISABLE_TELEMETRY="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    line = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else "{}"
    result = json.loads(line)
    if result.get("status") not in (None, "ok"):
        sys.exit(f"{cmd[0]}: {result}")
    return result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--min-time", default="0.5")
    args = parser.parse_args()
    build = os.environ.get("BUILD_DIR", os.path.join(ROOT, "build"))
    bench_inferd = os.path.join(build, "bench", "bench_inferd")
    models, shapes = write_models(os.path.join(build, "signal-bench"))
    load_before = os.getloadavg()
    rows = []
    for name, path in models.items():
        common = [path, "--shape", shapes[name], "--threads", "1", "--min-time", args.min_time]
        times = {"inferd": [], "onnxruntime": []}
        keys = None
        for r in range(args.repeats):
            order = [("inferd", [bench_inferd]), ("onnxruntime",
                     ["node", os.path.join(ROOT, "bench", "bench_ort.js")])]
            if r % 2:
                order.reverse()
            for engine, prefix in order:
                result = run(prefix + common)
                keys = keys or [k for k in result if "median" in k]
                times[engine].append(result)
        field = next(k for k in keys if k.startswith("median"))
        med = {e: statistics.median(r[field] for r in times[e]) for e in times}
        rows.append((name, med["inferd"], med["onnxruntime"], field))
    load_after = os.getloadavg()
    print(f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after; "
          f"{args.repeats} repeats, min-time {args.min_time} s, 1 thread, batch 1\n")
    print(f"| model | inferd ({rows[0][3]}) | ONNX Runtime | ORT / inferd |")
    print("|---|---:|---:|---:|")
    for name, a, b, _ in rows:
        print(f"| {name} | {a:.1f} | {b:.1f} | {b / a:.2f}× |")


if __name__ == "__main__":
    main()
