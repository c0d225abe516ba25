#!/usr/bin/python3
"""Images on the serving routes of a real `inferd serve` (src/serve/
image_request.c): the digits CNN that tools/gen_image_fixtures.py trains
(torch, 28x28, preprocessing declared in the manifest) imported into a
store and served, then every request form of issue 12 — a multipart upload
on /prediction (the tutorial's `curl -F image=@digit.png`), /predict and
/predict/label, base64 JSON ({"image_data"}, {"data"}), a raw image/png or
image/jpeg body and BYTES tensors (JSON and binary) on V2 infer, top-k with
labels — and every bad input refused with a 4xx naming the problem while
the server keeps serving. The same flow through an `inferd bundle`
executable and through an `inferd image` OCI image run in a chroot. Fixtures: $IMAGE_FIXTURES (CTest runs the generator first)."""
import base64
import json
import os
import struct
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_harness import INFERD, SLOW, Server, free_port, save  # noqa: E402

import numpy as np  # noqa: E402
from onnx import TensorProto, helper  # noqa: E402

FIXTURES = os.environ.get("IMAGE_FIXTURES", "build/tests/image/generated")
DIGITS = os.path.join(FIXTURES, "digits")
IMAGES = os.path.join(FIXTURES, "images")


def read(path):
    with open(path, "rb") as f:
        return f.read()


def digits_listing():
    with open(os.path.join(DIGITS, "digits.json")) as f:
        return json.load(f)["digits"]


def multipart(fields):
    """fields: [(name, filename or None, bytes)] -> (body, content type)."""
    boundary = "----inferd" + uuid.uuid4().hex
    out = b""
    for name, filename, data in fields:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += (f"--{boundary}\r\nContent-Disposition: {disposition}\r\n"
                "Content-Type: application/octet-stream\r\n\r\n").encode() + data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return out, f"multipart/form-data; boundary={boundary}"


