#!/usr/bin/python3
"""Tests of the `inferd` command line: run, predict and inspect, on models
written here with onnx.helper and on the bundled demo model. Each test runs
the real binary (path in $INFERD) and checks exit status and messages."""
import json
import os
import subprocess
import sys
import tempfile
import unittest

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

INFERD = os.environ.get("INFERD", "build/inferd")
SOURCE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO = os.path.join(SOURCE, "models", "iris_svc.onnx")


def inferd(*args):
    return subprocess.run([INFERD, *args], capture_output=True, text=True, timeout=60)


def save(model, folder, name="model.onnx"):
    path = os.path.join(folder, name)
    onnx.save(model, path)
    return path


def tensor_file(folder, name, array):
    path = os.path.join(folder, name)
    with open(path, "wb") as f:
        f.write(numpy_helper.from_array(array).SerializeToString())
    return path


def add_model():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])
    bias = numpy_helper.from_array(np.array([1, 2, 3], dtype=np.float32), "bias")
    graph = helper.make_graph([helper.make_node("Add", ["x", "bias"], ["y"])], "add", [x], [y], [bias])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def unsupported_model():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
    nodes = [
        helper.make_node("Frobnicate", ["x"], ["a"], domain="com.example"),
        helper.make_node("NoSuchOp", ["a"], ["b"]),
        helper.make_node("NoSuchMlOp", ["b"], ["y"], domain="ai.onnx.ml"),
    ]
    graph = helper.make_graph(nodes, "unsupported", [x], [y])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13),
                                                   helper.make_opsetid("ai.onnx.ml", 3),
                                                   helper.make_opsetid("com.example", 1)])


class RunTest(unittest.TestCase):
    def test_run_writes_one_tensorproto_per_output(self):
        with tempfile.TemporaryDirectory() as d:
            model = save(add_model(), d)
            x = tensor_file(d, "x.pb", np.array([[1, 1, 1], [2, 2, 2]], dtype=np.float32))
            out = os.path.join(d, "out")
            proc = inferd("run", model, "-i", x, "-o", out)
            self.assertEqual(proc.returncode, 0, proc.stderr)
            result = onnx.TensorProto()
            with open(os.path.join(out, "output_0.pb"), "rb") as f:
                result.ParseFromString(f.read())
            self.assertEqual(result.name, "y")
            np.testing.assert_array_equal(numpy_helper.to_array(result),
                                          np.array([[2, 3, 4], [3, 4, 5]], dtype=np.float32))

    def test_run_profile_prints_every_node_and_keeps_the_outputs(self):
        with tempfile.TemporaryDirectory() as d:
            x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])
            y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])
            nodes = [helper.make_node("Neg", ["x"], ["a"], name="negate"),
                     helper.make_node("Softmax", ["a"], ["y"], name="classes", axis=-1)]
            graph = helper.make_graph(nodes, "profiled", [x], [y])
            model = save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), d)
            xs = tensor_file(d, "x.pb", np.array([[1, 2, 3]], dtype=np.float32))
            out = os.path.join(d, "out")
            proc = inferd("run", model, "-i", xs, "-o", out, "--profile")
            self.assertEqual(proc.returncode, 0, proc.stderr)
            lines = proc.stderr.strip().splitlines()
            self.assertIn("us/run", lines[0])
            rows = {line.split()[-1]: line.split() for line in lines[1:-1]}
            self.assertEqual(set(rows), {"negate", "classes"})
            self.assertEqual(rows["classes"][3], "Softmax")
            self.assertEqual(rows["negate"][2], "1.00")  # runs a run
            self.assertTrue(lines[-1].split()[-2:] == ["2", "nodes"], lines[-1])
            self.assertTrue(os.path.exists(os.path.join(out, "output_0.pb")))
            # without the flag nothing is printed
            proc = inferd("run", model, "-i", xs, "-o", out)
            self.assertEqual((proc.returncode, proc.stderr), (0, ""))

    def test_run_refuses_wrong_input_count_and_dtype(self):
        with tempfile.TemporaryDirectory() as d:
            model = save(add_model(), d)
            proc = inferd("run", model, "-o", d)
            self.assertEqual(proc.returncode, 1)
            self.assertIn("the model has 1 input, 0 files given", proc.stderr)
            x = tensor_file(d, "x.pb", np.zeros((2, 3), dtype=np.float64))
            proc = inferd("run", model, "-i", x, "-o", d)
            self.assertEqual(proc.returncode, 1)
            self.assertIn("input 'x': expected float32 [?,3], got float64 [2,3]", proc.stderr)
            x = tensor_file(d, "x4.pb", np.zeros((2, 4), dtype=np.float32))
            proc = inferd("run", model, "-i", x, "-o", d)
            self.assertIn("expected float32 [?,3], got float32 [2,4]", proc.stderr)

    def test_run_names_a_missing_or_corrupt_file(self):
        with tempfile.TemporaryDirectory() as d:
            proc = inferd("run", os.path.join(d, "nope.onnx"), "-o", d)
            self.assertEqual(proc.returncode, 1)
            self.assertIn("nope.onnx: No such file or directory", proc.stderr)
            bad = os.path.join(d, "bad.onnx")
            with open(bad, "wb") as f:
                f.write(b"\x0a\xff\xff\xff\xff\x0f garbage")
            proc = inferd("run", bad, "-o", d)
            self.assertEqual(proc.returncode, 1)
            self.assertIn("bad.onnx: model: not a valid", proc.stderr)

    def test_run_exits_3_and_lists_every_unsupported_operator(self):
        with tempfile.TemporaryDirectory() as d:
            model = save(unsupported_model(), d)
            x = tensor_file(d, "x.pb", np.zeros(2, dtype=np.float32))
            proc = inferd("run", model, "-i", x, "-o", d)
            self.assertEqual(proc.returncode, 3)
            self.assertIn("3 unsupported operators", proc.stderr)
            self.assertIn("Frobnicate (com.example opset 1", proc.stderr)
            self.assertIn("NoSuchOp (ai.onnx opset 13)", proc.stderr)
            self.assertIn("NoSuchMlOp (ai.onnx.ml opset 3)", proc.stderr)


