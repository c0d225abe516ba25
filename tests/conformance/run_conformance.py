#!/usr/bin/python3
"""Runs ONNX backend-layout test cases through the real `inferd run` command.

Each case folder holds model.onnx and test_data_set_*/{input_*.pb,output_*.pb}.
For every data set the runner calls `inferd run`, decodes what it wrote and
compares it with the expected outputs as ONNX's own backend runner does: same
dtype and shape, numbers within rtol/atol (integers, bools and strings exactly).

Policy (the manifest keeps it honest, as tract's does):
  * a case the engine accepts (loads) must pass, unless the manifest names it
    as a known failure with its reason (defects of the test data only);
  * a case the engine refuses as unsupported must be listed in the manifest
    with its reason, and a listed case that now passes is an error too, so the
    list stays true;
  * a case folder with an `expect_error` file must fail with that text.
  * a case whose graph draws random numbers (RANDOM_OPS) is compared on
    dtype and shape only (and, for Bernoulli, on every value being 0 or 1):
    ONNX fixes no generator, so its expected values for these operators are
    informational (its own case files say so) and no runtime reproduces them.
Ends with one "N passed, N failed, N skipped" line (skipped = refused as
unsupported and listed). Exit status 0 only when nothing failed.

Needs Debian's /usr/bin/python3 with python3-onnx and python3-numpy.
"""
import argparse
import concurrent.futures
import json
import os
import re
import subprocess
import sys
import tempfile

# UBSan reports look like "file.c:12:5: runtime error: ..."
SANITIZER_REPORT = re.compile(r":\d+:\d+: runtime error:|ERROR: AddressSanitizer|ERROR: LeakSanitizer")

import numpy as np
import onnx
from onnx import numpy_helper

DEFAULT_DATA = "/usr/share/libonnx-testdata/data"
DEFAULT_SUITES = ["node", "pytorch-converted", "pytorch-operator", "simple"]
UNSUPPORTED_EXIT = 3
TIMEOUT_SECONDS = 120

# The operators issue #2 lists; cases using only these must all pass.
LISTED_OPS = set("""Add Sub Mul Div Neg Abs Sqrt Pow Exp Log Relu LeakyRelu PRelu Sigmoid Tanh
Softmax LogSoftmax HardSigmoid Elu Selu Softplus Erf Floor Ceil Round Sign Reciprocal Gemm MatMul
Conv ConvTranspose MaxPool AveragePool GlobalAveragePool GlobalMaxPool BatchNormalization
InstanceNormalization LayerNormalization LRN Flatten Reshape Transpose Concat Split Slice Gather
GatherElements Squeeze Unsqueeze Identity Dropout Clip Constant ConstantOfShape Shape Size Cast
CastLike ArgMax ArgMin ReduceMean ReduceSum ReduceMax ReduceMin ReduceProd ReduceL2 Min Max Sum
Mean Equal Less LessOrEqual Greater GreaterOrEqual Where Not And Or Xor Expand Tile Pad Range TopK
LinearClassifier LinearRegressor SVMClassifier SVMRegressor TreeEnsembleClassifier
TreeEnsembleRegressor Scaler Normalizer ZipMap ArrayFeatureExtractor Binarizer OneHotEncoder
LabelEncoder Imputer FeatureVectorizer""".split())


# Operators whose outputs are random draws: their cases check dtype and shape.
RANDOM_OPS = {"Bernoulli", "RandomUniform", "RandomNormal", "RandomUniformLike",
              "RandomNormalLike", "Multinomial"}


def graph_ops(graph, ops):
    for node in graph.node:
        ops.add(node.op_type)
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                graph_ops(attr.g, ops)
            for g in attr.graphs:
                graph_ops(g, ops)
    return ops


def read_value(path, type_proto):
    """Decode an expected/actual .pb as the message its graph type says."""
    with open(path, "rb") as f:
        data = f.read()
    which = type_proto.WhichOneof("value") if type_proto is not None else "tensor_type"
    if which == "sequence_type":
        msg = onnx.SequenceProto()
        msg.ParseFromString(data)
        return ("sequence", msg)
    if which == "map_type":
        msg = onnx.MapProto()
        msg.ParseFromString(data)
        return ("map", msg)
    if which == "optional_type":
        msg = onnx.OptionalProto()
        msg.ParseFromString(data)
        return ("optional", msg)
    msg = onnx.TensorProto()
    msg.ParseFromString(data)
    return ("tensor", numpy_helper.to_array(msg))


