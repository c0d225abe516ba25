"""The model store and the version guard (src/store, `inferd models`),
driven through the real CLI on real files: round trips, crash safety
(kill -9 mid-import), confinement of names and archive members, and the
guard refusing unsupported models and models whose golden samples differ.
`inferd serve` re-checking golden samples at load is tested on a real
server on 127.0.0.1.

Run with Debian's python (numpy + onnx): INFERD=build/inferd /usr/bin/python3 tests/store/test_store.py
"""
import hashlib
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import unittest
import urllib.error
import urllib.request

import numpy as np
import onnx
from onnx import TensorProto, helper

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
INFERD = os.environ.get("INFERD", os.path.join(ROOT, "build", "inferd"))
IRIS = os.path.join(ROOT, "models", "iris_svc.onnx")
IRIS_LABELS = os.path.join(ROOT, "models", "iris_labels.json")
SLOW = float(os.environ.get("INFERD_TEST_SLOW", "1"))


def linear_model(path, w, b):
    """y = x @ w + b, float32, batch dimension symbolic."""
    w = np.asarray(w, dtype=np.float32)
    b = np.asarray(b, dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["y"])],
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", w.shape[0]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", w.shape[1]])],
        [helper.make_tensor("w", TensorProto.FLOAT, w.shape, w.flatten()),
         helper.make_tensor("b", TensorProto.FLOAT, b.shape, b.flatten())])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                              producer_name="test_store")
    model.ir_version = 7
    onnx.save(model, path)
    return w, b


