"""`inferd image` — an OCI image archive written without Docker
(src/store/image.c): checked with Debian's real OCI tools (skopeo inspect,
umoci unpack), every digest recomputed, and the entrypoint run from the
unpacked root filesystem alone — in a chroot when the test runs as root
(so nothing outside the image can be loaded), and through the image's own
dynamic loader — answering a prediction on 127.0.0.1.

Run with Debian's python: INFERD=build/inferd /usr/bin/python3 tests/store/test_image.py
"""
import gzip
import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import unittest

from release_harness import (SETOSA, VIRGINICA, Process, Store, check_docs_in_binary, free_port, http, need_tool,
                             run, sha256_file)


class ImageTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.store = Store()
        cls.archive = os.path.join(cls.store.dir, "iris.oci.tar")
        r = cls.store.inferd("image", "iris", "-o", cls.archive, "--tag", "iris:1")
        if r.returncode != 0:
            raise RuntimeError(f"image failed: {r.stderr}")
        cls.image_output = r.stdout
        cls.layout = os.path.join(cls.store.dir, "layout")
        with tarfile.open(cls.archive) as t:
            t.extractall(cls.layout)

    @classmethod
    def tearDownClass(cls):
        cls.store.cleanup()

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="inferd-image-test-")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def blob(self, digest):
        algorithm, hexdigest = digest.split(":")
        self.assertEqual(algorithm, "sha256")
        path = os.path.join(self.layout, "blobs", "sha256", hexdigest)
        self.assertEqual(sha256_file(path), hexdigest, f"blob {digest} does not match its name")
        return path

    def manifest_and_config(self):
        with open(os.path.join(self.layout, "index.json")) as f:
            index = json.load(f)
        entry = index["manifests"][0]
        with open(self.blob(entry["digest"])) as f:
            manifest = json.load(f)
        self.assertEqual(os.path.getsize(self.blob(entry["digest"])), entry["size"])
        with open(self.blob(manifest["config"]["digest"])) as f:
            config = json.load(f)
        return index, manifest, config

    def test_layout_digests_and_config(self):
        print(f"\n{self.image_output.strip()}\nOCI archive size: {os.path.getsize(self.archive)} "
              f"bytes ({os.path.getsize(self.archive) / 1048576:.1f} MiB)")
        with open(os.path.join(self.layout, "oci-layout")) as f:
            self.assertEqual(json.load(f), {"imageLayoutVersion": "1.0.0"})
        index, manifest, config = self.manifest_and_config()
        self.assertEqual(index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"],
                         "iris:1")
        self.assertEqual(manifest["mediaType"], "application/vnd.oci.image.manifest.v1+json")
        layer = manifest["layers"][0]
        self.assertEqual(layer["mediaType"], "application/vnd.oci.image.layer.v1.tar+gzip")
        layer_path = self.blob(layer["digest"])
        self.assertEqual(os.path.getsize(layer_path), layer["size"])
        with gzip.open(layer_path) as g:
            diff_id = "sha256:" + hashlib.sha256(g.read()).hexdigest()
        self.assertEqual(config["rootfs"]["diff_ids"], [diff_id])
        self.assertEqual(config["config"]["Entrypoint"], ["/inferd-server", "--host", "0.0.0.0"])
        self.assertIn("8000/tcp", config["config"]["ExposedPorts"])
        self.assertIn("PORT=8000", config["config"]["Env"])
        self.assertEqual(config["config"]["Labels"]["io.inferd.model.sha256"],
                         sha256_file(os.path.join(self.store.model_dir, "model.onnx")))

    def test_same_model_gives_same_image(self):
        again = os.path.join(self.tmp, "again.tar")
        r = self.store.inferd("image", "iris:1", "-o", again, "--tag", "iris:1")
        self.assertEqual(r.returncode, 0, r.stderr)
        with tarfile.open(again) as t:
            index = json.load(t.extractfile("index.json"))
        with open(os.path.join(self.layout, "index.json")) as f:
            self.assertEqual(index, json.load(f))

    def test_skopeo_inspects_archive(self):
        skopeo = need_tool(self, "skopeo")
        r = run([skopeo, "inspect", f"oci-archive:{self.archive}"], timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        info = json.loads(r.stdout)
        self.assertEqual(info["Os"], "linux")
        self.assertEqual(info["Labels"]["io.inferd.model.name"], "iris")
        r = run([skopeo, "inspect", "--config", f"oci-archive:{self.archive}"], timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["config"]["Entrypoint"][0], "/inferd-server")

    def unpack(self):
        umoci = need_tool(self, "umoci")
        bundle = os.path.join(self.tmp, "bundle")
        r = run([umoci, "unpack", "--rootless", "--image", f"{self.layout}:iris:1", bundle],
                timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(os.path.join(bundle, "config.json")) as f:
            runtime = json.load(f)
        self.assertEqual(runtime["process"]["args"], ["/inferd-server", "--host", "0.0.0.0"])
        self.assertIn("PORT=8000", runtime["process"]["env"])
        return os.path.join(bundle, "rootfs")

    def predict(self, argv, port, env):
        server = Process(argv, port, env=env)
        try:
            server.wait_ready()
            status, body = http("POST", server.url("/predict"), {"data": [SETOSA, VIRGINICA]})
            self.assertEqual(status, 200, body)
            self.assertEqual(len(body["prediction"]), 2)
            self.assertGreater(body["prediction"][0][0], 0.5)
            self.assertGreater(body["prediction"][1][2], 0.5)
            check_docs_in_binary(self, server)
        finally:
            server.stop()

    def test_umoci_unpacks_and_entrypoint_serves_in_chroot(self):
        rootfs = self.unpack()
        chroot = need_tool(self, "chroot")
        if os.geteuid() != 0:
            self.skipTest("chroot needs root")
        port = free_port()
        # only the image's files are visible: no /proc, no host libraries
        self.predict([chroot, rootfs, "/inferd-server", "--host", "127.0.0.1"], port,
                     env={"PORT": str(port)})

    def test_entrypoint_serves_through_the_images_own_loader(self):
        rootfs = self.unpack()
        loader = os.path.join(rootfs, "lib64", "ld-linux-x86-64.so.2")
        self.assertTrue(os.path.isfile(loader), os.listdir(rootfs))
        libdirs = sorted({os.path.dirname(os.path.join(d, f)) for d, _, files in os.walk(rootfs)
                          for f in files if ".so" in f})
        port = free_port()
        self.predict([loader, "--library-path", ":".join(libdirs),
                      os.path.join(rootfs, "inferd-server"), "--host", "127.0.0.1"], port,
                     env={"PORT": str(port)})

    def test_layer_holds_exactly_what_the_loader_resolves(self):
        rootfs = self.unpack()
        listed = subprocess.run(["/lib64/ld-linux-x86-64.so.2", "--list",
                                 os.path.join(rootfs, "inferd-server")],
                                capture_output=True, text=True, timeout=30).stdout
        wanted = {line.split("=>")[-1].split("(")[0].strip() for line in listed.splitlines()
                  if "/" in line}
        present = {"/" + os.path.relpath(os.path.join(d, f), rootfs)
                   for d, _, files in os.walk(rootfs) for f in files}
        self.assertEqual(present - {"/inferd-server"}, wanted)


if __name__ == "__main__":
    unittest.main(verbosity=2)