def compare_arrays(expected, actual, rtol, atol, where, random_ops=frozenset()):
    if expected.dtype != actual.dtype:
        return f"{where}: dtype {actual.dtype}, expected {expected.dtype}"
    if expected.shape != actual.shape:
        return f"{where}: shape {actual.shape}, expected {expected.shape}"
    if random_ops:
        if "Bernoulli" in random_ops and not np.isin(actual, [0, 1]).all():
            return f"{where}: a Bernoulli draw outside {{0, 1}}"
        return None
    if expected.dtype.kind in "fc":
        if not np.allclose(actual, expected, rtol=rtol, atol=atol, equal_nan=True):
            diff = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
            diff = np.where(np.isnan(diff), 0, diff)
            worst = np.unravel_index(np.argmax(diff), diff.shape) if diff.size else ()
            return (f"{where}: values differ, max abs diff {diff.max() if diff.size else 0:.3g} "
                    f"at {tuple(int(i) for i in worst)}: got {actual[worst]!r}, "
                    f"expected {expected[worst]!r}")
    elif not np.array_equal(actual, expected):
        mismatch = np.argwhere(actual != expected)
        at = tuple(int(i) for i in mismatch[0]) if len(mismatch) else ()
        return f"{where}: values differ at {at}: got {actual[at]!r}, expected {expected[at]!r}"
    return None


def sequence_items(seq):
    kinds = {onnx.SequenceProto.TENSOR: "tensor_values", onnx.SequenceProto.MAP: "map_values",
             onnx.SequenceProto.SEQUENCE: "sequence_values"}
    field = kinds.get(seq.elem_type)
    if field is None:
        for name in ("tensor_values", "map_values", "sequence_values"):
            if len(getattr(seq, name)):
                field = name
    return field, list(getattr(seq, field)) if field else []


def compare_messages(kind, expected, actual, rtol, atol, where):
    if kind == "tensor":
        return compare_arrays(numpy_helper.to_array(expected), numpy_helper.to_array(actual),
                              rtol, atol, where)
    if kind == "map":
        ek = list(expected.string_keys) if expected.key_type == onnx.TensorProto.STRING else list(expected.keys)
        ak = list(actual.string_keys) if actual.key_type == onnx.TensorProto.STRING else list(actual.keys)
        if ek != ak:
            return f"{where}: map keys {ak}, expected {ek}"
        return compare_messages("sequence", expected.values, actual.values, rtol, atol, where)
    if kind == "sequence":
        ef, eitems = sequence_items(expected)
        af, aitems = sequence_items(actual)
        if len(eitems) != len(aitems):
            return f"{where}: sequence of {len(aitems)} items, expected {len(eitems)}"
        if eitems and ef != af:
            return f"{where}: sequence of {af}, expected {ef}"
        sub = {"tensor_values": "tensor", "map_values": "map", "sequence_values": "sequence"}.get(ef)
        for i, (e, a) in enumerate(zip(eitems, aitems)):
            problem = compare_messages(sub, e, a, rtol, atol, f"{where}[{i}]")
            if problem:
                return problem
        return None
    if kind == "optional":
        fields = ("tensor_value", "sequence_value", "map_value", "optional_value")
        e_set = [f for f in fields if expected.HasField(f)]
        a_set = [f for f in fields if actual.HasField(f)]
        if e_set != a_set:
            return f"{where}: optional holds {a_set or 'nothing'}, expected {e_set or 'nothing'}"
        if not e_set:
            return None
        sub = {"tensor_value": "tensor", "sequence_value": "sequence", "map_value": "map",
               "optional_value": "optional"}[e_set[0]]
        return compare_messages(sub, getattr(expected, e_set[0]), getattr(actual, e_set[0]),
                                rtol, atol, where)
    return f"{where}: values of this kind are not compared"


def compare_output(expected_path, actual_path, type_proto, rtol, atol, where,
                   random_ops=frozenset()):
    kind, expected = read_value(expected_path, type_proto)
    _, actual = read_value(actual_path, type_proto)
    if kind == "tensor":
        return compare_arrays(expected, actual, rtol, atol, where, random_ops)
    return compare_messages(kind, expected, actual, rtol, atol, where)