def import_digits(store):
    proc = subprocess.run([INFERD, "models", "--store", store, "import", os.path.join(DIGITS, "model.onnx"),
                           "--name", "digits", "--labels", os.path.join(DIGITS, "labels.json"), "--task",
                           "classification", "--preprocess", os.path.join(DIGITS, "preprocessing.json")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr



def stop_clean(server, test=None):
    """Stop a server with SIGTERM: it must exit 0 with no sanitizer report
    (under ASan, LeakSanitizer reports at exit: a kill would hide leaks)."""
    rc = server.stop()
    report = server.sanitizer_report()
    log = server.log()
    server.close()
    if rc != 0 or report:
        message = f"inferd serve exited with {rc}:\n{log[-6000:]}"
        if test:
            test.fail(message)
        raise AssertionError(message)

class ImageRoutes(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.store = os.path.join(cls.tmp.name, "store")
        import_digits(cls.store)
        cls.server = Server(["digits", "--store", cls.store, "--max-body", str(2 << 20)])

    @classmethod
    def tearDownClass(cls):
        stop_clean(cls.server)
        cls.tmp.cleanup()

    def upload(self, path, data, field="image", filename="digit.png"):
        body, ctype = multipart([(field, filename, data)])
        return self.server.post(path, body, headers={"Content-Type": ctype})

    def assert_refused(self, r, status, *words):
        self.assertEqual(r.status, status, r)
        message = r.json()["error"]
        for w in words:
            self.assertIn(w, message)
        # ... and the server keeps serving
        ok = self.upload("/prediction", read(os.path.join(DIGITS, "digit_000.png")))
        self.assertEqual(ok.status, 200, ok)

    # ---- the tutorial's flow -------------------------------------------------

    def test_prediction_labels_95_of_100_digits_right_png_and_jpeg(self):
        listing = digits_listing()
        right, kinds = 0, set()
        for name, truth in sorted(listing.items()):
            r = self.upload("/prediction", read(os.path.join(DIGITS, name)), filename=name)
            self.assertEqual(r.status, 200, r)
            answer = r.json()
            self.assertEqual(set(answer), {"prediction", "index", "probability"})
            self.assertEqual(answer["prediction"], "digit %d" % answer["index"])
            self.assertGreater(answer["probability"], 0.0)
            self.assertLessEqual(answer["probability"], 1.0)
            right += answer["index"] == truth
            kinds.add(name.rsplit(".", 1)[1])
        self.assertEqual(kinds, {"png", "jpg"})
        self.assertGreaterEqual(len(listing), 100)
        self.assertGreaterEqual(right / len(listing), 0.95, f"{right} of {len(listing)} right")

    def test_top_k_lists_k_labels_most_probable_first(self):
        r = self.upload("/prediction?top_k=3", read(os.path.join(DIGITS, "digit_000.png")))
        self.assertEqual(r.status, 200, r)
        answer = r.json()
        top = answer["top_k"]
        self.assertEqual(len(top), 3)
        self.assertEqual(top[0]["index"], answer["index"])
        probabilities = [t["probability"] for t in top]
        self.assertEqual(probabilities, sorted(probabilities, reverse=True))
        for t in top:
            self.assertEqual(t["label"], "digit %d" % t["index"])
        self.assertEqual(r.headers["x-model-version"], "digits:1")

    def test_field_named_like_the_input_is_taken(self):
        data = read(os.path.join(DIGITS, "digit_002.png"))
        truth = digits_listing()["digit_002.png"]
        r = self.upload("/predict/label", data, field="input")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json(), {"prediction": "digit %d" % truth})

    def test_predict_answers_the_probabilities_of_an_upload(self):
        r = self.upload("/predict?top_k=2", read(os.path.join(DIGITS, "digit_002.png")))
        self.assertEqual(r.status, 200, r)
        answer = r.json()
        self.assertEqual(len(answer["prediction"]), 10)
        self.assertAlmostEqual(sum(answer["prediction"]), 1.0, places=4)
        best = int(np.argmax(answer["prediction"]))
        self.assertEqual(answer["top_k"][0]["index"], best)
        self.assertEqual(len(answer["top_k"]), 2)

    # ---- base64 in JSON -------------------------------------------------------

    def test_book_image_data_and_data_base64_forms(self):
        name = "digit_003.jpg"
        truth = digits_listing()[name]
        text = base64.b64encode(read(os.path.join(DIGITS, name))).decode()
        for body in ({"image_data": text}, {"data": text}, {"data": "data:image/jpeg;base64," + text}):
            r = self.server.post("/predict/label", body)
            self.assertEqual(r.status, 200, (body.keys(), r))
            self.assertEqual(r.json()["prediction"], "digit %d" % truth)

    # ---- V2 ----------------------------------------------------------------------

    def v2_best(self, r):
        self.assertEqual(r.status, 200, r)
        answer = r.json()
        self.assertEqual(answer["model_name"], "digits")
        return answer["parameters"]["top_k"][0]["index"]

    def test_v2_raw_png_and_jpeg_bodies(self):
        listing = digits_listing()
        for name in ("digit_000.png", "digit_001.jpg"):
            ctype = "image/png" if name.endswith("png") else "image/jpeg"
            r = self.server.post("/v2/models/digits/infer?top_k=1", read(os.path.join(DIGITS, name)),
                                 headers={"Content-Type": ctype})
            self.assertEqual(self.v2_best(r), listing[name])
            outputs = {o["name"]: o for o in r.json()["outputs"]}
            self.assertEqual(int(np.argmax(outputs["probabilities"]["data"])), listing[name])

    def test_v2_bytes_tensor_base64_and_binary(self):
        name = "digit_004.png"
        truth = digits_listing()[name]
        data = read(os.path.join(DIGITS, name))
        r = self.server.post("/v2/models/digits/infer", {
            "inputs": [{"name": "input", "datatype": "BYTES", "shape": [1],
                        "data": [base64.b64encode(data).decode()]}],
            "parameters": {"top_k": 5}})
        self.assertEqual(self.v2_best(r), truth)
        self.assertEqual(len(r.json()["parameters"]["top_k"]), 5)
        header = json.dumps({"inputs": [{"name": "input", "datatype": "BYTES", "shape": [1],
                                         "parameters": {"binary_data_size": len(data) + 4}}],
                             "parameters": {"top_k": 1}}).encode()
        r = self.server.post("/v2/models/digits/infer", header + struct.pack("<I", len(data)) + data,
                             headers={"Content-Type": "application/octet-stream",
                                      "Inference-Header-Content-Length": str(len(header))})
        self.assertEqual(self.v2_best(r), truth)

    # ---- bad input ------------------------------------------------------------------

    def test_empty_upload(self):
        self.assert_refused(self.upload("/prediction", b""), 400, "upload 'image'", "empty")

    def test_wrong_field_name(self):
        self.assert_refused(self.upload("/prediction", read(os.path.join(DIGITS, "digit_000.png")),
                                        field="picture"), 400, "no field", "'picture'", "image")

    def test_two_images_under_one_field_are_refused_not_glued(self):
        a, b = read(os.path.join(DIGITS, "digit_000.png")), read(os.path.join(DIGITS, "digit_002.png"))
        body, ctype = multipart([("image", "a.png", a), ("image", "b.png", b)])
        self.assert_refused(self.server.post("/prediction", body, headers={"Content-Type": ctype}), 400,
                            "2 fields 'image'")

    def test_text_file_named_jpg(self):
        self.assert_refused(self.upload("/prediction", read(os.path.join(IMAGES, "text.jpg")), filename="x.jpg"),
                            400, "not a JPEG or PNG")

    def test_truncated_jpeg(self):
        self.assert_refused(self.upload("/prediction", read(os.path.join(IMAGES, "truncated.jpg"))), 400,
                            "JPEG", "truncated")

    def test_png_bomb_refused_from_its_header(self):
        data = read(os.path.join(IMAGES, "bomb.png"))
        self.assertLess(len(data), 10000)
        self.assert_refused(self.upload("/prediction", data), 400, "100000x100000", "limit")

    def test_upload_larger_than_the_body_limit(self):
        # the server answers from Content-Length before the body: curl reads that answer
        with tempfile.NamedTemporaryFile(suffix=".png") as big:
            big.write(b"\x89PNG" + os.urandom(3 << 20))
            big.flush()
            r = subprocess.run(["curl", "-sS", "-w", "\n%{http_code}", "-F", "image=@" + big.name,
                                f"http://127.0.0.1:{self.server.port}/prediction"], capture_output=True, text=True,
                               timeout=60 * SLOW)
        body, _, status = r.stdout.rpartition("\n")
        self.assertEqual(status, "413", r)
        self.assertIn("exceeds the limit", json.loads(body)["error"])
        ok = self.upload("/prediction", read(os.path.join(DIGITS, "digit_000.png")))
        self.assertEqual(ok.status, 200, ok)

    def test_base64_that_is_not_base64(self):
        self.assert_refused(self.server.post("/predict", {"image_data": "this is *not* base64!"}), 400,
                            "image_data", "offset")

    def test_bad_top_k(self):
        self.assert_refused(self.upload("/prediction?top_k=zero", read(os.path.join(DIGITS, "digit_000.png"))),
                            400, "top_k")

    def test_multipart_on_a_route_without_images_is_415(self):
        body, ctype = multipart([("image", "a.png", read(os.path.join(DIGITS, "digit_000.png")))])
        self.assert_refused(self.server.post("/v1/models/digits:predict", body, headers={"Content-Type": ctype}),
                            415, "Content-Type")

    def test_bytes_batch_of_images_answers_a_top_k_per_image(self):
        listing = digits_listing()
        names = ["digit_005.jpg", "digit_006.png", "digit_007.jpg"]
        texts = [base64.b64encode(read(os.path.join(DIGITS, n))).decode() for n in names]
        r = self.server.post("/v2/models/digits/infer", {
            "inputs": [{"name": "input", "datatype": "BYTES", "shape": [3], "data": texts}],
            "parameters": {"top_k": 2}})
        self.assertEqual(r.status, 200, r)
        answer = r.json()
        self.assertEqual([t[0]["index"] for t in answer["parameters"]["top_k"]], [listing[n] for n in names])
        outputs = {o["name"]: o for o in answer["outputs"]}
        self.assertEqual(outputs["probabilities"]["shape"], [3, 10])
        # the same batch through the binary extension
        blobs = [read(os.path.join(DIGITS, n)) for n in names]
        raw = b"".join(struct.pack("<I", len(b)) + b for b in blobs)
        header = json.dumps({"inputs": [{"name": "input", "datatype": "BYTES", "shape": [3],
                                         "parameters": {"binary_data_size": len(raw)}}],
                             "parameters": {"top_k": 1}}).encode()
        r = self.server.post("/v2/models/digits/infer", header + raw,
                             headers={"Content-Type": "application/octet-stream",
                                      "Inference-Header-Content-Length": str(len(header))})
        self.assertEqual(r.status, 200, r)
        self.assertEqual([t[0]["index"] for t in r.json()["parameters"]["top_k"]], [listing[n] for n in names])

    def test_bytes_image_count_must_match_the_shape(self):
        text = base64.b64encode(read(os.path.join(DIGITS, "digit_000.png"))).decode()
        self.assert_refused(self.server.post("/v2/models/digits/infer", {
            "inputs": [{"name": "input", "datatype": "BYTES", "shape": [2], "data": [text]}]}),
            400, "2 base64 strings")
        self.assert_refused(self.server.post("/v2/models/digits/infer", {
            "inputs": [{"name": "input", "datatype": "BYTES", "shape": [1, 1], "data": [[text]]}]}),
            400, "shape [N]")

    def test_bad_image_in_a_batch_is_named_by_index(self):
        good = base64.b64encode(read(os.path.join(DIGITS, "digit_000.png"))).decode()
        bad = base64.b64encode(read(os.path.join(IMAGES, "truncated.jpg"))).decode()
        self.assert_refused(self.server.post("/v2/models/digits/infer", {
            "inputs": [{"name": "input", "datatype": "BYTES", "shape": [2], "data": [good, bad]}]}),
            400, "image 1")


class ImageToANonImageModel(unittest.TestCase):
    def test_every_form_is_refused_naming_the_model(self):
        with tempfile.TemporaryDirectory() as tmp:
            x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])
            y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4])
            path = save(helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "relu",
                                                            [x], [y]), opset_imports=[helper.make_opsetid("", 13)]),
                        os.path.join(tmp, "relu.onnx"))
            server = Server([path])
            try:
                png = read(os.path.join(DIGITS, "digit_000.png"))
                body, ctype = multipart([("image", "d.png", png)])
                answers = [
                    server.post("/prediction", body, headers={"Content-Type": ctype}),
                    server.post("/predict", {"image_data": base64.b64encode(png).decode()}),
                    server.post("/v2/models/relu/infer", png, headers={"Content-Type": "image/png"}),
                ]
                # an upload's Content-Type itself is refused (415), the others are bad requests
                for r, status in zip(answers, (415, 400, 400)):
                    self.assertEqual(r.status, status, r)
                    self.assertIn("model 'relu' takes no image", r.json()["error"])
                self.assertEqual(server.post("/predict", {"data": [[1, -2, 3, -4]]}).json(),
                                 {"prediction": [1.0, 0.0, 3.0, 0.0]})
            finally:
                stop_clean(server, self)


