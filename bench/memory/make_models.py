#!/usr/bin/python3
"""Writes the models bench/memory/run.sh measures, into DIR:

  mlp_25mb      784-2048-2048-784-10 MLP, 25 MB of float weights (the issue's
                "25 MB model")
  resnet18      torchvision ResNet-18, random weights, 1x3x224x224
  mobilenet_v2  torchvision MobileNetV2, random weights, 1x3x224x224
  transformer   torch.nn.TransformerEncoder, 4 layers, d_model 256, 8 heads,
                sequence 128 (the issue's encoder)

exported with Debian's torch (opset 13). Usage: make_models.py DIR
"""
import os
import sys

import torch
import torchvision


def export(model, example, path):
    torch.onnx.export(model.eval(), example, path, opset_version=13, input_names=["x"],
                      output_names=["y"])


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    models = {
        "mlp_25mb": (torch.nn.Sequential(torch.nn.Linear(784, 2048), torch.nn.ReLU(),
                                         torch.nn.Linear(2048, 2048), torch.nn.ReLU(),
                                         torch.nn.Linear(2048, 784), torch.nn.ReLU(),
                                         torch.nn.Linear(784, 10)), torch.randn(1, 784)),
        "resnet18": (torchvision.models.resnet18(), torch.randn(1, 3, 224, 224)),
        "mobilenet_v2": (torchvision.models.mobilenet_v2(), torch.randn(1, 3, 224, 224)),
        "transformer": (torch.nn.TransformerEncoder(
            torch.nn.TransformerEncoderLayer(256, 8, 1024, batch_first=True), 4),
            torch.randn(1, 128, 256)),
    }
    for name, (model, example) in models.items():
        path = os.path.join(out, name + ".onnx")
        if not os.path.exists(path):
            export(model, example, path)
        print(path)


if __name__ == "__main__":
    main()
