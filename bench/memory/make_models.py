#!/usr/bin/python3
"""Writes the models bench/memory/run.sh measures, into DIR:

  mlp_25mb      784-2048-2048-784-10 MLP, 25 MB of float weights (the issue's
                "25 MB model")
  resnet18      torchvision ResNet-18, random weights, 1x3x224x224
  mobilenet_v2  torchvision MobileNetV2, random weights, 1x3x224x224
  transformer   torch.nn.TransformerEncoder, 4 layers, d_model 256, 8 heads,
                sequence 128 (the issue's encoder)
  add_table     y = x + W, W a 2048x2048 float32 initializer (16 MiB) that no
                operator packs, its raw_data aligned to 64 bytes in the file
                (align_raw_data): the loader reads it in place from the mapped
                file, so processes loading the file share its pages

exported with Debian's torch (opset 13). Usage: make_models.py DIR
"""
import os
import sys

import onnx
import torch
import torchvision


def export(model, example, path):
    torch.onnx.export(model.eval(), example, path, opset_version=13, input_names=["x"],
                      output_names=["y"])


class AddTable(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(2048, 2048))

    def forward(self, x):
        return x + self.w


def raw_data_offsets(data):
    """Offsets in a serialized ModelProto of each graph initializer's
    raw_data bytes (walking the protobuf wire format)."""
    def varint(i):
        value, shift = 0, 0
        while True:
            byte = data[i]
            i += 1
            value |= (byte & 0x7f) << shift
            shift += 7
            if not byte & 0x80:
                return value, i

    def fields(start, end):
        i = start
        while i < end:
            key, i = varint(i)
            wire = key & 7
            if wire == 0:
                _, i = varint(i)
            elif wire == 1:
                i += 8
            elif wire == 5:
                i += 4
            elif wire == 2:
                length, i = varint(i)
                yield key >> 3, i, i + length
                i += length

    offsets = []
    for field, start, end in fields(0, len(data)):
        if field == 7:  # ModelProto.graph
            for gfield, gstart, gend in fields(start, end):
                if gfield == 5:  # GraphProto.initializer
                    offsets += [s for f, s, _ in fields(gstart, gend) if f == 9]
    return offsets


def align_raw_data(path, alignment=64):
    """Pad the model's doc_string (written before the graph) until the first
    initializer's raw_data starts on `alignment` bytes in the file."""
    model = onnx.load(path)
    for pad in range(4 * alignment):
        model.doc_string = " " * pad
        data = model.SerializeToString()
        offsets = raw_data_offsets(data)
        if offsets and offsets[0] % alignment == 0:
            with open(path, "wb") as f:
                f.write(data)
            return
    raise SystemExit("%s: could not align raw_data" % path)


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
        "add_table": (AddTable(), torch.randn(2048, 2048)),
    }
    for name, (model, example) in models.items():
        path = os.path.join(out, name + ".onnx")
        if not os.path.exists(path):
            export(model, example, path)
            if name == "add_table":
                align_raw_data(path)
        print(path)


if __name__ == "__main__":
    main()
