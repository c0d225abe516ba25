#!/usr/bin/python3
"""Image inputs end to end through the real `inferd` (path in $INFERD), on
the fixtures tools/gen_image_fixtures.py wrote ($IMAGE_FIXTURES): a digits
CNN trained with torch, its preprocessing declared in the store's manifest,
100 held-out digits drawn black on white as PNG and JPEG files that
`inferd predict --image` must label right at least 95 times in 100; the
preprocessing shown by `inspect` and `models get`; and every bad input
refused with a message naming the problem."""
import json
import os
import subprocess
import tempfile
import unittest

INFERD = os.environ.get("INFERD", "build/inferd")
FIXTURES = os.environ.get("IMAGE_FIXTURES", "build/tests/image/generated")
DIGITS = os.path.join(FIXTURES, "digits")
MODEL = os.path.join(DIGITS, "model.onnx")
PREPROCESSING = os.path.join(DIGITS, "preprocessing.json")
LABELS = os.path.join(DIGITS, "labels.json")


def inferd(*args):
    return subprocess.run([INFERD, *args], capture_output=True, text=True, timeout=120)


def digits_listing():
    with open(os.path.join(DIGITS, "digits.json")) as f:
        return json.load(f)["digits"]


def image(name):
    return os.path.join(FIXTURES, "images", name)