class ImageBesideATensor(unittest.TestCase):
    """A two-input model whose input `image` is declared an image and
    `offset` is a plain tensor: V2 takes BYTES for the one and FP32 for the
    other; uploads (one image for one input) are refused naming why."""

    def test_v2_mixes_an_image_input_and_a_tensor_input(self):
        from PIL import Image
        with tempfile.TemporaryDirectory() as tmp:
            image = helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 1, 2, 2])
            offset = helper.make_tensor_value_info("offset", TensorProto.FLOAT, [1, 4])
            y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
            shape = helper.make_tensor("shape", TensorProto.INT64, [2], [1, 4])
            graph = helper.make_graph([helper.make_node("Reshape", ["image", "shape"], ["flat"]),
                                       helper.make_node("Add", ["flat", "offset"], ["y"])], "mixed",
                                      [image, offset], [y], [shape])
            path = save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]),
                        os.path.join(tmp, "mixed.onnx"))
            spec = os.path.join(tmp, "pre.json")
            with open(spec, "w") as f:
                json.dump({"image": {"kind": "image", "color": "gray", "size": [2, 2], "resize": "nearest"}}, f)
            store = os.path.join(tmp, "store")
            proc = subprocess.run([INFERD, "models", "--store", store, "import", path, "--name", "mixed",
                                   "--preprocess", spec], capture_output=True, text=True, timeout=120)
            self.assertEqual(proc.returncode, 0, proc.stderr)
            picture = os.path.join(tmp, "p.png")
            Image.frombytes("L", (2, 2), bytes([10, 20, 30, 40])).save(picture)
            server = Server(["mixed", "--store", store])
            try:
                r = server.post("/v2/models/mixed/infer", {"inputs": [
                    {"name": "image", "datatype": "BYTES", "shape": [1],
                     "data": [base64.b64encode(read(picture)).decode()]},
                    {"name": "offset", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]})
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.json()["outputs"][0]["data"], [11, 22, 33, 44])
                r = server.post("/v2/models/mixed/infer", {"inputs": [
                    {"name": "offset", "datatype": "BYTES", "shape": [1], "data": ["AAAA"]},
                    {"name": "image", "datatype": "FP32", "shape": [1, 1, 2, 2], "data": [1, 2, 3, 4]}]})
                self.assertEqual(r.status, 400, r)
                self.assertIn("input 'offset' of model 'mixed' takes no image", r.json()["error"])
                r = server.post("/v2/models/mixed/infer", read(picture), headers={"Content-Type": "image/png"})
                self.assertEqual(r.status, 400, r)
                self.assertIn("one-input model", r.json()["error"])
            finally:
                stop_clean(server, self)