def run_case(inferd, case_dir, rtol, atol, extra_args):
    """Returns (status, reason) with status pass / fail / unsupported."""
    model_path = os.path.join(case_dir, "model.onnx")
    expect_error = None
    if os.path.exists(os.path.join(case_dir, "expect_error")):
        with open(os.path.join(case_dir, "expect_error")) as f:
            expect_error = f.read().strip()
    fixture = os.path.join(case_dir, "fixture.json")
    if os.path.exists(fixture):
        with open(fixture) as f:
            tol = json.load(f).get("tolerance", {})
        rtol = tol.get("rtol", rtol)
        atol = tol.get("atol", atol)
    model = onnx.load(model_path, load_external_data=False)
    random_ops = frozenset(graph_ops(model.graph, set()) & RANDOM_OPS)
    sets = sorted(d for d in os.listdir(case_dir) if d.startswith("test_data_set_"))
    if expect_error is not None and not sets:
        sets = [None]
    for data_set in sets:
        inputs = []
        if data_set:
            set_dir = os.path.join(case_dir, data_set)
            count = len([f for f in os.listdir(set_dir) if re.match(r"input_\d+\.pb$", f)])
            inputs = [os.path.join(set_dir, f"input_{i}.pb") for i in range(count)]
        with tempfile.TemporaryDirectory(prefix="inferd-conf-") as out_dir:
            cmd = [inferd, "run", model_path] + extra_args
            for path in inputs:
                cmd += ["-i", path]
            cmd += ["-o", out_dir]
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                return "fail", f"timed out after {TIMEOUT_SECONDS} s"
            message = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else ""
            if expect_error is not None:
                if proc.returncode == 0:
                    return "fail", f"expected an error containing '{expect_error}', but it ran"
                if proc.returncode < 0 or SANITIZER_REPORT.search(proc.stderr):
                    return "fail", f"crashed (status {proc.returncode}): {message}"
                if expect_error not in proc.stderr:
                    return "fail", f"error '{message}' does not contain '{expect_error}'"
                continue
            if proc.returncode == UNSUPPORTED_EXIT:
                return "unsupported", message
            if proc.returncode != 0:
                return "fail", f"exit status {proc.returncode}: {message}"
            if SANITIZER_REPORT.search(proc.stderr):
                return "fail", f"sanitizer report: {message}"
            for k, output in enumerate(model.graph.output):
                expected = os.path.join(case_dir, data_set, f"output_{k}.pb")
                if not os.path.exists(expected):
                    continue
                actual = os.path.join(out_dir, f"output_{k}.pb")
                if not os.path.exists(actual):
                    return "fail", f"{data_set}: output_{k}.pb was not written"
                problem = compare_output(expected, actual, output.type, rtol, atol,
                                         f"{data_set} output {k} '{output.name}'", random_ops)
                if problem:
                    return "fail", problem
    return "pass", ""


