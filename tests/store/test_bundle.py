"""`inferd bundle` — the model-in-image pattern as one executable
(src/store/bundle.c, src/cli/cmd_bundle.c): the bundle serves from a clean
empty folder with nothing else in it, writes nothing there, verifies the
embedded sha256 (a flipped byte or a damaged trailer keeps it from
starting, with a message saying why), still works as a plain inferd when
given a command, and re-bundles itself without growing.

Run with Debian's python: INFERD=build/inferd /usr/bin/python3 tests/store/test_bundle.py
"""
import json
import os
import shutil
import struct
import tempfile
import unittest

from release_harness import (INFERD, IRIS, SETOSA, VIRGINICA, Process, Store, check_docs_in_binary, free_port,
                             http, run, sha256_file)

TRAILER = 7 * 8 + 64 + 16


class BundleTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.store = Store()
        cls.bundle = os.path.join(cls.store.dir, "iris-server")
        r = cls.store.inferd("bundle", "iris:latest", "-o", cls.bundle)
        if r.returncode != 0:
            raise RuntimeError(f"bundle failed: {r.stderr}")
        cls.bundle_output = r.stdout

    @classmethod
    def tearDownClass(cls):
        cls.store.cleanup()

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="inferd-bundle-test-")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def copy_alone(self, source=None):
        """The bundle copied alone into an empty folder."""
        folder = os.path.join(self.tmp, "clean")
        os.mkdir(folder)
        path = os.path.join(folder, "iris-server")
        shutil.copy2(source or self.bundle, path)
        return folder, path

    def start(self, path, folder, args=(), env_port=True):
        port = free_port()
        # no INFERD_HOME, no model variables: only what a bare container has
        env = {"PATH": "/usr/bin:/bin"}
        argv = [path, *args]
        if env_port:
            env["PORT"] = str(port)
        else:
            argv += ["--port", str(port)]
        return Process(argv, port, env=env, cwd=folder)

    def test_bundle_is_executable_and_reports_what_it_holds(self):
        st = os.stat(self.bundle)
        self.assertTrue(st.st_mode & 0o111)
        self.assertEqual(st.st_mode & 0o777, 0o755)
        self.assertIn(sha256_file(IRIS), self.bundle_output)
        self.assertIn("iris:1", self.bundle_output)
        print(f"\nbundle size: {st.st_size} bytes ({st.st_size / 1048576:.1f} MiB)")

    def test_bundle_serves_from_clean_empty_folder(self):
        folder, path = self.copy_alone()
        server = self.start(path, folder)
        try:
            server.wait_ready()
            status, body = http("POST", server.url("/predict"), {"data": [SETOSA, VIRGINICA]})
            self.assertEqual(status, 200, body)
            reference = json.loads(run([INFERD, "predict", IRIS, "--data",
                                        json.dumps([SETOSA, VIRGINICA])]).stdout)
            expected = [[row[k] for k in sorted(row, key=int)]
                        for row in reference["output_probability"]]
            self.assertEqual(len(body["prediction"]), 2)
            for got, want in zip(body["prediction"], expected):
                for g, w in zip(got, want):
                    self.assertAlmostEqual(g, w, places=6)
            status, label = http("POST", server.url("/predict/label"), {"data": [VIRGINICA]})
            self.assertEqual(status, 200, label)
            self.assertIn("virginica", json.dumps(label))
            status, meta = http("GET", server.url("/v2/models/iris"))
            self.assertEqual(status, 200, meta)
            check_docs_in_binary(self, server)
        finally:
            server.stop()
        self.assertEqual(os.listdir(folder), ["iris-server"], "the bundle wrote files")

    def test_bundle_takes_serve_flags(self):
        folder, path = self.copy_alone()
        server = self.start(path, folder, args=["--workers", "1"], env_port=False)
        try:
            server.wait_ready()
            status, body = http("POST", server.url("/predict"), {"data": [SETOSA]})
            self.assertEqual(status, 200, body)
        finally:
            server.stop()

    def test_flipped_byte_in_embedded_model_refuses_to_start(self):
        folder, path = self.copy_alone()
        with open(path, "r+b") as f:
            f.seek(-TRAILER, os.SEEK_END)
            model_offset, model_size = struct.unpack("<QQ", f.read(24)[8:24])
            f.seek(model_offset + model_size // 2)
            byte = f.read(1)
            f.seek(model_offset + model_size // 2)
            f.write(bytes([byte[0] ^ 0x01]))
        server = self.start(path, folder)
        try:
            code = server.wait_exit()
            out = server.output()
        finally:
            server.stop()
        self.assertNotEqual(code, 0)
        self.assertIn("embedded model is damaged", out)
        self.assertIn("sha256", out)
        self.assertIn("refusing to serve", out)

    def test_damaged_trailer_is_reported_not_crashed_on(self):
        folder, path = self.copy_alone()
        with open(path, "r+b") as f:
            f.seek(-TRAILER + 16, os.SEEK_END)  # model_size
            f.write(struct.pack("<Q", 1 << 62))
        r = run([path], cwd=folder, env={"PATH": "/usr/bin:/bin"}, timeout=30)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("damaged bundle trailer", r.stderr)
        self.assertIn("model part", r.stderr)

    def test_command_runs_as_plain_inferd(self):
        r = run([self.bundle, "version"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(r.stdout.startswith("inferd "), r.stdout)

    def test_bundle_from_a_bundle_drops_the_old_payload(self):
        again = os.path.join(self.tmp, "again")
        r = run([self.bundle, "bundle", "iris:1", "-o", again], env=self.store.env)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(os.path.getsize(again), os.path.getsize(self.bundle))

    def test_unknown_model_is_named(self):
        r = self.store.inferd("bundle", "nosuch:3", "-o", os.path.join(self.tmp, "x"))
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("nosuch", r.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "x")))

    def test_plain_inferd_without_arguments_prints_usage(self):
        r = run([INFERD])
        self.assertEqual(r.returncode, 2)
        self.assertIn("usage", r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
