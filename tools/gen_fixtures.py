#!/usr/bin/python3
"""Generates inferd's real-model fixtures: models trained with scikit-learn
and PyTorch, converted to ONNX, with the frameworks' own predictions stored
beside them in the ONNX backend-suite layout, so tests can check that inferd
reproduces what the framework computed.

    /usr/bin/python3 tools/gen_fixtures.py --out DIR [--check] [--only NAME...]
    /usr/bin/python3 tools/gen_fixtures.py --demo [--demo-dir DIR]
    /usr/bin/python3 tools/gen_fixtures.py --list

--out writes DIR/<name>/{model.onnx, fixture.json, test_data_set_{0,1}/...}.
--check re-reads every written case and evaluates its graph with a numpy
interpreter of the ONNX semantics (tools/fixtures/reference.py), failing if
the stored outputs are not reproduced within the fixture's tolerances or if a
stored label sits so close to a tie that float rounding could flip it.
--demo writes the bundled demo model models/iris_svc.onnx and
models/iris_labels.json (the iris_svc fixture's model, byte for byte).

Needs Debian's python3 with onnx, numpy, scikit-learn and torch; everything is
seeded and single-threaded, so a machine regenerates identical files. Exits 77
(CTest's skip code) when a framework is missing.
"""
import argparse
import json
import os
import sys
import time

SKIP = 77
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
SKLEARN_FIXTURES = ["iris_svc", "logistic_regression", "random_forest", "random_forest_binary",
                    "gradient_boosting_regressor", "scaler_pipeline"]
TORCH_FIXTURES = ["digits_mlp", "digits_cnn", "digits_cnn28"]
ALL_FIXTURES = SKLEARN_FIXTURES + TORCH_FIXTURES
# A stored label must win by more than this (decision value, score gap or
# probability gap) for an exact comparison to be fair under float32 rounding.
LABEL_MARGIN = 1e-4


def _import_frameworks(names):
    try:
        import numpy  # noqa: F401
        import onnx  # noqa: F401
        import sklearn  # noqa: F401
        if any(n in TORCH_FIXTURES for n in names):
            import torch  # noqa: F401
    except ImportError as e:
        print("gen_fixtures: SKIP: %s (run with Debian's /usr/bin/python3)" % e, file=sys.stderr)
        sys.exit(SKIP)


def _builder(name):
    if name in SKLEARN_FIXTURES:
        from fixtures import sklearn_models
        return sklearn_models.FIXTURES[name]
    from fixtures import torch_models
    return torch_models.FIXTURES[name]


def _compare(output_meta, expected, actual, tolerances):
    import numpy as np
    if isinstance(expected, list):  # ZipMap: list of {class: probability}
        if len(actual) != len(expected) or any(a.keys() != e.keys()
                                               for a, e in zip(actual, expected)):
            return "%s: maps differ in length or keys" % output_meta["name"]
        expected = np.array([[float(v) for v in e.values()] for e in expected])
        actual = np.array([[float(v) for v in a.values()] for a in actual])
    if expected.shape != actual.shape:
        return "%s: shape %s, expected %s" % (output_meta["name"], actual.shape, expected.shape)
    if output_meta["compare"] == "exact":
        if not np.array_equal(expected, actual):
            bad = np.flatnonzero(expected.ravel() != actual.ravel())
            return "%s: %d values differ (first at %d)" % (output_meta["name"], len(bad), bad[0])
        return None
    diff = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
    bound = tolerances["atol"] + tolerances["rtol"] * np.abs(expected.astype(np.float64))
    if not (diff <= bound).all():
        return "%s: max |diff| %.3g exceeds rtol %g atol %g" % (
            output_meta["name"], diff.max(), tolerances["rtol"], tolerances["atol"])
    return None