def load_manifest(path):
    manifest = {}
    if path and os.path.exists(path):
        with open(path) as f:
            for line in f:
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                name, _, reason = line.partition(" ")
                manifest[name] = reason.strip()
    return manifest


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inferd", required=True, help="path of the inferd binary")
    parser.add_argument("--data", default=DEFAULT_DATA, help="backend test data root")
    parser.add_argument("--suites", default=",".join(DEFAULT_SUITES))
    parser.add_argument("--root", action="append", default=[],
                        help="extra folder of case folders, run as its own suite (repeatable)")
    parser.add_argument("--filter", default=None, help="regex on suite/case names")
    parser.add_argument("--manifest", default=None,
                        help="expected-unsupported list: 'suite/case reason' per line")
    parser.add_argument("--write-manifest", default=None,
                        help="write the cases refused as unsupported to this file and exit 0")
    parser.add_argument("--rtol", type=float, default=1e-3)
    parser.add_argument("--atol", type=float, default=1e-7)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--threads", type=int, default=1, help="inferd --threads per case")
    parser.add_argument("--graph-opt", default=None, choices=["none", "basic", "all"],
                        help="inferd --graph-opt per case (default: inferd's own, all)")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()

    if not os.access(args.inferd, os.X_OK):
        sys.exit(f"run_conformance: {args.inferd} is not an executable")
    cases = []
    suites = [s for s in args.suites.split(",") if s]
    if suites and not os.path.isdir(args.data):
        sys.exit(f"run_conformance: {args.data} is missing (install Debian's libonnx-testdata)")
    for suite in suites:
        root = os.path.join(args.data, suite)
        cases += [(suite, name, os.path.join(root, name)) for name in sorted(os.listdir(root))]
    for root in args.root:
        suite = os.path.basename(os.path.normpath(root))
        cases += [(suite, name, os.path.join(root, name)) for name in sorted(os.listdir(root))
                  if os.path.exists(os.path.join(root, name, "model.onnx"))]
    if args.filter:
        pattern = re.compile(args.filter)
        cases = [c for c in cases if pattern.search(f"{c[0]}/{c[1]}")]

    manifest = load_manifest(args.manifest)
    extra = ["--threads", str(args.threads)]
    if args.graph_opt:
        extra += ["--graph-opt", args.graph_opt]

    def work(case):
        suite, name, path = case
        try:
            status, reason = run_case(args.inferd, path, args.rtol, args.atol, extra)
        except Exception as exc:  # a broken expected file is a failure, not a crash
            status, reason = "fail", f"runner error: {exc!r}"
        ops = graph_ops(onnx.load(os.path.join(path, "model.onnx"), load_external_data=False).graph, set())
        return suite, name, status, reason, ops

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = list(pool.map(work, cases))

    per_suite = {}
    problems = []
    listed_total = listed_passed = 0
    passed = skipped = 0
    unsupported_lines = []
    known = []
    for suite, name, status, reason, ops in results:
        key = f"{suite}/{name}"
        stats = per_suite.setdefault(suite, [0, 0, 0])
        stats[0] += 1
        is_listed = ops <= LISTED_OPS
        if suite in DEFAULT_SUITES and is_listed:
            listed_total += 1
            listed_passed += status == "pass"
        if status == "pass":
            stats[1] += 1
            passed += 1
            if key in manifest:
                problems.append(f"UNEXPECTED PASS {key}: listed as '{manifest[key]}'; remove it from the manifest")
        elif status == "unsupported":
            stats[2] += 1
            unsupported_lines.append(f"{key} {reason.rsplit('model.onnx: ', 1)[-1]}")
            if suite not in DEFAULT_SUITES:
                problems.append(f"UNSUPPORTED {key}: {reason} (cases given with --root must run)")
            elif key in manifest:
                skipped += 1
                known.append(f"known: {key}: {manifest[key]}") if is_listed else None
            elif is_listed:
                problems.append(f"UNSUPPORTED LISTED-OPERATOR CASE {key}: {reason}")
            elif args.manifest:
                problems.append(f"NEWLY UNSUPPORTED {key}: {reason}")
            else:
                skipped += 1
        elif key in manifest:
            # a failure the manifest explains (a defect of the test data)
            skipped += 1
            known.append(f"known failure: {key}: {manifest[key]}")
        else:
            problems.append(f"FAIL {key}: {reason}")
        if args.verbose:
            print(f"{status:12} {key} {reason}")

    if args.write_manifest:
        with open(args.write_manifest, "w") as f:
            f.write("# Backend cases the engine refuses as unsupported, with the reason.\n"
                    "# Written by run_conformance.py --write-manifest; the runner fails when a\n"
                    "# case here starts to pass or a case not here becomes unsupported.\n")
            for line in sorted(unsupported_lines):
                f.write(line + "\n")

    for suite, (total, ok, unsup) in per_suite.items():
        print(f"{suite:20} {ok:4}/{total:<4} passed, {unsup:4} refused as unsupported")
    if any(s in DEFAULT_SUITES for s in per_suite):
        print(f"{'listed operators':20} {listed_passed:4}/{listed_total:<4} passed "
              f"(cases whose operators are all on issue #2's list)")
    for line in known + problems:
        print(line)
    failed = len(problems)
    print(f"conformance: {passed} passed, {failed} failed, {skipped} skipped")
    sys.exit(1 if failed and not args.write_manifest else 0)


if __name__ == "__main__":
    main()