def unsupported_model(path):
    graph = helper.make_graph(
        [helper.make_node("NoSuchOpA", ["x"], ["t"]), helper.make_node("NoSuchOpB", ["t"], ["y"])],
        "unsupported",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    onnx.save(model, path)


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def read_json(path):
    with open(path) as f:
        return json.load(f)


def sha256_of(path):
    return subprocess.run(["sha256sum", path], check=True, capture_output=True,
                          text=True).stdout.split()[0]


class StoreTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="inferd-store-test-")
        self.root = os.path.join(self.tmp, "store")
        self.outside = os.path.join(self.tmp, "outside")
        os.makedirs(self.outside)

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def models(self, *args, ok=True, timeout=60):
        p = subprocess.run([INFERD, "models", "--store", self.root, *args], capture_output=True,
                           text=True, timeout=timeout * SLOW)
        for sanitizer in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
            self.assertNotIn(sanitizer, p.stderr, f"inferd models {' '.join(args)}")
        if ok is True:
            self.assertEqual(p.returncode, 0, f"inferd models {' '.join(args)}: {p.stderr}")
        elif ok is False:
            self.assertNotEqual(p.returncode, 0, f"inferd models {' '.join(args)} succeeded: {p.stdout}")
            self.assertTrue(p.stderr.startswith("inferd: "), p.stderr)
        return p

    def manifest(self, ref):
        return json.loads(self.models("get", ref).stdout)

    def path(self, *parts):
        return os.path.join(self.tmp, *parts)

    def visible_versions(self):
        """name:version of every complete model in the store's tree."""
        found = []
        for name in sorted(os.listdir(self.root)):
            if name.startswith("."):
                continue
            for version in sorted(os.listdir(os.path.join(self.root, name))):
                found.append(f"{name}:{version}")
        return found

    def assert_outside_untouched(self):
        self.assertEqual(os.listdir(self.outside), [])

    # ---- round trip ---------------------------------------------------------

    def test_import_list_get_delete_export_import_round_trip(self):
        env = self.path("requirements.txt")
        with open(env, "w") as f:
            f.write("# training\nscikit-learn==1.2.2\n\nnumpy==1.24.4\n")
        samples = self.path("samples.json")
        with open(samples, "w") as f:
            json.dump({"samples": [{"inputs": {"float_input": [[5.1, 3.5, 1.4, 0.2]]},
                                    "outputs": {"output_label": [0]}}]}, f)
        out = self.models("import", IRIS, "--name", "iris", "--labels", IRIS_LABELS, "--task",
                          "classification", "--training-env", env, "--samples", samples).stdout
        self.assertIn("imported iris:1", out)
        m = self.manifest("iris:1")
        self.assertEqual(m["name"], "iris")
        self.assertEqual(m["version"], "1")
        self.assertEqual(m["sha256"], sha256_of(IRIS))
        self.assertEqual(m["size"], os.path.getsize(IRIS))
        self.assertEqual(m["task"], "classification")
        self.assertEqual(m["labels"], read_json(IRIS_LABELS))
        self.assertEqual(m["training_environment"], ["scikit-learn==1.2.2", "numpy==1.24.4"])
        self.assertEqual(m["opsets"], {"ai.onnx": 9, "ai.onnx.ml": 1})
        self.assertEqual(m["ir_version"], 4)
        self.assertEqual(m["producer"]["name"], "inferd-gen_fixtures")
        self.assertEqual(m["signature"]["inputs"], [{"name": "float_input", "dtype": "float32",
                                                     "shape": [None, 4]}])
        self.assertEqual([o["name"] for o in m["signature"]["outputs"]],
                         ["output_label", "output_probability"])
        self.assertEqual(m["golden_samples"]["rtol"], 1e-4)
        self.assertEqual(m["golden_samples"]["atol"], 1e-5)
        self.assertTrue(m["created"].endswith("Z"))
        self.assertTrue(m["source"].startswith("file:"))
        stored = os.path.join(self.root, "iris", "1")
        self.assertEqual(sorted(os.listdir(stored)), ["labels.json", "model.json", "model.onnx"])
        self.assertEqual(sha256_of(os.path.join(stored, "model.onnx")), m["sha256"])

        table = self.models("list").stdout.splitlines()
        self.assertEqual(table[0].split(), ["NAME", "VERSION", "TASK", "SIZE", "OPSET", "CREATED"])
        self.assertIn("iris", table[1])
        self.assertIn("classification", table[1])
        self.assertIn("9, ai.onnx.ml 1", table[1])
        self.assertEqual(len(json.loads(self.models("list", "--json").stdout)), 1)

        tar = self.path("iris.tar")
        self.models("export", "iris:latest", "-o", tar)
        with tarfile.open(tar) as t:
            self.assertEqual(sorted(t.getnames()), ["labels.json", "model.json", "model.onnx"])
        self.models("delete", "iris:1")
        self.assertEqual(self.visible_versions(), [])
        self.models("get", "iris", ok=False)
        out = self.models("import", tar).stdout
        self.assertIn("imported iris:1", out)
        again = self.manifest("iris")
        for key in ("sha256", "size", "task", "labels", "training_environment", "golden_samples",
                    "signature", "opsets", "created"):
            self.assertEqual(again[key], m[key], key)
        self.assertTrue(again["source"].startswith("archive:"))
        with open(os.path.join(self.root, "iris", "1", "labels.json")) as f:
            self.assertEqual(json.load(f), read_json(IRIS_LABELS))
        # the archive under another name
        self.models("import", tar, "--name", "iris-copy")
        self.assertEqual(self.manifest("iris-copy:latest")["sha256"], m["sha256"])

    def test_versions_auto_increment_and_latest_resolves(self):
        for expected in ("1", "2", "3"):
            self.assertIn(f"imported iris:{expected}", self.models("import", IRIS, "--name", "iris").stdout)
        self.models("import", IRIS, "--name", "iris", "--version", "10")
        self.assertIn("imported iris:11", self.models("import", IRIS, "--name", "iris").stdout)
        self.assertEqual(self.manifest("iris")["version"], "11")
        self.assertEqual(self.manifest("iris:latest")["version"], "11")
        self.assertEqual(self.manifest("iris:2")["version"], "2")
        self.models("delete", "iris:latest")
        self.assertEqual(self.manifest("iris:latest")["version"], "10")
        # natural order, not text order
        self.models("import", IRIS, "--name", "tagged", "--version", "1.9")
        self.models("import", IRIS, "--name", "tagged", "--version", "1.10")
        self.assertEqual(self.manifest("tagged:latest")["version"], "1.10")
        self.models("get", "iris:99", ok=False)
        self.models("get", "nosuch", ok=False)
        self.models("import", IRIS, "--name", "iris", "--version", "latest", ok=False)

    def test_explicit_version_replaces_atomically(self):
        linear_model(self.path("a.onnx"), [[1.0], [2.0]], [0.5])
        self.models("import", IRIS, "--name", "m", "--version", "3")
        self.models("import", self.path("a.onnx"), "--name", "m", "--version", "3")
        self.assertEqual(self.manifest("m:3")["sha256"], sha256_of(self.path("a.onnx")))
        self.assertEqual(self.visible_versions(), ["m:3"])
        self.assertEqual(os.listdir(os.path.join(self.root, ".tmp")), [])

    def test_sha256_matches_sha256sum(self):
        linear_model(self.path("lin.onnx"), np.arange(12).reshape(4, 3) / 7, [1, 2, 3])
        self.models("import", self.path("lin.onnx"), "--name", "lin")
        self.assertEqual(self.manifest("lin")["sha256"], sha256_of(self.path("lin.onnx")))
        self.assertEqual(self.manifest("lin")["sha256"],
                         hashlib.sha256(read_bytes(self.path("lin.onnx"))).hexdigest())

    # ---- atomicity ----------------------------------------------------------

    def test_kill_during_import_leaves_store_valid(self):
        self.models("import", IRIS, "--name", "big")  # an existing version must survive
        fifo = self.path("model.fifo")
        os.mkfifo(fifo)
        proc = subprocess.Popen([INFERD, "models", "--store", self.root, "import", fifo, "--name",
                                 "big"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            writer = os.open(fifo, os.O_WRONLY)
            data = read_bytes(IRIS)
            os.write(writer, data[: len(data) // 2])
            tmp = os.path.join(self.root, ".tmp")
            deadline = time.time() + 10 * SLOW
            staged = None
            while time.time() < deadline and not staged:
                for d in os.listdir(tmp):
                    f = os.path.join(tmp, d, "model.onnx")
                    if os.path.exists(f) and os.path.getsize(f) > 0:
                        staged = f
                time.sleep(0.02)
            self.assertIsNotNone(staged, "the importer never started copying")
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            os.close(writer)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        # no half model visible: only the complete version 1
        self.assertEqual(self.visible_versions(), ["big:1"])
        self.assertEqual([m["version"] for m in json.loads(self.models("list", "--json").stdout)], ["1"])
        self.assertEqual(self.manifest("big:latest")["sha256"], sha256_of(IRIS))
        # the dead importer's staging is swept by the next command
        self.assertEqual(os.listdir(os.path.join(self.root, ".tmp")), [])
        self.assertIn("imported big:2", self.models("import", IRIS, "--name", "big").stdout)

    def assert_every_version_complete(self):
        for ref in self.visible_versions():
            name, version = ref.split(":")
            folder = os.path.join(self.root, name, version)
            manifest = read_json(os.path.join(folder, "model.json"))
            self.assertEqual(manifest["version"], version)
            self.assertEqual(manifest["sha256"], sha256_of(os.path.join(folder, "model.onnx")), ref)

    def test_kill_at_random_moments_never_shows_a_half_model(self):
        big = self.path("big.onnx")
        linear_model(big, np.ones((1500, 1500)) / 3, np.zeros(1500))  # ~9 MB
        rng = np.random.default_rng(1)
        for delay in list(rng.uniform(0.0, 0.4, size=6)) + [5.0]:
            proc = subprocess.Popen([INFERD, "models", "--store", self.root, "import", big, "--name",
                                     "big"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                proc.wait(timeout=delay * SLOW)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            self.assert_every_version_complete()
        self.models("list")
        self.assertEqual(os.listdir(os.path.join(self.root, ".tmp")), [])
        self.assert_every_version_complete()

    def test_failed_import_leaves_nothing(self):
        with open(self.path("garbage.onnx"), "wb") as f:
            f.write(b"\x08\x07garbage")
        self.models("import", self.path("garbage.onnx"), "--name", "g", ok=False)
        self.models("import", self.path("missing.onnx"), "--name", "g", ok=False)
        self.assertEqual(self.visible_versions(), [])
        self.assertEqual(os.listdir(os.path.join(self.root, ".tmp")), [])

    # ---- confinement ------------------------------------------------------

    def test_path_traversal_names_refused(self):
        bad = ["../x", "a/b", "/abs", "Upper", "a" * 64, "..", ".", "-x", "x-", "a b", "x%2f..",
               "", "name:../../x", "x\\y"]
        for name in bad:
            p = self.models("import", IRIS, "--name", name, ok=False)
            self.assertIn("not valid", p.stderr, name)
        for version in ["../../x", "/abs", "a/b", "V1", "1" * 64]:
            self.models("import", IRIS, "--name", "ok", "--version", version, ok=False)
        for ref in ["../x", "name:../../x", "/abs", "a/b:1", "x:/abs", "x:", "UP:1", "x:1:2"]:
            self.models("get", ref, ok=False)
            self.models("delete", ref, ok=False)
            self.models("export", ref, "-o", self.path("outside", "x.tar"), ok=False)
        self.models("import", IRIS, "--name", "a" * 63)  # the longest valid name
        self.assertEqual(self.visible_versions(), ["a" * 63 + ":1"])
        self.assert_outside_untouched()

    def test_symlink_inside_root_not_followed(self):
        self.models("list")
        os.symlink(self.outside, os.path.join(self.root, "evil"))
        p = self.models("import", IRIS, "--name", "evil", ok=False)
        self.assertIn("symbolic link", p.stderr)
        os.makedirs(os.path.join(self.outside, "1"))
        shutil.copy(IRIS, os.path.join(self.outside, "1", "model.onnx"))
        with open(os.path.join(self.outside, "1", "model.json"), "w") as f:
            json.dump({"name": "evil", "version": "1"}, f)
        self.models("get", "evil", ok=False)
        self.models("delete", "evil:1", ok=False)
        self.assertTrue(os.path.exists(os.path.join(self.outside, "1", "model.json")))
        self.assertEqual(json.loads(self.models("list", "--json").stdout), [])

    # ---- archives --------------------------------------------------------

    def good_archive_members(self):
        self.models("import", IRIS, "--name", "iris", "--labels", IRIS_LABELS)
        tar = self.path("good.tar")
        self.models("export", "iris", "-o", tar)
        members = {}
        with tarfile.open(tar) as t:
            for m in t.getmembers():
                members[m.name] = t.extractfile(m).read()
        self.models("delete", "iris")
        return members

    def write_tar(self, path, members, extra=None):
        with tarfile.open(path, "w") as t:
            for name, data in members.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
            for info in extra or []:
                t.addfile(info, io.BytesIO(b"x" * info.size) if info.isfile() else None)

    def assert_archive_refused(self, path, why):
        p = self.models("import", path, ok=False)
        self.assertIn(why, p.stderr)
        self.assertEqual(self.visible_versions(), [])
        self.assertEqual(os.listdir(os.path.join(self.root, ".tmp")), [])
        self.assert_outside_untouched()
        return p

    def test_archive_with_bad_members_refused(self):
        good = self.good_archive_members()
        cases = []
        for name in ("../model.onnx", "../outside/x", "/tmp/model.onnx", "sub/model.onnx",
                     "model.onnx/..", "extra.txt"):
            cases.append((name, dict(good, **{name: b"data"}), None, "not accepted"))
        link = tarfile.TarInfo("labels.json")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        cases.append(("symlink", {k: v for k, v in good.items() if k != "labels.json"}, [link],
                      "link or special file"))
        hard = tarfile.TarInfo("labels.json")
        hard.type = tarfile.LNKTYPE
        hard.linkname = "model.json"
        cases.append(("hardlink", {k: v for k, v in good.items() if k != "labels.json"}, [hard],
                      "link or special file"))
        dev = tarfile.TarInfo("labels.json")
        dev.type = tarfile.CHRTYPE
        cases.append(("device", {k: v for k, v in good.items() if k != "labels.json"}, [dev],
                      "link or special file"))
        subdir = tarfile.TarInfo("sub")
        subdir.type = tarfile.DIRTYPE
        cases.append(("directory", good, [subdir], "directory"))
        dup = tarfile.TarInfo("model.onnx")
        dup.size = 3
        cases.append(("duplicate", good, [dup], "appears twice"))
        cases.append(("missing manifest", {"model.onnx": good["model.onnx"]}, None, "missing"))
        for label, members, extra, why in cases:
            with self.subTest(label):
                path = self.path("bad.tar")
                self.write_tar(path, members, extra)
                self.assert_archive_refused(path, why)

    def test_archive_with_wrong_sha256_refused(self):
        good = self.good_archive_members()
        manifest = json.loads(good["model.json"])
        manifest["sha256"] = "0" * 64
        self.write_tar(self.path("bad.tar"), dict(good, **{"model.json": json.dumps(manifest).encode()}))
        self.assert_archive_refused(self.path("bad.tar"), "sha256")
        other = read_bytes(IRIS) + b"\n"
        self.write_tar(self.path("bad2.tar"), dict(good, **{"model.onnx": other}))
        self.assert_archive_refused(self.path("bad2.tar"), "sha256")
        manifest = json.loads(good["model.json"])
        manifest["name"] = "../escape"
        self.write_tar(self.path("bad3.tar"), dict(good, **{"model.json": json.dumps(manifest).encode()}))
        self.assert_archive_refused(self.path("bad3.tar"), "not a valid model name")

    def test_archive_with_dot_slash_members_accepted(self):
        good = self.good_archive_members()
        self.write_tar(self.path("dots.tar"), {"./" + k: v for k, v in good.items()})
        self.assertIn("imported iris:1", self.models("import", self.path("dots.tar")).stdout)

    # ---- version guard ---------------------------------------------------

    def test_guard_refuses_unsupported_model(self):
        unsupported_model(self.path("unsupported.onnx"))
        p = self.models("import", self.path("unsupported.onnx"), "--name", "bad", ok=False)
        self.assertIn("NoSuchOpA", p.stderr)
        self.assertIn("NoSuchOpB", p.stderr)
        self.assertIn("unsupported", p.stderr)
        self.assertEqual(self.visible_versions(), [])

    def write_samples(self, path, w, b, perturb=0.0, **extra):
        rng = np.random.default_rng(0)
        samples = []
        for i in range(3):
            x = rng.normal(size=(2, w.shape[0])).astype(np.float32)
            y = (x.astype(np.float64) @ w + b).astype(np.float32)
            if i == 1:
                y = y + perturb
            inputs = {"x": x.tolist()} if i != 2 else \
                {"x": {"dtype": "float32", "shape": list(x.shape), "data": x.flatten().tolist()}}
            samples.append({"inputs": inputs, "outputs": {"y": y.tolist()}})
        with open(path, "w") as f:
            json.dump(dict(samples=samples, **extra), f)

    def test_guard_accepts_matching_golden_samples(self):
        w, b = linear_model(self.path("lin.onnx"), [[0.5, -1.0], [2.0, 0.25], [1.5, 1.0]], [0.1, -0.2])
        self.write_samples(self.path("samples.json"), w, b)
        self.models("import", self.path("lin.onnx"), "--name", "lin", "--samples", self.path("samples.json"))
        self.assertEqual(len(self.manifest("lin")["golden_samples"]["samples"]), 3)

    def test_guard_refuses_golden_samples_that_disagree(self):
        w, b = linear_model(self.path("lin.onnx"), [[0.5, -1.0], [2.0, 0.25], [1.5, 1.0]], [0.1, -0.2])
        self.write_samples(self.path("samples.json"), w, b, perturb=0.01)
        p = self.models("import", self.path("lin.onnx"), "--name", "lin", "--samples",
                        self.path("samples.json"), ok=False)
        self.assertIn("model 'lin'", p.stderr)
        self.assertIn("golden sample 1", p.stderr)
        self.assertNotIn("golden sample 0", p.stderr)
        self.assertIn("output 'y'", p.stderr)
        diff = float(re.search(r"max abs diff ([0-9.e-]+)", p.stderr).group(1))
        self.assertAlmostEqual(diff, 0.01, places=4)
        self.assertIn("max rel diff", p.stderr)
        self.assertEqual(self.visible_versions(), [])
        # a looser tolerance, from the command line or the file, accepts it
        self.models("import", self.path("lin.onnx"), "--name", "lin", "--samples",
                    self.path("samples.json"), "--atol", "0.02")
        self.assertEqual(self.manifest("lin")["golden_samples"]["atol"], 0.02)
        self.write_samples(self.path("loose.json"), w, b, perturb=0.01, atol=0.05)
        self.models("import", self.path("lin.onnx"), "--name", "lin", "--samples", self.path("loose.json"))
        self.models("import", self.path("lin.onnx"), "--name", "lin", "--samples",
                    self.path("loose.json"), "--atol", "0.001", ok=False)

    def test_guard_compares_sequences_of_maps(self):
        # skl2onnx's ZipMap output: one {class: probability} per row
        rows = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
        probabilities = [{"0": 0.9669100642204285, "1": 0.01850655861198902, "2": 0.014583451673388481},
                         {"0": 0.010983745567500591, "1": 0.008653728291392326, "2": 0.9803625345230103}]
        sample = {"inputs": {"float_input": rows},
                  "outputs": {"output_label": [0, 2], "output_probability": probabilities}}
        with open(self.path("s.json"), "w") as f:
            json.dump({"samples": [sample]}, f)
        self.models("import", IRIS, "--name", "iris", "--samples", self.path("s.json"))
        probabilities[1]["2"] -= 0.05
        with open(self.path("s.json"), "w") as f:
            json.dump({"samples": [sample]}, f)
        p = self.models("import", IRIS, "--name", "iris", "--samples", self.path("s.json"), ok=False)
        self.assertIn("golden sample 0, output 'output_probability': max abs diff 0.05", p.stderr)
        del probabilities[1]["2"]
        with open(self.path("s.json"), "w") as f:
            json.dump({"samples": [sample]}, f)
        p = self.models("import", IRIS, "--name", "iris", "--samples", self.path("s.json"), ok=False)
        self.assertIn("item 1: the engine produced a map of 3 keys", p.stderr)
        self.assertEqual(self.visible_versions(), ["iris:1"])

    def test_guard_refuses_malformed_samples(self):
        w, b = linear_model(self.path("lin.onnx"), [[1.0], [1.0]], [0.0])
        cases = {
            "missing input": ({"samples": [{"inputs": {}, "outputs": {"y": [[1]]}}]}, "input 'x' is missing"),
            "unknown output": ({"samples": [{"inputs": {"x": [[1, 2]]}, "outputs": {"z": [[3]]}}]}, "no output 'z'"),
            "wrong shape": ({"samples": [{"inputs": {"x": [[1, 2]]}, "outputs": {"y": [[3], [4]]}}]}, "elements"),
            "ragged": ({"samples": [{"inputs": {"x": [[1, 2], [3]]}, "outputs": {"y": [[3]]}}]}, "rectangular"),
            "no samples": ({"samples": []}, "at least one sample"),
            "bad tolerance": ({"rtol": -1, "samples": [{"inputs": {}, "outputs": {}}]}, "rtol"),
        }
        for label, (doc, why) in cases.items():
            with self.subTest(label):
                with open(self.path("s.json"), "w") as f:
                    json.dump(doc, f)
                p = self.models("import", self.path("lin.onnx"), "--name", "lin", "--samples",
                                self.path("s.json"), ok=False)
                self.assertIn(why, p.stderr)
        self.assertEqual(self.visible_versions(), [])

    # ---- serve re-checks golden samples at load ----------------------------

    def test_serve_stays_not_ready_when_golden_samples_fail(self):
        w, b = linear_model(self.path("lin.onnx"), [[1.0], [2.0]], [0.5])
        self.write_samples(self.path("samples.json"), w, b)
        self.models("import", self.path("lin.onnx"), "--name", "lin", "--samples", self.path("samples.json"))
        self.models("import", self.path("lin.onnx"), "--name", "drifted", "--samples", self.path("samples.json"))
        # an engine change that alters predictions looks like this to the server
        manifest_path = os.path.join(self.root, "drifted", "1", "model.json")
        manifest = read_json(manifest_path)
        manifest["golden_samples"]["samples"][0]["outputs"]["y"][0][0] += 1.0
        with open(manifest_path, "w") as f:
            json.dump(manifest, f)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        proc = subprocess.Popen([INFERD, "serve", "--repository", self.root, "--port", str(port),
                                 "--host", "127.0.0.1"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            def status(path, body=None):
                request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body,
                                                 headers={"Content-Type": "application/json"})
                try:
                    with urllib.request.urlopen(request, timeout=5) as r:
                        return r.status
                except urllib.error.HTTPError as e:
                    e.close()
                    return e.code

            deadline = time.time() + 20 * SLOW
            live = False
            while time.time() < deadline and not live:
                self.assertIsNone(proc.poll(), "the server exited")
                try:
                    live = status("/v2/health/live") == 200
                except (urllib.error.URLError, ConnectionError):
                    time.sleep(0.1)
            self.assertTrue(live)
            self.assertNotEqual(status("/v2/health/ready"), 200)
            self.assertNotEqual(status("/v2/models/drifted/ready"), 200)
            self.assertEqual(status("/v2/models/lin/ready"), 200)
            infer = json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 2],
                                            "data": [1, 2]}]}).encode()
            self.assertEqual(status("/v2/models/drifted/infer", infer), 503)
            self.assertEqual(status("/v2/models/lin/infer", infer), 200)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                _, err = proc.communicate(timeout=10 * SLOW)
            except subprocess.TimeoutExpired:
                proc.kill()
                _, err = proc.communicate()
        self.assertIn("golden", err)
        self.assertIn("drifted", err)
        self.assertIn("max abs diff", err)


    # ---- a stored model named by reference --------------------------------

    def test_serve_resolves_name_and_latest_from_the_store(self):
        labels = os.path.join(ROOT, "models", "iris_labels.json")
        demo = os.path.join(ROOT, "models", "iris_svc.onnx")
        self.models("import", demo, "--name", "iris", "--labels", labels)
        self.models("import", demo, "--name", "iris")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        proc = subprocess.Popen([INFERD, "serve", "iris:latest", "--store", self.root, "--port",
                                 str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, cwd=self.tmp)
        try:
            deadline = time.time() + 20 * SLOW
            body = None
            while time.time() < deadline and body is None:
                self.assertIsNone(proc.poll(), "the server exited")
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/models/iris", timeout=5) as r:
                        body = json.loads(r.read())
                except (urllib.error.URLError, ConnectionError):
                    time.sleep(0.1)
            self.assertEqual(body["name"], "iris")
            self.assertEqual(body["versions"], ["2"])
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                _, err = proc.communicate(timeout=10 * SLOW)
            except subprocess.TimeoutExpired:
                proc.kill()
                _, err = proc.communicate()
        self.assertIn(os.path.join(self.root, "iris", "2", "model.onnx"), err)
        p = subprocess.run([INFERD, "serve", "nosuch:3", "--store", self.root], capture_output=True,
                           text=True, timeout=30 * SLOW, cwd=self.tmp)
        self.assertEqual(p.returncode, 1)
        self.assertIn("nosuch", p.stderr)

if __name__ == "__main__":
    if not os.access(INFERD, os.X_OK):
        sys.exit(f"INFERD={INFERD} is not an executable")
    unittest.main(verbosity=2)