class InspectTest(unittest.TestCase):
    def test_inspect_lists_all_missing_operators(self):
        with tempfile.TemporaryDirectory() as d:
            proc = inferd("inspect", save(unsupported_model(), d))
            self.assertEqual(proc.returncode, 1)
            self.assertIn("unsupported operators: 3", proc.stdout)
            for line in ("Frobnicate (com.example opset 1)", "NoSuchOp (ai.onnx opset 13)",
                         "NoSuchMlOp (ai.onnx.ml opset 3)", "status: cannot run"):
                self.assertIn(line, proc.stdout)

    def test_inspect_shows_signature_versions_and_histogram(self):
        proc = inferd("inspect", DEMO)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn("float_input              float32[None,4]", proc.stdout.replace("?", "None"))
        self.assertIn("output_probability       sequence<map<int64,float32>>", proc.stdout)
        self.assertIn("ai.onnx.ml=1", proc.stdout)
        self.assertIn("ai.onnx.ml.SVMClassifier", proc.stdout)
        self.assertIn("status: runnable", proc.stdout)


class PredictTest(unittest.TestCase):
    def test_predict_demo_model_answers_labels_and_probabilities(self):
        proc = inferd("predict", DEMO, "--data", "[[5.1,3.5,1.4,0.2],[6.7,3.0,5.2,2.3]]")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        result = json.loads(proc.stdout)
        self.assertEqual(result["output_label"], [0, 2])
        self.assertEqual(len(result["output_probability"]), 2)
        first = result["output_probability"][0]
        self.assertEqual(sorted(first), ["0", "1", "2"])
        self.assertAlmostEqual(sum(first.values()), 1.0, places=5)
        self.assertGreater(first["0"], 0.9)

    def test_predict_rejects_bad_json_ragged_rows_and_out_of_range_integers(self):
        cases = [("[[1,2,3,4]", "invalid JSON"),
                 ("[[1,2,3,4],[1,2]]", "rows have different lengths"),
                 ("[[1,2,\"a\",4]]", "expected a number"),
                 ("{\"wrong\": [[1,2,3,4]]}", "input 'float_input' is missing")]
        for data, message in cases:
            proc = inferd("predict", DEMO, "--data", data)
            self.assertEqual(proc.returncode, 1, data)
            self.assertIn(message, proc.stderr, data)
        proc = inferd("predict", DEMO, "--data", "[[1,2,3]]")
        self.assertIn("expected float32 [?,4], got float32 [1,3]", proc.stderr)

    def test_threads_flag_is_validated(self):
        proc = inferd("predict", DEMO, "--threads", "0", "--data", "[[1,2,3,4]]")
        self.assertEqual(proc.returncode, 1)
        self.assertIn("--threads", proc.stderr)
        proc = inferd("predict", DEMO, "--threads", "10000", "--data", "[[1,2,3,4]]")
        self.assertEqual(proc.returncode, 1)
        self.assertIn("from 1 to 1024", proc.stderr)

    def test_graph_opt_levels_give_the_same_answer_and_bad_levels_are_refused(self):
        answers = set()
        for level in ("none", "basic", "all"):
            proc = inferd("predict", DEMO, "--graph-opt", level, "--data", "[[5.1,3.5,1.4,0.2]]")
            self.assertEqual(proc.returncode, 0, proc.stderr)
            answers.add(proc.stdout)
        self.assertEqual(len(answers), 1)
        for command in (["predict", DEMO, "--data", "[[1,2,3,4]]"], ["serve", DEMO],
                        ["worker", DEMO], ["batch", DEMO, "--input", "a.csv", "--output", "b.csv"]):
            proc = inferd(*command, "--graph-opt", "fast")
            self.assertEqual(proc.returncode, 1, command)
            self.assertIn("--graph-opt: expected none, basic or all, got 'fast'", proc.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