def check_case(case):
    """Re-reads a written case and evaluates it with the numpy interpreter."""
    import onnx
    from fixtures import layout, reference
    with open(os.path.join(case, "fixture.json")) as f:
        meta = json.load(f)
    model = onnx.load(os.path.join(case, "model.onnx"))
    # Strict shape inference in onnx 1.12 cannot merge ZipMap's
    # sequence<map> type (the book's skl2onnx model fails it too), so the
    # full check is for tensor-only graphs.
    sequence_output = any(o.type.HasField("sequence_type") for o in model.graph.output)
    onnx.checker.check_model(model, full_check=not sequence_output)
    problems, worst_margin = [], float("inf")
    for test_set in meta["test_data_sets"]:
        folder = os.path.join(case, test_set["folder"])
        inputs = [layout.load_value(os.path.join(folder, "input_%d.pb" % k), i.type)
                  for k, i in enumerate(model.graph.input)]
        expected = [layout.load_value(os.path.join(folder, "output_%d.pb" % k), o.type)
                    for k, o in enumerate(model.graph.output)]
        actual, margins = reference.run(model, inputs)
        for output_meta, e, a in zip(meta["outputs"], expected, actual):
            problem = _compare(output_meta, e, a, meta["tolerance"])
            if problem:
                problems.append("%s/%s: %s" % (meta["name"], test_set["folder"], problem))
        for node, margin in margins.items():
            worst_margin = min(worst_margin, margin)
            if margin <= LABEL_MARGIN:
                problems.append("%s/%s: node %s decides a label by %.3g, too close to a tie" % (
                    meta["name"], test_set["folder"], node, margin))
    return problems, worst_margin


def _size(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


def generate(out, names, check):
    from fixtures import layout
    os.makedirs(out, exist_ok=True)
    failures = []
    for name in names:
        started = time.monotonic()
        model, test_sets, meta = _builder(name)()
        case = layout.write_case(out, name, model, test_sets, meta)
        line = "%-28s %8.1f KiB  %5.2f s" % (name, _size(case) / 1024.0,
                                              time.monotonic() - started)
        if check:
            problems, margin = check_case(case)
            failures += problems
            line += "  check %s" % ("FAILED" if problems else "ok")
            if margin != float("inf"):
                line += " (closest label decision %.2g)" % margin
        print(line, flush=True)
    return failures


def write_demo(directory):
    from fixtures import layout, sklearn_models
    os.makedirs(directory, exist_ok=True)
    model = sklearn_models.iris_svc_model()[0]
    layout.write_bytes(os.path.join(directory, "iris_svc.onnx"), model.SerializeToString())
    layout.write_bytes(os.path.join(directory, "iris_labels.json"),
                       (json.dumps(sklearn_models.IRIS_LABELS, indent=2) + "\n").encode())
    print("wrote %s and %s" % (os.path.join(directory, "iris_svc.onnx"),
                               os.path.join(directory, "iris_labels.json")))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", help="write the fixtures under this folder")
    parser.add_argument("--only", nargs="+", choices=ALL_FIXTURES, help="only these fixtures")
    parser.add_argument("--check", action="store_true",
                        help="verify each written case with the numpy ONNX interpreter")
    parser.add_argument("--demo", action="store_true",
                        help="write the bundled demo model (models/iris_svc.onnx)")
    parser.add_argument("--demo-dir", default=os.path.join(REPO, "models"),
                        help="where --demo writes (default: the repository's models/)")
    parser.add_argument("--list", action="store_true", help="print the fixture names")
    args = parser.parse_args()
    if args.list:
        print("\n".join(ALL_FIXTURES))
        return 0
    if not args.out and not args.demo:
        parser.error("nothing to do: give --out DIR and/or --demo")
    names = args.only or ALL_FIXTURES
    _import_frameworks(names if args.out else SKLEARN_FIXTURES)
    sys.path.insert(0, HERE)
    started = time.monotonic()
    if args.demo:
        write_demo(args.demo_dir)
    failures = []
    if args.out:
        failures = generate(args.out, names, args.check)
    print("generated in %.1f s" % (time.monotonic() - started))
    for problem in failures:
        print("CHECK FAILED: " + problem, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
