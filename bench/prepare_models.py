#!/usr/bin/python3
"""Prepares the models bench/run.sh times, beside the generated fixtures.

onnxruntime-node cannot return non-tensor outputs ("Non tensor type is
temporarily not supported"), so a scikit-learn classifier's ZipMap output
(a sequence of maps) would make ORT's session.run fail. For those models this
writes NAME/model_tensors.onnx: the same graph with each ZipMap that feeds a
graph output removed and its input tensor (the [N, classes] probabilities)
exposed under the output's name -- what skl2onnx emits with zipmap=False. Both
engines then compute the same outputs; inferd is also timed on the original
model so the cost of its ZipMap shows.

It also writes identity/model.onnx (one Identity on a [N, 1] float), whose
time is each engine's per-call overhead: binding, validation, output
allocation.

    /usr/bin/python3 bench/prepare_models.py FIXTURE_DIR

Prints one line per model: NAME<TAB>path timed for both<TAB>original path
(empty when the original has no ZipMap).
"""
import os
import sys

import onnx
from onnx import TensorProto, helper


def strip_zipmap(model):
    """Returns a copy without the ZipMaps that feed graph outputs, or None."""
    graph = model.graph
    outputs = {o.name for o in graph.output}
    zipmaps = [n for n in graph.node if n.op_type == "ZipMap" and n.output[0] in outputs]
    if not zipmaps:
        return None
    stripped = onnx.ModelProto()
    stripped.CopyFrom(model)
    g = stripped.graph
    rename = {z.output[0]: z.input[0] for z in zipmaps}
    kept = [n for n in g.node if not (n.op_type == "ZipMap" and n.output[0] in rename)]
    # The probabilities tensor takes the output's name, so the graph's
    # interface keeps its names; every other use of it is renamed too.
    back = {v: k for k, v in rename.items()}
    for node in kept:
        for i, name in enumerate(node.input):
            if name in back:
                node.input[i] = back[name]
        for i, name in enumerate(node.output):
            if name in back:
                node.output[i] = back[name]
    del g.node[:]
    g.node.extend(kept)
    for i, out in enumerate(g.output):
        if out.name in rename:
            g.output[i].CopyFrom(helper.make_tensor_value_info(
                out.name, TensorProto.FLOAT, ["N", None]))
    onnx.checker.check_model(stripped)
    return stripped


def identity_model():
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])], "identity",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                              producer_name="inferd-bench")
    model.ir_version = 7
    onnx.checker.check_model(model)
    return model


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    root = sys.argv[1]
    os.makedirs(os.path.join(root, "identity"), exist_ok=True)
    onnx.save(identity_model(), os.path.join(root, "identity", "model.onnx"))
    for name in sorted(os.listdir(root)):
        path = os.path.join(root, name, "model.onnx")
        if not os.path.isfile(path):
            continue
        stripped = strip_zipmap(onnx.load(path))
        if stripped is None:
            print("%s\t%s\t" % (name, path))
            continue
        tensors = os.path.join(root, name, "model_tensors.onnx")
        onnx.save(stripped, tensors)
        print("%s\t%s\t%s" % (name, tensors, path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
