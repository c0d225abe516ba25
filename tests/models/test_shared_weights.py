#!/usr/bin/python3
"""A served model's weights come from one read-only mapping of its file
(src/models/model_version.c maps the file, hashes the mapping and loads
from it with ifd_model_load_mapped), checked on real `inferd serve`
processes on 127.0.0.1:

- two servers of the same file share its weight pages: each one's
  /proc/PID/smaps shows the file's mapping resident and Shared_Clean;
- the sha256 the inventory shows is the file's, and a stored model whose
  bytes no longer match its manifest is still refused;
- a file replaced by rename while served keeps answering from the bytes it
  loaded (the mapping holds the old inode), as the model store and
  repository writers (write to a temporary, then rename) rely on;
- only files nobody may write are mapped (the store writes its models
  read-only): a writable file is read into a private copy, so rewriting it
  in place under the server (cp over it: truncate, then write) neither
  changes its answers nor kills it with SIGBUS.

The model is y = ReduceSum(x * W, axis 1) with W float32 [1024, 1024]
(4 MiB): no operator packs W, and its raw_data is aligned to 64 bytes in
the file (a doc_string pads it), so the engine reads it in place.

Run: INFERD=build/inferd /usr/bin/python3 tests/models/test_shared_weights.py
"""
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "serve"))
from serve_harness import INFERD, SLOW, Server  # noqa: E402

ROWS = 1024
WEIGHT_MIB = ROWS * ROWS * 4 / 2**20


def raw_data_offsets(data):
    """Offsets in a serialized ModelProto of each graph initializer's raw_data."""
    def varint(i):
        value, shift = 0, 0
        while True:
            byte = data[i]
            i += 1
            value |= (byte & 0x7f) << shift
            shift += 7
            if not byte & 0x80:
                return value, i

    def fields(start, end):
        i = start
        while i < end:
            key, i = varint(i)
            wire = key & 7
            if wire == 0:
                _, i = varint(i)
            elif wire == 1:
                i += 8
            elif wire == 5:
                i += 4
            elif wire == 2:
                length, i = varint(i)
                yield key >> 3, i, i + length
                i += length
    offsets = []
    for field, start, end in fields(0, len(data)):
        if field == 7:  # ModelProto.graph
            for gfield, gstart, gend in fields(start, end):
                if gfield == 5:  # GraphProto.initializer
                    offsets += [s for f, s, _ in fields(gstart, gend) if f == 9]
    return offsets


def weighted_sum_model(seed):
    """The model and its W; its W's raw_data lands on 64 bytes in the file."""
    w = np.random.default_rng(seed).normal(size=(ROWS, ROWS)).astype(np.float32)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, ROWS])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [ROWS])
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "w"], ["xw"]),
         helper.make_node("ReduceSum", ["xw", "axes"], ["y"], keepdims=0)],
        f"weighted_sum_{seed}", [x], [y],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.array([1], np.int64), "axes")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    for pad in range(256):
        model.doc_string = " " * pad
        data = model.SerializeToString()
        if raw_data_offsets(data)[0] % 64 == 0:
            return data, w
    raise AssertionError("could not align W's raw_data")


def mapping_mib(pid, path):
    """Rss and Shared_Clean (MiB) of process pid's mappings of path."""
    real = os.path.realpath(path)
    rss = shared = 0.0
    inside = False
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            head = line.split()[0]
            if "-" in head and not head.endswith(":"):
                inside = line.rstrip("\n").endswith(" " + real)
            elif inside and head == "Rss:":
                rss += int(line.split()[1]) / 1024
            elif inside and head == "Shared_Clean:":
                shared += int(line.split()[1]) / 1024
    return rss, shared


class SharedWeightsTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="inferd-shared-weights-")
        self.servers = []

    def tearDown(self):
        for srv in self.servers:
            srv.kill()
            srv.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def write_model(self, name, seed, writable=False):
        data, w = weighted_sum_model(seed)
        path = os.path.join(self.tmp, name)
        with open(path, "wb") as f:
            f.write(data)
            # written back, its page-cache pages are clean: two processes'
            # mappings then count them as Shared_Clean (Shared_Dirty before)
            os.fsync(f.fileno())
        if not writable:
            os.chmod(path, 0o444)  # servers map only files nobody may rewrite
        return path, data, w

    def serve(self, path):
        srv = Server([path, "--name", "m", "--workers", "2"])
        self.servers.append(srv)
        return srv

    def check_answer(self, srv, w):
        x = np.linspace(-1, 1, ROWS, dtype=np.float32)
        r = srv.post("/v2/models/m/infer", {"inputs": [
            {"name": "x", "shape": [1, ROWS], "datatype": "FP32", "data": x.tolist()}]})
        self.assertEqual(r.status, 200, r.body[:500])
        got = np.array(r.json()["outputs"][0]["data"], dtype=np.float32)
        np.testing.assert_allclose(got, (x * w).sum(axis=1), rtol=1e-4, atol=1e-4)

    def test_two_servers_of_one_file_share_its_weight_pages(self):
        path, data, w = self.write_model("model.onnx", 1)
        first = self.serve(path)
        second = self.serve(path)
        for srv in (first, second):
            self.check_answer(srv, w)
            models = srv.get("/v2/inventory").json()["models"]
            self.assertEqual([m["sha256"] for m in models if m["name"] == "m"],
                             [hashlib.sha256(data).hexdigest()])
        # every session's warm-up read all of W: both processes have it
        # resident, from the same page-cache pages
        for srv in (first, second):
            rss, shared = mapping_mib(srv.proc.pid, path)
            print(f"\n  pid {srv.proc.pid}: {os.path.basename(path)} mapping: {rss:.1f} MiB resident, "
                  f"{shared:.1f} MiB Shared_Clean (W is {WEIGHT_MIB:.1f} MiB)", file=sys.stderr)
            self.assertGreaterEqual(rss, WEIGHT_MIB * 0.95)
            self.assertGreaterEqual(shared, WEIGHT_MIB * 0.95)

    def test_file_renamed_over_keeps_serving_the_loaded_bytes(self):
        path, _, w = self.write_model("model.onnx", 2)
        srv = self.serve(path)
        self.check_answer(srv, w)
        # what the store and careful writers do: a new file, then rename
        newer, _, w_newer = self.write_model("newer.onnx", 3)
        os.replace(newer, path)
        self.assertFalse(np.allclose(w, w_newer))
        for _ in range(3):
            self.check_answer(srv, w)
        self.assertIsNone(srv.proc.poll())

    def test_writable_file_is_copied_so_rewriting_it_in_place_is_harmless(self):
        path, data, w = self.write_model("model.onnx", 5, writable=True)
        srv = self.serve(path)
        self.check_answer(srv, w)
        rss, _ = mapping_mib(srv.proc.pid, path)
        self.assertEqual(rss, 0.0, "a writable model file must not be mapped")
        # cp over it: truncated to nothing, then other weights written
        other, _ = weighted_sum_model(6)
        with open(path, "r+b") as f:
            f.truncate(0)
            f.flush()
            os.fsync(f.fileno())
            for _ in range(3):
                self.check_answer(srv, w)
            f.write(other)
        for _ in range(3):
            self.check_answer(srv, w)
        self.assertIsNone(srv.proc.poll())

    def test_stored_model_whose_bytes_changed_is_refused(self):
        path, _, _ = self.write_model("model.onnx", 4)
        store = os.path.join(self.tmp, "store")
        run = subprocess.run([INFERD, "models", "--store", store, "import", path, "--name", "m"],
                             capture_output=True, text=True, timeout=120 * SLOW)
        self.assertEqual(run.returncode, 0, run.stderr)
        stored = [os.path.join(d, f) for d, _, files in os.walk(store) for f in files
                  if f.endswith(".onnx") and "/.tmp" not in d]
        self.assertEqual(len(stored), 1, stored)
        self.assertEqual(os.stat(stored[0]).st_mode & 0o222, 0, "the store writes models read-only")
        # one flipped byte inside W: the file still parses, the hash differs
        os.chmod(stored[0], 0o644)
        with open(stored[0], "r+b") as f:
            f.seek(os.path.getsize(stored[0]) // 2)
            byte = f.read(1)
            f.seek(-1, os.SEEK_CUR)
            f.write(bytes([byte[0] ^ 1]))
        r = subprocess.run([INFERD, "serve", "--repository", store, "--port", "0"],
                           capture_output=True, text=True, timeout=60 * SLOW)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(f"{stored[0]}: sha256 is ", r.stdout + r.stderr)
        self.assertIn("the manifest says", r.stdout + r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