class BundledDigits(unittest.TestCase):
    def test_a_bundle_answers_the_tutorials_curl(self):
        with tempfile.TemporaryDirectory() as tmp:
            store = os.path.join(tmp, "store")
            import_digits(store)
            exe = os.path.join(tmp, "digits-server")
            proc = subprocess.run([INFERD, "bundle", "digits", "--store", store, "-o", exe], capture_output=True,
                                  text=True, timeout=120)
            self.assertEqual(proc.returncode, 0, proc.stderr)
            port = free_port()
            log = tempfile.TemporaryFile()
            proc = subprocess.Popen([exe, "--port", str(port)], stdout=log, stderr=subprocess.STDOUT)
            try:
                wait_ready(port, proc)
                listing = digits_listing()
                for name in sorted(listing)[:10]:
                    r = subprocess.run(["curl", "-sS", "-F", "image=@" + os.path.join(DIGITS, name),
                                        f"http://127.0.0.1:{port}/prediction"], capture_output=True, text=True,
                                       timeout=30 * SLOW)
                    self.assertEqual(r.returncode, 0, r.stderr)
                    self.assertEqual(json.loads(r.stdout)["index"], listing[name], (name, r.stdout))
            finally:
                proc.terminate()
                proc.wait(30 * SLOW)
                log.close()


