"""The inventory (src/serve/inventory.c, src/cli/cmd_inventory.c,
src/cli/cmd_version.c): GET /v2/inventory, `inferd inventory [--url]` and
`inferd version --deps` report fields that are present and true — the
sha256 is that of the model file, versions and library versions are not
empty and match what the system reports, the host is this host.

Run with Debian's python: INFERD=build/inferd /usr/bin/python3 tests/store/test_inventory.py
"""
import json
import os
import platform
import shutil
import socket
import subprocess
import unittest

from release_harness import (INFERD, IRIS, Process, Store, free_port, http, run, sha256_file)


def pkg_version(module):
    if not shutil.which("pkg-config"):
        return None
    r = subprocess.run(["pkg-config", "--modversion", module], capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 else None


class InventoryTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.store = Store()
        cls.model_sha = sha256_file(IRIS)
        port = free_port()
        cls.server = Process([INFERD, "serve", "--repository", cls.store.root, "--port", str(port)],
                             port, env=cls.store.env)
        try:
            cls.server.wait_ready()
        except AssertionError:
            cls.server.stop()
            cls.store.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        cls.store.cleanup()

    def check_runtime(self, inv):
        self.assertEqual(inv["host"]["hostname"], socket.gethostname())
        self.assertEqual(inv["host"]["os"]["kernel"], platform.system())
        self.assertEqual(inv["host"]["os"]["release"], platform.release())
        self.assertEqual(inv["host"]["machine"], platform.machine())
        version = run([INFERD, "version"]).stdout.split()[1]
        self.assertEqual(inv["inferd"]["version"], version)
        self.assertTrue(inv["inferd"]["engine_version"])
        self.assertTrue(inv["build"]["compiler"])
        self.assertRegex(inv["process"]["started"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        libraries = {lib["name"]: lib for lib in inv["build"]["libraries"]}
        for name in ("libmicrohttpd", "jansson", "protobuf-c", "glibc", "OpenSSL (libcrypto)",
                     "libcurl", "libarchive"):
            self.assertIn(name, libraries)
            self.assertTrue(libraries[name]["version"], name)
            self.assertTrue(os.path.exists(libraries[name]["file"]), libraries[name])
        for module, name in (("jansson", "jansson"), ("libmicrohttpd", "libmicrohttpd"),
                             ("libprotobuf-c", "protobuf-c")):
            expected = pkg_version(module)
            if expected:
                self.assertEqual(libraries[name]["version"], expected, name)
        self.assertIn(pkg_version("openssl") or "", libraries["OpenSSL (libcrypto)"]["version"])
        self.assertEqual(libraries["glibc"]["version"], platform.libc_ver()[1])

    def check_model(self, model):
        self.assertEqual((model["name"], model["version"]), ("iris", "1"))
        self.assertEqual(model["sha256"], self.model_sha)
        self.assertEqual(model["size"], os.path.getsize(IRIS))
        self.assertEqual(model["task"], "classification")
        self.assertEqual(model["source"]["kind"], "store")
        self.assertIn("iris_svc.onnx", model["source"]["recorded"])
        self.assertEqual(model["opsets"]["ai.onnx.ml"], 1)
        inputs = model["signature"]["inputs"]
        self.assertEqual(inputs[0]["dtype"], "float32")
        self.assertEqual(inputs[0]["shape"][-1], 4)
        self.assertIn("training_environment", model)
        self.assertIn("golden_samples", model)

    def test_server_inventory_fields_are_present_and_true(self):
        status, inv = http("GET", self.server.url("/v2/inventory"))
        self.assertEqual(status, 200, inv)
        self.check_runtime(inv)
        self.assertEqual(inv["process"]["pid"], self.server.proc.pid)
        self.assertEqual(len(inv["models"]), 1)
        model = inv["models"][0]
        self.check_model(model)
        self.assertTrue(model["ready"])
        self.assertGreater(model["load_seconds"], 0)
        self.assertEqual(model["labels"], 3)

    def test_cli_inventory_of_a_server(self):
        r = run([INFERD, "inventory", "--url", self.server.url()])
        self.assertEqual(r.returncode, 0, r.stderr)
        inv = json.loads(r.stdout)
        self.check_model(inv["models"][0])

    def test_cli_inventory_of_the_local_store(self):
        r = run([INFERD, "inventory"], env=self.store.env)
        self.assertEqual(r.returncode, 0, r.stderr)
        inv = json.loads(r.stdout)
        self.check_runtime(inv)
        self.assertEqual(inv["store"], self.store.root)
        self.check_model(inv["models"][0])

    def test_cli_inventory_of_unreachable_server_names_it(self):
        url = f"http://127.0.0.1:{free_port()}"
        r = run([INFERD, "inventory", "--url", url])
        self.assertEqual(r.returncode, 1)
        self.assertIn(f"{url}/v2/inventory", r.stderr)

    def test_version_deps_lists_every_linked_library(self):
        r = run([INFERD, "version", "--deps"])
        self.assertEqual(r.returncode, 0, r.stderr)
        for name in ("libmicrohttpd", "jansson", "protobuf-c", "OpenSSL", "libcurl",
                     "libarchive", "glibc"):
            self.assertIn(name, r.stdout)
        listed = subprocess.run(["ldd", INFERD], capture_output=True, text=True).stdout
        linked = {line.split("=>")[1].split("(")[0].strip() for line in listed.splitlines()
                  if "=>" in line}
        r = run([INFERD, "version", "--deps", "--json"])
        libraries = json.loads(r.stdout)["libraries"]
        files = {lib["file"] for lib in libraries}
        self.assertEqual(linked - files, set(), "linked libraries missing from --deps")
        for lib in libraries:
            if lib["file"] in linked and "libdb" not in lib["file"]:
                self.assertTrue(lib["version"], lib)


if __name__ == "__main__":
    unittest.main(verbosity=2)
