#!/usr/bin/python3
"""Writes the torch-exported architectures of the real-model fixtures: the
shapes of network users export from PyTorch, built with Debian's torch 1.13
and torchvision 0.14 and exported with torch.onnx.export as a user would.
Weights are random (seeded): the fixtures check that inferd computes what
ONNX Runtime computes on the same graph, not what a trained net predicts.

    gen_torch_architectures.py --out DIR     writes DIR/<name>.onnx for every model

  control_flow_decoder  torch.jit.script: a data-dependent Loop whose body
                        holds two Ifs, trip count an input, outputs a sequence
  gru_text_classifier   Embedding, 2-layer bidirectional GRU, Linear; batch and
                        sequence length dynamic
  lstm_tagger           Embedding, bidirectional LSTM, per-token Linear; batch
                        and sequence length dynamic
  qdq_cnn               eager-mode static quantization (torch.ao.quantization:
                        fused Conv+ReLU, observers calibrated on data), exported
                        as QuantizeLinear/DequantizeLinear around float Conv/Gemm
  mobilenet_v3_small    torchvision's, batch, height and width dynamic; BatchNorm
                        statistics set from random images so activations keep
                        their scale
"""
import argparse
import io
import os
import sys

import onnx
import torch
import torchvision
from torch import nn

SEED = 0
OPSET = 17  # the newest torch 1.13 writes


class ControlFlowDecoder(nn.Module):
    """A greedy-decoder shape: steps the state `steps` times (a Loop with a
    trip count read from an input) and stops early once the state's norm
    passes a threshold (the Loop's condition); each step takes one of two
    updates by the sign of a running score (an If). The step outputs collect
    in a list, which the exporter writes as a sequence (SequenceInsert,
    ConcatFromSequence). The recurrent cell is written out because torch 1.13
    cannot export aten::gru_cell inside a scripted loop."""

    def __init__(self):
        super().__init__()
        self.input_gate = nn.Linear(16, 32)
        self.state_gate = nn.Linear(32, 32)
        self.project = nn.Linear(32, 16)

    def forward(self, x: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
        h = torch.zeros(x.shape[0], 32)
        outputs = []
        for _ in range(int(steps)):
            h = torch.tanh(self.input_gate(x) + self.state_gate(h))
            if bool(h.sum() > 0):
                x = torch.tanh(self.project(h))
            else:
                x = torch.sigmoid(self.project(h)) - 0.5
            outputs.append(x)
            if bool((h * h).sum() > 1.0e6):
                break
        return torch.stack(outputs, 1)


class GRUTextClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(1000, 32)
        self.gru = nn.GRU(32, 48, num_layers=2, bidirectional=True, batch_first=True)
        self.head = nn.Linear(96, 5)

    def forward(self, tokens):
        states, _ = self.gru(self.embed(tokens))
        return self.head(states[:, -1])


class LSTMTagger(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(500, 24)
        self.lstm = nn.LSTM(24, 40, bidirectional=True, batch_first=True)
        self.tags = nn.Linear(80, 9)

    def forward(self, tokens):
        states, _ = self.lstm(self.embed(tokens))
        return self.tags(states)


class QuantizableCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.quant = torch.ao.quantization.QuantStub()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(16, 32, 3, stride=2, padding=1)
        self.relu2 = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32, 10)
        self.dequant = torch.ao.quantization.DeQuantStub()

    def forward(self, x):
        x = self.quant(x)
        x = self.relu1(self.conv1(x))
        x = self.relu2(self.conv2(x))
        x = torch.flatten(self.pool(x), 1)
        return self.dequant(self.fc(x))


def _export(model, args, names_in, names_out, dynamic_axes, path):
    buffer = io.BytesIO()
    torch.onnx.export(model, args, buffer, opset_version=OPSET, input_names=names_in,
                      output_names=names_out, dynamic_axes=dynamic_axes,
                      do_constant_folding=True)
    proto = onnx.load_from_string(buffer.getvalue())
    onnx.checker.check_model(proto)
    onnx.save(proto, path)


def control_flow_decoder(path):
    model = torch.jit.script(ControlFlowDecoder().eval())
    _export(model, (torch.randn(2, 16), torch.tensor(5)), ["x", "steps"], ["sequence"],
            {"x": {0: "batch"}, "sequence": {0: "batch", 1: "steps"}}, path)


def gru_text_classifier(path):
    _export(GRUTextClassifier().eval(), (torch.randint(0, 1000, (2, 12)),), ["tokens"],
            ["logits"], {"tokens": {0: "batch", 1: "length"}, "logits": {0: "batch"}}, path)


def lstm_tagger(path):
    _export(LSTMTagger().eval(), (torch.randint(0, 500, (2, 12)),), ["tokens"], ["tags"],
            {"tokens": {0: "batch", 1: "length"}, "tags": {0: "batch", 1: "length"}}, path)


def qdq_cnn(path):
    torch.backends.quantized.engine = "qnnpack"  # Debian's torch has no FBGEMM
    model = QuantizableCNN().eval()
    model.qconfig = torch.ao.quantization.get_default_qconfig("qnnpack")
    torch.ao.quantization.fuse_modules(model, [["conv1", "relu1"], ["conv2", "relu2"]],
                                       inplace=True)
    prepared = torch.ao.quantization.prepare(model)
    generator = torch.Generator().manual_seed(SEED + 1)
    with torch.no_grad():
        for _ in range(8):  # calibration: the observers see the data's ranges
            prepared(torch.rand(4, 3, 32, 32, generator=generator))
    quantized = torch.ao.quantization.convert(prepared)
    _export(quantized, (torch.rand(1, 3, 32, 32),), ["image"], ["logits"],
            {"image": {0: "batch"}, "logits": {0: "batch"}}, path)


def mobilenet_v3_small(path):
    model = torchvision.models.mobilenet_v3_small(weights=None)
    # With random weights and BatchNorm's initial running statistics the
    # activations shrink layer by layer to logits near 1e-9, which any engine
    # "matches". A few forward passes in training mode set the statistics from
    # data (a cumulative average), as training would, so every layer sees
    # unit-scale activations and the logits spread over several units.
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.momentum = None
    generator = torch.Generator().manual_seed(SEED + 2)
    model.train()
    with torch.no_grad():
        for _ in range(4):
            model(torch.randn(8, 3, 224, 224, generator=generator))
    model.eval()
    # torchvision draws the classifier from N(0, 0.01), meant to be trained;
    # PyTorch's default Linear initialisation gives logits a few units wide.
    for module in model.classifier.modules():
        if isinstance(module, nn.Linear):
            module.reset_parameters()
    _export(model, (torch.randn(1, 3, 224, 224),), ["image"], ["logits"],
            {"image": {0: "batch", 2: "height", 3: "width"}, "logits": {0: "batch"}}, path)


MODELS = {
    "control_flow_decoder": control_flow_decoder,
    "gru_text_classifier": gru_text_classifier,
    "lstm_tagger": lstm_tagger,
    "qdq_cnn": qdq_cnn,
    "mobilenet_v3_small": mobilenet_v3_small,
}


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--only", nargs="*")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(1)
    for name in args.only or MODELS:
        torch.manual_seed(SEED)  # each model's weights independent of the others
        path = os.path.join(args.out, name + ".onnx")
        MODELS[name](path)
        print("wrote %s" % path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
