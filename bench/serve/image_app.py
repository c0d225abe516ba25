#!/usr/bin/python3
"""The seeds' tutorial image server, rebuilt from Debian's packages as the
peer of `inferd serve` in the image benchmark (bench/serve/image_bench.sh):
FastAPI's POST /prediction takes a multipart upload `image`, PIL decodes
and resizes it (bilinear), numpy normalises it into NCHW float32 and
PyTorch runs the model (Debian has no onnxruntime) — the very network and
weights inferd serves as ONNX — and it answers the predicted class as
inferd's /prediction does: {"prediction": label, "index", "probability"}.

IMAGE_MODEL selects the model: digits28 (the digits CNN of
tools/gen_image_fixtures.py, gray 28x28 inverted, scale 1/255) or rgb224
(a small CNN on 224x224 RGB with ImageNet's mean/std, written here).

    /usr/bin/python3 bench/serve/image_app.py --make-models OUT DIGITS_FIXTURE_DIR
    IMAGE_MODEL=digits28 IMAGE_MODEL_DIR=OUT /usr/bin/python3 -m uvicorn --app-dir bench/serve \\
        --workers 2 --port 8001 image_app:app
--make-models writes OUT/repo/<model>/1/ for `inferd models import` (ONNX,
labels, preprocessing), the torch weights, and the two benchmark images
(digit28.png, photo224.jpg).
"""
import io
import json
import os
import sys

import numpy as np

MODEL_DIR = os.environ.get("IMAGE_MODEL_DIR", ".")
WHICH = os.environ.get("IMAGE_MODEL", "digits28")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools"))

SPECS = {
    "digits28": {"kind": "image", "color": "gray", "size": [28, 28], "invert": True, "scale": 1 / 255},
    "rgb224": {"kind": "image", "color": "rgb", "size": [224, 224], "scale": 1 / 255,
               "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
}


def rgb224_net():
    import torch.nn as nn
    return nn.Sequential(nn.Conv2d(3, 16, 7, stride=4, padding=3), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(32, 10), nn.Softmax(dim=1))


def digits_net():
    from fixtures import torch_models

    class Probabilities(torch_models.DigitsCNN28):
        def forward(self, x):  # the ONNX model's second output
            return super().forward(x)[1]
    return Probabilities()


def make_models(out, digits_dir):
    import onnx
    import torch
    from onnx import numpy_helper
    from PIL import Image
    labels = {str(i): f"class {i}" for i in range(10)}
    # digits: the fixture's ONNX as is, its weights for torch
    os.makedirs(os.path.join(out, "digits28"), exist_ok=True)
    model = onnx.load(os.path.join(digits_dir, "model.onnx"))
    state = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in model.graph.initializer}
    torch.save(state, os.path.join(out, "digits28.pt"))
    with open(os.path.join(digits_dir, "labels.json")) as f:
        json.dump(json.load(f), open(os.path.join(out, "digits28", "labels.json"), "w"))
    onnx.save(model, os.path.join(out, "digits28", "model.onnx"))
    # rgb224: a small CNN with fixed random weights, exported by torch
    torch.manual_seed(12)
    net = rgb224_net().eval()
    torch.save(net.state_dict(), os.path.join(out, "rgb224.pt"))
    os.makedirs(os.path.join(out, "rgb224"), exist_ok=True)
    torch.onnx.export(net, torch.zeros(1, 3, 224, 224), os.path.join(out, "rgb224", "model.onnx"),
                      input_names=["input"], output_names=["probabilities"], opset_version=13,
                      dynamic_axes={"input": {0: "batch"}, "probabilities": {0: "batch"}})
    json.dump(labels, open(os.path.join(out, "rgb224", "labels.json"), "w"))
    for name, spec in SPECS.items():
        json.dump({"input": spec}, open(os.path.join(out, name, "preprocessing.json"), "w"))
    # the images: a digit at 28x28 (PNG) and a 224x224 photo-like JPEG
    digit = Image.open(os.path.join(digits_dir, "digit_000.png")).convert("L").resize((28, 28), Image.BILINEAR)
    digit.save(os.path.join(out, "digit28.png"))
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:224, 0:224]
    photo = np.stack([128 + 100 * np.sin(x / 17.0), 128 + 100 * np.cos(y / 23.0), (x + y) % 256], axis=2)
    photo = np.clip(photo + rng.normal(0, 12, photo.shape), 0, 255).astype(np.uint8)
    Image.fromarray(photo, "RGB").save(os.path.join(out, "photo224.jpg"), quality=90)


if len(sys.argv) > 1 and sys.argv[1] == "--make-models":
    make_models(sys.argv[2], sys.argv[3])
    sys.exit(0)

import torch  # noqa: E402
from fastapi import FastAPI, File, UploadFile  # noqa: E402
from PIL import Image  # noqa: E402

torch.set_num_threads(1)
SPEC = SPECS[WHICH]
NET = digits_net() if WHICH == "digits28" else rgb224_net()
NET.load_state_dict(torch.load(os.path.join(MODEL_DIR, WHICH + ".pt")))
NET.eval()
with open(os.path.join(MODEL_DIR, WHICH, "labels.json")) as f:
    LABELS = json.load(f)
MEAN = np.array(SPEC.get("mean", [0.0]), dtype=np.float32).reshape(-1, 1, 1)
STD = np.array(SPEC.get("std", [1.0]), dtype=np.float32).reshape(-1, 1, 1)
app = FastAPI()


def preprocess(data):
    img = Image.open(io.BytesIO(data)).convert("L" if SPEC["color"] == "gray" else "RGB")
    h, w = SPEC["size"]
    img = img.resize((w, h), Image.BILINEAR)
    x = np.asarray(img, dtype=np.float32)
    if SPEC.get("invert"):
        x = 255.0 - x
    x = x * np.float32(SPEC["scale"])
    x = x[None] if x.ndim == 2 else x.transpose(2, 0, 1)
    return ((x - MEAN) / STD)[None].astype(np.float32)


@app.get("/health")
def health():
    return {"health": "ok"}


@app.post("/prediction")
def prediction(image: UploadFile = File(...)):
    x = preprocess(image.file.read())
    with torch.no_grad():
        p = NET(torch.from_numpy(x))[0].numpy()
    i = int(np.argmax(p))
    return {"prediction": LABELS.get(str(i), i), "index": i, "probability": float(p[i])}