class StoredDigitsModel(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.store = os.path.join(cls.tmp.name, "store")
        proc = inferd("models", "--store", cls.store, "import", MODEL, "--name", "digits", "--labels", LABELS,
                      "--task", "classification", "--preprocess", PREPROCESSING)
        assert proc.returncode == 0, proc.stderr

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def predict(self, picture, *extra):
        return inferd("predict", "digits", "--store", self.store, "--image", picture, *extra)

    def test_manifest_records_the_preprocessing_spelled_out(self):
        proc = inferd("models", "--store", self.store, "get", "digits")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        spec = json.loads(proc.stdout)["preprocessing"]["input"]
        self.assertEqual(spec["kind"], "image")
        self.assertEqual(spec["color"], "gray")
        self.assertEqual(spec["size"], [28, 28])
        self.assertEqual(spec["fit"], "stretch")      # a default, written down
        self.assertEqual(spec["layout"], "NCHW")
        self.assertTrue(spec["invert"])
        self.assertAlmostEqual(spec["scale"], 1 / 255)

    def test_inspect_shows_the_preprocessing_of_a_stored_model(self):
        proc = inferd("inspect", "digits", "--store", self.store)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn("preprocessing:\n  input", proc.stdout)
        self.assertIn("gray 28x28 bilinear stretch NCHW float32 invert scale=0.00392157", proc.stdout)

    def test_inspect_of_the_stored_file_reads_the_manifest_beside_it(self):
        path = os.path.join(self.store, "digits", "1", "model.onnx")
        proc = inferd("inspect", path)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn("gray 28x28 bilinear stretch NCHW float32 invert", proc.stdout)

    def test_inspect_ignores_a_foreign_model_json_beside_a_file(self):
        with tempfile.TemporaryDirectory() as d:
            with open(MODEL, "rb") as src, open(os.path.join(d, "m.onnx"), "wb") as dst:
                dst.write(src.read())
            with open(os.path.join(d, "model.json"), "w") as f:
                f.write("[1")
            proc = inferd("inspect", os.path.join(d, "m.onnx"))
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn("ignoring", proc.stderr)
        self.assertIn("status: runnable", proc.stdout)
        self.assertNotIn("preprocessing:", proc.stdout)

    def test_the_digits_are_labelled_right_95_times_in_100(self):
        listing = digits_listing()
        right, wrong = 0, []
        for name, truth in sorted(listing.items()):
            proc = self.predict(os.path.join(DIGITS, name), "--top-k", "3")
            self.assertEqual(proc.returncode, 0, proc.stderr)
            answer = json.loads(proc.stdout)
            self.assertEqual(len(answer["top_k"]), 3)
            best = answer["top_k"][0]
            self.assertEqual(best["label"], "digit %d" % best["index"])
            probabilities = [p["probability"] for p in answer["top_k"]]
            self.assertEqual(probabilities, sorted(probabilities, reverse=True))
            if best["index"] == truth:
                right += 1
            else:
                wrong.append((name, truth, best["index"]))
        print("digits: %d of %d right; wrong: %s" % (right, len(listing), wrong))
        self.assertEqual(len(listing), 100)
        self.assertGreaterEqual(right, 95, wrong)

    def test_labels_option_overrides_the_manifest(self):
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump({str(i): "class-%d" % i for i in range(10)}, f)
        try:
            proc = self.predict(os.path.join(DIGITS, "digit_000.png"), "--labels", f.name, "--top-k", "1")
        finally:
            os.unlink(f.name)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertRegex(json.loads(proc.stdout)["top_k"][0]["label"], r"^class-\d$")

    def test_bad_images_are_refused_naming_the_file_and_problem(self):
        cases = {"truncated.jpg": "corrupt or truncated data", "bomb.png": "announces 100000x100000 pixels",
                 "bomb.jpg": "announces 65000x65000 pixels", "text.jpg": "not a JPEG or PNG",
                 "empty.png": "empty", "corrupt.png": "not a valid PNG"}
        for name, reason in cases.items():
            with self.subTest(name=name):
                proc = self.predict(image(name))
                self.assertEqual(proc.returncode, 1)
                self.assertIn(name, proc.stderr)
                self.assertIn(reason, proc.stderr)
                self.assertEqual(proc.stdout, "")

    def test_missing_image_file_is_named(self):
        proc = self.predict(os.path.join(self.tmp.name, "nope.png"))
        self.assertEqual(proc.returncode, 1)
        self.assertIn("nope.png", proc.stderr)


class PreprocessingOnTheCommandLine(unittest.TestCase):
    def test_a_model_file_with_preprocess_flag_and_labels(self):
        spec = json.dumps({"kind": "image", "color": "gray", "size": [28, 28], "invert": True, "scale": 1 / 255})
        proc = inferd("predict", MODEL, "--image", os.path.join(DIGITS, "digit_000.png"), "--preprocess", spec,
                      "--labels", LABELS, "--top-k", "1")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        truth = digits_listing()["digit_000.png"]
        self.assertEqual(json.loads(proc.stdout)["top_k"][0]["label"], "digit %d" % truth)

    def test_no_declared_preprocessing_says_how_to_give_one(self):
        proc = inferd("predict", MODEL, "--image", os.path.join(DIGITS, "digit_000.png"))
        self.assertEqual(proc.returncode, 1)
        self.assertIn("declares no image preprocessing", proc.stderr)
        self.assertIn("--preprocess", proc.stderr)

    def import_refused(self, preprocessing):
        """stderr of a `models import` with this preprocessing, which must fail and place nothing."""
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "pre.json")
            with open(path, "w") as f:
                json.dump(preprocessing, f)
            proc = inferd("models", "--store", os.path.join(d, "s"), "import", MODEL, "--name", "digits",
                          "--preprocess", path)
            self.assertEqual(proc.returncode, 1)
            self.assertFalse(os.path.exists(os.path.join(d, "s", "digits")))
            return proc.stderr

    def test_a_spec_that_does_not_fit_the_input_is_refused_at_import(self):
        err = self.import_refused({"input": {"kind": "image", "color": "rgb", "size": [28, 28]}})
        self.assertIn("pre.json.input", err)
        self.assertIn("has shape [batch,1,28,28], but its image preprocessing makes [1,3,28,28]", err)

    def test_a_spec_naming_no_input_of_the_model_is_refused(self):
        err = self.import_refused({"pixels": {"kind": "image", "color": "gray", "size": [28, 28]}})
        self.assertIn("no input named 'pixels'", err)

    def test_a_misspelt_field_is_refused_naming_it(self):
        spec = json.dumps({"kind": "image", "color": "gray", "size": [28, 28], "invrt": True})
        proc = inferd("predict", MODEL, "--image", os.path.join(DIGITS, "digit_000.png"), "--preprocess", spec)
        self.assertEqual(proc.returncode, 1)
        self.assertIn("unknown field 'invrt'", proc.stderr)

    def test_manifest_survives_export_and_import_of_an_archive(self):
        with tempfile.TemporaryDirectory() as d:
            store_a, store_b, tar = os.path.join(d, "a"), os.path.join(d, "b"), os.path.join(d, "digits.tar")
            self.assertEqual(inferd("models", "--store", store_a, "import", MODEL, "--name", "digits",
                                    "--preprocess", PREPROCESSING).returncode, 0)
            self.assertEqual(inferd("models", "--store", store_a, "export", "digits", "-o", tar).returncode, 0)
            proc = inferd("models", "--store", store_b, "import", tar)
            self.assertEqual(proc.returncode, 0, proc.stderr)
            got = json.loads(inferd("models", "--store", store_b, "get", "digits").stdout)
            self.assertEqual(got["preprocessing"]["input"]["size"], [28, 28])


if __name__ == "__main__":
    unittest.main(verbosity=2)