class DigitsInTheOCIImage(unittest.TestCase):
    """The tutorial's curl against `inferd image`'s entrypoint, run in a
    chroot of the unpacked image (only the image's files visible)."""

    def test_the_oci_image_answers_the_tutorials_curl(self):
        import shutil
        import tarfile
        umoci, chroot = shutil.which("umoci"), shutil.which("chroot")
        if not umoci or not chroot or os.geteuid() != 0:
            self.skipTest("needs umoci, chroot and root")
        with tempfile.TemporaryDirectory() as tmp:
            store = os.path.join(tmp, "store")
            import_digits(store)
            archive = os.path.join(tmp, "digits.oci.tar")
            proc = subprocess.run([INFERD, "image", "digits", "--store", store, "-o", archive, "--tag", "digits:1"],
                                  capture_output=True, text=True, timeout=300)
            self.assertEqual(proc.returncode, 0, proc.stderr)
            layout = os.path.join(tmp, "layout")
            with tarfile.open(archive) as t:
                t.extractall(layout)
            bundle = os.path.join(tmp, "bundle")
            proc = subprocess.run([umoci, "unpack", "--rootless", "--image", f"{layout}:digits:1", bundle],
                                  capture_output=True, text=True, timeout=300)
            self.assertEqual(proc.returncode, 0, proc.stderr)
            port = free_port()
            log = tempfile.TemporaryFile()
            server = subprocess.Popen([chroot, os.path.join(bundle, "rootfs"), "/inferd-server", "--host", "127.0.0.1"],
                                      env={"PORT": str(port)}, stdout=log, stderr=subprocess.STDOUT)
            try:
                wait_ready(port, server)
                listing = digits_listing()
                for name in sorted(listing)[:10]:
                    r = subprocess.run(["curl", "-sS", "-F", "image=@" + os.path.join(DIGITS, name),
                                        f"http://127.0.0.1:{port}/prediction"], capture_output=True, text=True,
                                       timeout=30 * SLOW)
                    self.assertEqual(r.returncode, 0, r.stderr)
                    self.assertEqual(json.loads(r.stdout)["index"], listing[name], (name, r.stdout))
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ui", timeout=30 * SLOW) as r:
                    self.assertIn(b"inferd dashboard", r.read())
            finally:
                server.terminate()
                server.wait(30 * SLOW)
                log.close()


def wait_ready(port, proc):
    deadline = time.monotonic() + 60 * SLOW
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the bundle exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError("the bundle was not ready in time")


if __name__ == "__main__":
    unittest.main(verbosity=2)
