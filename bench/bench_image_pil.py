#!/usr/bin/python3
"""The same work as bench_image.c done the way the tutorial's FastAPI app
does it: PIL decodes and resizes (bilinear), numpy normalises and lays out
NCHW float32. Prints median, p10 and p90 microseconds per image, in the
format of bench_image, so the two can be run side by side:
  build/bench/bench_image IMG SPEC ROUNDS PER_ROUND
  /usr/bin/python3 bench/bench_image_pil.py IMG gray|rgb H W [--invert] [--imagenet] ROUNDS PER_ROUND
(PIL's BILINEAR antialiases when it downscales, so on a downscale it does
more work than inferd's pixel-centre bilinear; at 28x28 and 224x224 from
the same size it is the same arithmetic.)"""
import io
import sys
import time

import numpy as np
from PIL import Image

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32).reshape(3, 1, 1)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32).reshape(3, 1, 1)


def prepare(data, mode, height, width, invert, imagenet):
    img = Image.open(io.BytesIO(data)).convert("L" if mode == "gray" else "RGB")
    img = img.resize((width, height), Image.BILINEAR)
    x = np.asarray(img, dtype=np.float32)
    if invert:
        x = 255.0 - x
    x = x / 255.0
    x = x[None] if x.ndim == 2 else x.transpose(2, 0, 1)
    if imagenet:
        x = (x - MEAN) / STD
    return np.ascontiguousarray(x[None])


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    invert, imagenet = "--invert" in sys.argv, "--imagenet" in sys.argv
    path, mode, height, width = args[0], args[1], int(args[2]), int(args[3])
    rounds = int(args[4]) if len(args) > 4 else 31
    per_round = int(args[5]) if len(args) > 5 else 200
    with open(path, "rb") as f:
        data = f.read()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(per_round):
            prepare(data, mode, height, width, invert, imagenet)
        times.append((time.perf_counter() - start) / per_round * 1e6)
    times.sort()
    print("%s (%d bytes) PIL+numpy: median %.1f us, p10 %.1f us, p90 %.1f us per image (%d rounds of %d)" % (
        path, len(data), times[rounds // 2], times[rounds // 10], times[rounds * 9 // 10], rounds, per_round))


if __name__ == "__main__":
    main()
