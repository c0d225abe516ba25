#!/usr/bin/python3
"""Writes the example pipelines of the book's composed serving patterns as
an inferd repository (models/pipelines/ by default):

    iris_scaler/1/model.onnx        prep: x float [N,4] -> scaled = (x - mean) / scale
                                    (scikit-learn's StandardScaler as Sub/Div: data, not a pickle)
    iris_classifier/1/model.onnx    pred: LogisticRegression trained on the scaled rows,
                                    x [N,4] -> probabilities [N,3] (+ labels.json)
    iris_temperature/1/model.onnx   calibration: probabilities -> softmax(log(p) / T)
    iris_setosa|versicolor|virginica/1/model.onnx
                                    the book's one-vs-rest classifiers, trained on raw rows:
                                    x [N,4] -> probabilities [N,2] = [p_yes, p_no]
    iris_prep_pred/pipeline.json    prep-pred: scaler -> classifier (separately versioned)
    iris_serial/pipeline.json       serial: scaler -> classifier -> temperature
    iris_ovr/pipeline.json          parallel: the three one-vs-rest models, max_score

    /usr/bin/python3 tools/gen_pipeline_examples.py [--out DIR]

Needs Debian's python3 with numpy, onnx and scikit-learn (skl2onnx is not
installed: the graphs are written with onnx.helper, as tools/fixtures
does). Seeded: a machine regenerates identical files. Exits 77 (CTest's
skip code) when a package is missing.
"""
import argparse
import json
import os
import sys

SKIP = 77
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
CLASSES = ["setosa", "versicolor", "virginica"]
TEMPERATURE = 2.0

try:
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper, save
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
except ImportError as e:  # pragma: no cover
    print(f"gen_pipeline_examples: {e}", file=sys.stderr)
    sys.exit(SKIP)


def model(nodes, name, inputs, outputs, initializers):
    graph = helper.make_graph(nodes, name, inputs, outputs, initializers)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="gen_pipeline_examples")
    m.ir_version = 8
    return m


def tensor(name, cols):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", cols])


def scaler_model(scaler):
    mean = numpy_helper.from_array(scaler.mean_.astype(np.float32), "mean")
    scale = numpy_helper.from_array(scaler.scale_.astype(np.float32), "scale")
    nodes = [helper.make_node("Sub", ["x", "mean"], ["centred"]),
             helper.make_node("Div", ["centred", "scale"], ["scaled"])]
    return model(nodes, "iris_scaler", [tensor("x", 4)], [tensor("scaled", 4)], [mean, scale])


def softmax_classifier(name, weights, bias, input_name="x"):
    """probabilities = softmax(x W + b): a LogisticRegression's predict_proba."""
    w = numpy_helper.from_array(weights.astype(np.float32), "w")
    b = numpy_helper.from_array(bias.astype(np.float32), "b")
    nodes = [helper.make_node("Gemm", [input_name, "w", "b"], ["logits"]),
             helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1)]
    return model(nodes, name, [tensor(input_name, weights.shape[0])], [tensor("probabilities", weights.shape[1])],
                 [w, b])


def temperature_model():
    t = numpy_helper.from_array(np.array([1.0 / TEMPERATURE], np.float32), "inverse_temperature")
    nodes = [helper.make_node("Log", ["probabilities"], ["log_p"]),
             helper.make_node("Mul", ["log_p", "inverse_temperature"], ["tempered"]),
             helper.make_node("Softmax", ["tempered"], ["calibrated"], axis=1)]
    return model(nodes, "iris_temperature", [tensor("probabilities", 3)], [tensor("calibrated", 3)], [t])


def one_vs_rest(x, y, k):
    """The book's per-class service: label 0 means "is class k", so the
    answer reads [p_yes, p_no]. A binary LogisticRegression's
    predict_proba is [1 - s(z), s(z)] = softmax([-z/2, z/2])."""
    clf = LogisticRegression(max_iter=1000, random_state=0).fit(x, (y != k).astype(int))
    w = clf.coef_[0] / 2
    b = clf.intercept_[0] / 2
    return clf, np.stack([-w, w], axis=1), np.array([-b, b])


def write(root, name, onnx_model, labels=None):
    d = os.path.join(root, name, "1")
    os.makedirs(d, exist_ok=True)
    save(onnx_model, os.path.join(d, "model.onnx"))
    if labels:
        with open(os.path.join(d, "labels.json"), "w") as f:
            json.dump(labels, f)


def write_pipeline(root, name, spec):
    d = os.path.join(root, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "pipeline.json"), "w") as f:
        json.dump(spec, f, indent=2)
        f.write("\n")


PREP_PRED = {
    "description": "the book's prep-pred pattern: a scaler model, then a classifier, each separately versioned",
    "root": "main",
    "steps": {
        "main": {"kind": "sequence", "steps": ["prep", "pred"]},
        "prep": {"kind": "model", "model": "iris_scaler"},
        "pred": {"kind": "model", "model": "iris_classifier", "map": {"x": "scaled"}},
    },
}

SERIAL = {
    "description": "serial microservices: each step's output feeds the next",
    "root": "main",
    "steps": {
        "main": {"kind": "sequence", "steps": ["prep", "pred", "calibrate"]},
        "prep": {"kind": "model", "model": "iris_scaler"},
        "pred": {"kind": "model", "model": "iris_classifier", "map": {"x": "scaled"}},
        "calibrate": {"kind": "model", "model": "iris_temperature"},
    },
}

OVR = {
    "description": "the book's parallel pattern: three one-vs-rest classifiers, the highest 'yes' wins",
    "root": "classify",
    "steps": {
        "classify": {
            "kind": "parallel",
            "branches": [{"step": c, "label": c} for c in CLASSES],
            "combine": {"kind": "max_score", "output": "probabilities", "index": 0},
        },
        **{c: {"kind": "model", "model": f"iris_{c}"} for c in CLASSES},
    },
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(REPO, "models", "pipelines"))
    args = ap.parse_args()
    iris = load_iris()
    x, y = iris.data.astype(np.float32), iris.target
    scaler = StandardScaler().fit(x)
    classifier = LogisticRegression(max_iter=1000, random_state=0).fit(scaler.transform(x), y)
    labels = {str(i): c for i, c in enumerate(CLASSES)}
    write(args.out, "iris_scaler", scaler_model(scaler))
    write(args.out, "iris_classifier",
          softmax_classifier("iris_classifier", classifier.coef_.T, classifier.intercept_), labels)
    write(args.out, "iris_temperature", temperature_model())
    for k, c in enumerate(CLASSES):
        _, w, b = one_vs_rest(x, y, k)
        write(args.out, f"iris_{c}", softmax_classifier(f"iris_{c}", w, b), {"0": "yes", "1": "no"})
    write_pipeline(args.out, "iris_prep_pred", PREP_PRED)
    write_pipeline(args.out, "iris_serial", SERIAL)
    write_pipeline(args.out, "iris_ovr", OVR)
    print(f"wrote the example pipelines to {args.out}")


if __name__ == "__main__":
    main()
