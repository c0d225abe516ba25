#!/usr/bin/python3
"""Exports the real-size networks of the engine benchmark and of the ORT
comparison tests (issue 14) with Debian's torch: ResNet-18 and MobileNetV2
from torchvision (random weights, seeded; 224x224), a TransformerEncoder
(4 layers, d_model 256, 8 heads, sequence 128) and a 2-layer LSTM (input 64,
hidden 128, sequence 32) with a Linear head. Every model has a dynamic batch
axis. Models are built at bench/test time and never committed (ResNet-18 is
45 MB).

    /usr/bin/python3 tools/gen_engine_bench_models.py --out DIR [--only NAME ...] [--list]

writes DIR/<name>/model.onnx and prints one line per model:
<name>\t<path>\t<input shape without batch>\t<comparison>
where comparison says how the tests compare with ONNX Runtime (argmax for
classifier logits, rtol for regressions). Exits 77 (CTest's skip) without
torch/torchvision.
"""
import argparse
import os
import sys

SKIP = 77
MODELS = {
    # name: (input shape without batch, comparison stated in the tests)
    "resnet18": ((3, 224, 224), "argmax"),
    "mobilenet_v2": ((3, 224, 224), "argmax"),
    "transformer_encoder": ((128, 256), "rtol=1e-4,atol=1e-4"),
    "lstm": ((32, 64), "rtol=1e-4,atol=1e-5"),
}


def build(name):
    import torch
    torch.manual_seed(14)
    if name in ("resnet18", "mobilenet_v2"):
        import torchvision
        net = getattr(torchvision.models, name)(weights=None)
        # torchvision's init leaves BatchNorm at mean 0, var 1: give it
        # running statistics so that folding it into Conv is exercised
        for mod in net.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.1, 0.1)
                mod.running_var.uniform_(0.5, 1.5)
        return net
    if name == "transformer_encoder":
        layer = torch.nn.TransformerEncoderLayer(d_model=256, nhead=8, dim_feedforward=1024,
                                                 dropout=0.0, batch_first=True)
        return torch.nn.TransformerEncoder(layer, num_layers=4, enable_nested_tensor=False)
    if name == "lstm":
        class LstmRegressor(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.lstm = torch.nn.LSTM(64, 128, num_layers=2, batch_first=True)
                self.head = torch.nn.Linear(128, 10)

            def forward(self, x):
                out, _ = self.lstm(x)
                return self.head(out[:, -1, :])
        return LstmRegressor()
    raise KeyError(name)


def export(name, out_dir):
    import torch
    net = build(name).eval()
    shape, _ = MODELS[name]
    x = torch.randn((2,) + shape)
    path = os.path.join(out_dir, name, "model.onnx")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    # the transformer's fast path (a fused aten op) has no ONNX export:
    # tracing with gradients enabled keeps the primitive graph
    with torch.enable_grad():
        torch.onnx.export(net, (x,), path, input_names=["input"], output_names=["output"],
                          dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
                          opset_version=14, do_constant_folding=True)
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out")
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--list", action="store_true")
    args = ap.parse_args()
    names = args.only or list(MODELS)
    if args.list:
        print("\n".join(MODELS))
        return 0
    if not args.out:
        ap.error("--out is required")
    try:
        import torch  # noqa: F401
        import torchvision  # noqa: F401
    except ImportError as e:
        print("gen_engine_bench_models: SKIP: %s (run with /usr/bin/python3)" % e, file=sys.stderr)
        return SKIP
    torch.set_num_threads(1)
    for name in names:
        path = os.path.join(args.out, name, "model.onnx")
        if not os.path.exists(path):
            export(name, args.out)
        shape, comparison = MODELS[name]
        print("%s\t%s\t%s\t%s" % (name, path, ",".join(map(str, shape)), comparison))
    return 0


if __name__ == "__main__":
    sys.exit(main())
