#!/usr/bin/python3
"""Live model management (src/models) driven through a real `inferd serve`
on 127.0.0.1: zero-downtime swaps under a real load generator (wrk) in
explicit and poll mode, failed loads that keep the old version serving,
canary splits, sticky users, the book's A/B "mode" field, shadow
comparison, automatic rollback, Triton's repository API as Triton's client
calls it, the admin token, `inferd ctl`, and every bad input the issue
lists. Real ONNX files, written by the tests with onnx.helper.

Run: INFERD=build/inferd /usr/bin/python3 tests/models/test_live_models.py
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from live_harness import (AUTH, ROW, SLOW, TOKEN, CheckedLoad, Server, TritonStyleClient,  # noqa: E402
                          classifier, expected_probabilities, failing_classifier, infer_body, large_classifier,
                          save, slow_classifier, write_bytes_atomically, write_config)
from serve_harness import INFERD  # noqa: E402

SWAPS = 200 if SLOW == 1 else 30


class LiveModelTestCase(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="inferd-live-")
        self.repo = os.path.join(self.tmp, "repo")
        self.servers = []
        self.params = {}

    def tearDown(self):
        for srv in self.servers:
            srv.kill()
            srv.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def add_version(self, name, version, seed=None, model=None):
        if model is None:
            model, self.params[(name, version)] = classifier(seed if seed is not None else version)
        save(model, os.path.join(self.repo, name, str(version), "model.onnx"))

    def start(self, *extra, control="explicit", token=True, workers=2):
        args = ["--repository", self.repo, "--model-control", control, "--workers", str(workers), *extra]
        if token:
            args += ["--admin-token", TOKEN]
        srv = Server(args)
        self.servers.append(srv)
        return srv

    def stop_cleanly(self, srv):
        self.assertEqual(srv.stop(), 0, srv.log()[-4000:])
        self.assertIsNone(srv.sanitizer_report())

    def load(self, srv, name, config=None):
        body = {"parameters": {"config": json.dumps(config)}} if config is not None else {}
        return srv.post(f"/v2/repository/models/{name}/load", body, headers=AUTH, timeout=120)

    def index(self, srv):
        r = srv.post("/v2/repository/index", {}, headers=AUTH)
        self.assertEqual(r.status, 200, r)
        return r.json()

    def row_state(self, srv, name, version):
        for row in self.index(srv):
            if row["name"] == name and row.get("version") == str(version):
                return row
        return None

    def infer(self, srv, name="m", version=None, rows=ROW, headers=None):
        path = f"/v2/models/{name}" + (f"/versions/{version}" if version else "") + "/infer"
        return srv.post(path, infer_body(rows), headers=headers)

    def answers(self, srv, versions):
        """The exact answer text of each version, checked against numpy."""
        expected = {}
        for v in versions:
            r = self.infer(srv, version=v)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.headers["x-model-version"], f"m:{v}")
            got = np.array(r.json()["outputs"][0]["data"], dtype=np.float32)
            np.testing.assert_allclose(got, expected_probabilities(self.params[("m", v)], ROW).ravel(), rtol=1e-5)
            expected[f"m:{v}"] = r.body.decode()
        return expected

    def wait_for(self, condition, what, timeout=20):
        deadline = time.monotonic() + timeout * SLOW
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(0.01)
        self.fail(f"timed out waiting for {what}")

    def in_flight(self, srv):
        text = srv.get("/metrics").body.decode()
        return float(re.search(r"^inferd_requests_in_flight (\S+)", text, re.M).group(1))

    def served_versions(self, srv):
        r = srv.get("/v2/models/m")
        return sorted(r.json()["versions"]) if r.status == 200 else None

    def assert_clean_load(self, result, swaps):
        detail = f"{result['first_bad']}\n{result['output'][-1500:]}"
        self.assertEqual(result["bad"], 0, detail)
        for kind in ("connect", "read", "write", "status", "timeout"):
            self.assertEqual(result[kind], 0, f"{kind} errors: {detail}")
        self.assertGreater(result["by_version"].get("m:1", 0), 0, detail)
        self.assertGreater(result["by_version"].get("m:2", 0), 0, detail)
        print(f"\n  {swaps} swaps under load: {result['ok']} answers, 0 failed, "
              f"{result['ok'] / result['seconds']:.0f} req/s, by version {result['by_version']}", file=sys.stderr)


class SwapTest(LiveModelTestCase):
    def test_explicit_swaps_under_full_load_fail_no_request(self):
        self.add_version("m", 1)
        self.add_version("m", 2)
        os.makedirs(os.path.join(self.repo, "m", "3"))
        with open(os.path.join(self.repo, "m", "3", "model.onnx"), "wb") as f:
            f.write(b"\x08\x07\x12\x04this is not an onnx model")
        write_config(self.repo, "m", {"version_policy": {"specific": [1, 2]}})
        srv = self.start()
        expected = self.answers(srv, [1, 2])
        self.assertNotEqual(expected["m:1"], expected["m:2"])
        self.assertEqual(self.load(srv, "m", {"version_policy": {"specific": [1]}}).status, 200)
        load = CheckedLoad(srv, "/v2/models/m/infer", infer_body(), expected)
        time.sleep(0.3 * SLOW)
        for i in range(SWAPS):
            target = 2 if i % 2 == 0 else 1
            r = self.load(srv, "m", {"version_policy": {"specific": [target]}})
            self.assertEqual(r.status, 200, r)
            self.assertEqual(self.served_versions(srv), [str(target)])
            if i == SWAPS // 2:
                # a load that fails in the middle keeps the old version serving
                bad = self.load(srv, "m", {"version_policy": {"specific": [3]}})
                self.assertEqual(bad.status, 400, bad)
                self.assertIn("version 3", bad.json()["error"])
                self.assertEqual(self.served_versions(srv), [str(target)])
        self.assertTrue(load.running(), "wrk ended before the swaps did")
        time.sleep(0.2 * SLOW)
        result = load.stop()
        self.assert_clean_load(result, SWAPS)
        row = self.row_state(srv, "m", 3)
        self.assertEqual(row["state"], "UNAVAILABLE")
        self.assertTrue(row["reason"], row)
        metrics = srv.get("/metrics").body.decode()
        self.assertRegex(metrics, r'inferd_model_loads_total\{model="m",result="failed"\} 1\b')
        ok = int(re.search(r'inferd_model_loads_total\{model="m",result="ok"\} (\d+)', metrics).group(1))
        self.assertGreaterEqual(ok, SWAPS + 2)
        self.stop_cleanly(srv)

    def test_poll_mode_swaps_under_full_load_fail_no_request(self):
        self.add_version("m", 1)
        self.add_version("m", 2)
        write_config(self.repo, "m", {"version_policy": {"specific": [1]}})
        srv = self.start("--poll-interval", "0.02", control="poll")
        self.assertEqual(self.served_versions(srv), ["1"])
        expected = {"m:1": self.answers(srv, [1])["m:1"]}
        write_config(self.repo, "m", {"version_policy": {"all": True}})
        self.wait_for(lambda: self.served_versions(srv) == ["1", "2"], "version 2 to load")
        expected.update(self.answers(srv, [2]))
        write_config(self.repo, "m", {"version_policy": {"specific": [1]}})
        self.wait_for(lambda: self.served_versions(srv) == ["1"], "version 2 to unload")
        load = CheckedLoad(srv, "/v2/models/m/infer", infer_body(), expected)
        time.sleep(0.3 * SLOW)
        for i in range(SWAPS):
            target = 2 if i % 2 == 0 else 1
            write_config(self.repo, "m", {"version_policy": {"specific": [target]}})
            self.wait_for(lambda: self.served_versions(srv) == [str(target)], f"swap {i} to version {target}")
            if i == SWAPS // 2:
                # a half-written version appears: never loaded; the old one serves
                good = classifier(3)[0].SerializeToString()
                os.makedirs(os.path.join(self.repo, "m", "3"))
                with open(os.path.join(self.repo, "m", "3", "model.onnx"), "wb") as f:
                    f.write(good[: len(good) // 2])
                write_config(self.repo, "m", {"version_policy": {"specific": [3]}})
                self.wait_for(lambda: (self.row_state(srv, "m", 3) or {}).get("state") == "UNAVAILABLE",
                              "the half-written version to be refused")
                self.assertEqual(self.served_versions(srv), [str(target)])
                shutil.rmtree(os.path.join(self.repo, "m", "3"))
                write_config(self.repo, "m", {"version_policy": {"specific": [target]}})
        self.assertTrue(load.running(), "wrk ended before the swaps did")
        time.sleep(0.2 * SLOW)
        result = load.stop()
        self.assert_clean_load(result, SWAPS)
        self.stop_cleanly(srv)

    def test_poll_loads_new_versions_and_unloads_removed_ones(self):
        self.add_version("m", 1)
        srv = self.start("--poll-interval", "0.05", control="poll")
        self.add_version("m", 2)
        self.wait_for(lambda: self.served_versions(srv) == ["1", "2"], "version 2 to appear")
        r = self.infer(srv)
        self.assertEqual(r.headers["x-model-version"], "m:2")  # the newest serves by default
        shutil.rmtree(os.path.join(self.repo, "m", "1"))
        self.wait_for(lambda: self.served_versions(srv) == ["2"], "version 1 to go")
        # a version whose manifest records another sha256 is a partial copy: refused
        self.add_version("m", 3)
        write_bytes_atomically(os.path.join(self.repo, "m", "3", "model.json"),
                               json.dumps({"sha256": "0" * 64}).encode())
        self.wait_for(lambda: (self.row_state(srv, "m", 3) or {}).get("state") == "UNAVAILABLE", "v3 refused")
        self.assertIn("sha256", self.row_state(srv, "m", 3)["reason"])
        self.assertEqual(self.served_versions(srv), ["2"])
        # explicit calls are refused in poll mode, as Triton refuses them
        r = self.load(srv, "m")
        self.assertEqual(r.status, 400)
        self.assertIn("poll", r.json()["error"])
        shutil.rmtree(os.path.join(self.repo, "m"))
        self.wait_for(lambda: self.infer(srv).status == 503, "the removed model to stop serving")
        self.stop_cleanly(srv)

    def test_unload_while_requests_run_finishes_them(self):
        save(slow_classifier(layers=1500), os.path.join(self.repo, "slow", "1", "model.onnx"))
        srv = self.start(workers=1)

        def request(rows):
            return {"inputs": [{"name": "x", "shape": [rows, 256], "datatype": "FP32", "data": [0.01] * (rows * 256)}]}
        # about 6 GFLOP for 32 rows; sized from a timed run so that each of the
        # six takes ~0.4 s on this machine as the engine is now (faster kernels
        # must not shrink the window in which the unload lands mid-queue)
        t0 = time.monotonic()
        self.assertEqual(srv.post("/v2/models/slow/infer", request(32), timeout=120).status, 200)
        rows = int(min(max(32 * 0.4 / max(time.monotonic() - t0, 1e-3), 32), 512))
        body = request(rows)
        results = []

        def client():
            status = srv.post("/v2/models/slow/infer", body, timeout=120).status
            results.append((status, time.monotonic()))

        threads = [threading.Thread(target=client) for _ in range(6)]
        for t in threads:
            t.start()
        self.wait_for(lambda: self.in_flight(srv) >= 6 + 1, "six requests in flight")
        time.sleep(0.2 * SLOW)  # their bodies (50-800 kB) have arrived: the requests are accepted
        r = srv.post("/v2/repository/models/slow/unload", {}, headers=AUTH)
        self.assertEqual(r.status, 200, r)
        unloaded_at = time.monotonic()
        for t in threads:
            t.join(120)
        self.assertEqual([status for status, _ in results], [200] * 6)
        # the test is only worth something if some of them ran after the unload
        self.assertGreater(max(done for _, done in results), unloaded_at)
        r = srv.post("/v2/models/slow/infer", body)
        self.assertEqual(r.status, 503)
        self.assertIn("not loaded", r.json()["error"])
        self.assertEqual(self.index(srv)[0]["state"], "UNAVAILABLE")
        self.assertFalse(TritonStyleClient(srv, AUTH).is_model_ready("slow"))
        self.stop_cleanly(srv)


class TrafficTest(LiveModelTestCase):
    def test_canary_split_lands_within_two_percent(self):
        self.add_version("m", 1)
        self.add_version("m", 2)
        write_config(self.repo, "m", {"traffic": {"1": 90, "2": 10}})
        srv = self.start()
        counts = {"m:1": 0, "m:2": 0}
        conn = srv.connection()
        body = json.dumps(infer_body())
        for _ in range(5000):
            conn.request("POST", "/v2/models/m/infer", body=body, headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            data = json.loads(r.read())
            self.assertEqual(r.status, 200)
            who = r.getheader("X-Model-Version")
            self.assertEqual(who, f"m:{data['model_version']}")
            counts[who] += 1
        conn.close()
        share = counts["m:2"] / 5000
        self.assertLess(abs(share - 0.10), 0.02, counts)
        metrics = srv.get("/metrics").body.decode()
        self.assertIn('inferd_model_traffic_weight{model="m",version="2"} 10', metrics)
        self.stop_cleanly(srv)

    def test_sticky_header_keeps_each_user_on_one_version(self):
        self.add_version("m", 1)
        self.add_version("m", 2)
        write_config(self.repo, "m", {"traffic": {"1": 50, "2": 50}, "sticky": "X-User-ID"})
        srv = self.start()
        seen = {}
        for user in range(100):
            for _ in range(4):
                r = self.infer(srv, headers={"X-User-ID": f"user-{user}"})
                seen.setdefault(user, set()).add(r.headers["x-model-version"])
        self.assertTrue(all(len(v) == 1 for v in seen.values()), seen)
        on_two = sum(1 for v in seen.values() if v == {"m:2"})
        self.assertTrue(25 <= on_two <= 75, on_two)
        self.stop_cleanly(srv)

    def test_book_api_names_the_answering_model_in_mode(self):
        self.add_version("m", 1)
        self.add_version("m", 2)
        write_config(self.repo, "m", {"traffic": {"1": 60, "2": 40}, "mode_field": True})
        srv = self.start()
        modes = set()
        for _ in range(60):
            r = srv.post("/predict", {"data": ROW})
            self.assertEqual(r.status, 200, r)
            modes.add(r.json()["mode"])
            self.assertEqual(r.json()["mode"], r.headers["x-model-version"])
        self.assertEqual(modes, {"m:1", "m:2"})
        # TF Serving's API names the version in the header too
        r = srv.post("/v1/models/m:predict", {"instances": ROW})
        self.assertIn(r.headers["x-model-version"], {"m:1", "m:2"})
        self.stop_cleanly(srv)

    def test_ctl_traffic_moves_the_split_and_status_shows_it(self):
        self.add_version("m", 1)
        self.add_version("m", 2)
        srv = self.start()
        url = f"http://127.0.0.1:{srv.port}"
        run = lambda *a, env=None: subprocess.run([INFERD, "ctl", "--url", url, *a], capture_output=True,  # noqa: E731
                                                  text=True, timeout=60, env={**os.environ, **(env or {})})
        r = run("--token", TOKEN, "traffic", "m", "1=0", "2=100")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(all(self.infer(srv).headers["x-model-version"] == "m:2" for _ in range(20)))
        r = run("traffic", "m", "1=100", "2=0", env={"INFERD_ADMIN_TOKEN": TOKEN})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(all(self.infer(srv).headers["x-model-version"] == "m:1" for _ in range(20)))
        r = run("--token", TOKEN, "traffic", "m", "1=50", "2=40")
        self.assertEqual(r.returncode, 1)
        self.assertIn("add up to 100", r.stderr)
        r = run("--token", TOKEN, "status", "m")
        self.assertEqual(r.returncode, 0, r.stderr)
        status = json.loads(r.stdout)
        self.assertEqual([v["weight"] for v in status["versions"]], [100, 0])
        r = run("--token", TOKEN, "index")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"m\s+1\s+READY")
        r = run("--token", "wrong-token-wrong-token", "index")
        self.assertEqual(r.returncode, 1)
        self.assertIn("refused the admin token (HTTP 403)", r.stderr)
        r = run("index")
        self.assertEqual(r.returncode, 1)
        self.assertIn("401", r.stderr)
        config = os.path.join(self.tmp, "config.json")
        with open(config, "w") as f:
            json.dump({"version_policy": {"specific": [2]}}, f)
        r = run("--token", TOKEN, "load", "m", "--config", config)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.served_versions(srv), ["2"])
        r = run("--token", TOKEN, "unload", "m")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.infer(srv).status, 503)
        srv.stop()
        r = run("--token", TOKEN, "index")
        self.assertEqual(r.returncode, 1)
        self.assertIn("cannot reach the server", r.stderr)


class ShadowRollbackTest(LiveModelTestCase):
    def metric(self, srv, pattern):
        m = re.search(pattern, srv.get("/metrics").body.decode())
        return int(m.group(1)) if m else 0

    def test_shadow_copies_are_compared_and_never_answer(self):
        self.add_version("m", 1)
        save(classifier(1)[0], os.path.join(self.repo, "m", "2", "model.onnx"))  # the same answers
        self.add_version("m", 3, seed=33)  # other answers
        write_config(self.repo, "m", {"traffic": {"1": 100}, "shadow": {"version": "2", "percent": 100}})
        srv = self.start()
        rows = np.random.default_rng(0).uniform(0, 8, size=(200, 4)).round(2).tolist()
        for row in rows:
            r = self.infer(srv, rows=[row])
            self.assertEqual(r.headers["x-model-version"], "m:1")
        agree = r'inferd_shadow_comparisons_total\{model="m",version="2",result="agree"\} (\d+)'
        self.wait_for(lambda: self.metric(srv, agree) == 200, "200 agreeing shadow comparisons")
        # a shadow that answers differently is counted as disagreeing
        self.assertEqual(self.load(srv, "m", {"traffic": {"1": 100}, "shadow": {"version": "3"}}).status, 200)
        for row in rows[:100]:
            self.infer(srv, rows=[row])
        disagree = r'inferd_shadow_comparisons_total\{model="m",version="3",result="disagree"\} (\d+)'
        agree3 = r'inferd_shadow_comparisons_total\{model="m",version="3",result="agree"\} (\d+)'
        self.wait_for(lambda: self.metric(srv, disagree) + self.metric(srv, agree3) == 100, "100 comparisons")
        self.assertGreater(self.metric(srv, disagree), 10)
        # every live-model metric passes Prometheus's own linter
        promtool = shutil.which("promtool")
        self.assertIsNotNone(promtool, "promtool (Debian package prometheus; scripts/deps.sh test)")
        text = srv.get("/metrics").body
        for name in ("inferd_model_loads_total", "inferd_model_state", "inferd_model_traffic_weight",
                     "inferd_shadow_comparisons_total", "inferd_shadow_copies_dropped_total",
                     "inferd_model_rollbacks_total"):
            self.assertIn(name.encode(), text)
        proc = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, timeout=60)
        self.assertEqual(proc.returncode, 0, proc.stdout.decode() + proc.stderr.decode())
        self.assertEqual(proc.stdout.strip() + proc.stderr.strip(), b"", "promtool lint findings")
        self.stop_cleanly(srv)

    def test_error_rate_rolls_the_canary_back(self):
        self.add_version("m", 1)
        self.add_version("m", 2, model=failing_classifier())
        write_config(self.repo, "m", {"traffic": {"1": 50, "2": 50},
                                      "rollback": {"max_error_rate": 0.1, "window": 20}})
        srv = self.start()
        bad_row = [[7.2, 3.0, 5.8, 1.6]]
        failures = 0
        for _ in range(200):
            r = self.infer(srv, rows=bad_row)
            failures += r.status != 200
        self.assertGreaterEqual(failures, 20)
        self.assertLessEqual(failures, 21)  # the window, then no more
        after = [self.infer(srv, rows=bad_row) for _ in range(50)]
        self.assertTrue(all(r.status == 200 and r.headers["x-model-version"] == "m:1" for r in after))
        row = self.row_state(srv, "m", 2)
        self.assertEqual(row["state"], "READY")
        self.assertIn("error rate", row["reason"])
        self.assertEqual(self.metric(srv, r'inferd_model_rollbacks_total\{model="m"\} (\d+)'), 1)
        self.assertIn('inferd_model_traffic_weight{model="m",version="2"} 0', srv.get("/metrics").body.decode())
        self.assertIn("rollback", srv.log())
        self.stop_cleanly(srv)

    def test_low_shadow_agreement_rolls_the_shadow_back(self):
        self.add_version("m", 1)
        self.add_version("m", 2, seed=99)
        write_config(self.repo, "m", {"traffic": {"1": 100}, "shadow": {"version": "2"},
                                      "rollback": {"min_agreement": 0.95, "window": 30}})
        srv = self.start()
        rows = np.random.default_rng(1).uniform(0, 8, size=(120, 4)).round(2).tolist()
        for row in rows:
            self.assertEqual(self.infer(srv, rows=[row]).status, 200)
        self.wait_for(lambda: "shadow agreement" in ((self.row_state(srv, "m", 2) or {}).get("reason") or ""),
                      "the shadow to be rolled back")
        status = srv.get("/v2/repository/models/m/status", headers=AUTH).json()
        self.assertNotIn("shadow", status["config"])
        self.assertEqual(status["rollbacks"], 1)
        self.stop_cleanly(srv)


class RepositoryApiTest(LiveModelTestCase):
    def test_triton_client_calls_work_unchanged(self):
        self.add_version("m", 1)
        self.add_version("m", 2)
        self.add_version("other", 1)
        srv = self.start()
        client = TritonStyleClient(srv, AUTH)
        index = client.get_model_repository_index()
        self.assertIn({"name": "m", "version": "1", "state": "READY", "reason": ""}, index)
        self.assertIn({"name": "other", "version": "1", "state": "READY", "reason": ""}, index)
        self.assertTrue(client.is_model_ready("m"))
        self.assertTrue(client.is_model_ready("m", "1"))
        client.unload_model("other")
        self.assertFalse(client.is_model_ready("other"))
        self.assertIn({"name": "other", "version": "1", "state": "UNAVAILABLE", "reason": "unloaded"},
                      client.get_model_repository_index())
        client.load_model("other")
        self.assertTrue(client.is_model_ready("other"))
        client.load_model("m", config=json.dumps({"version_policy": {"specific": [1]}}))
        self.assertFalse(client.is_model_ready("m", "2"))
        self.assertTrue(client.is_model_ready("m", "1"))
        ready = srv.post("/v2/repository/index", {"ready": True}, headers=AUTH).json()
        self.assertTrue(all(row["state"] == "READY" for row in ready))
        with self.assertRaisesRegex(RuntimeError, "not in the repository"):
            client.load_model("missing")
        self.assertIn("model_repository", srv.get("/v2").json()["extensions"])
        self.stop_cleanly(srv)

    def test_admin_token_guards_every_repository_call(self):
        self.add_version("m", 1)
        srv = self.start()
        for path in ["/v2/repository/index", "/v2/repository/models/m/load", "/v2/repository/models/m/unload"]:
            r = srv.post(path, {})
            self.assertEqual(r.status, 401, r)
            self.assertIn("Bearer", r.headers["www-authenticate"])
            r = srv.post(path, {}, headers={"Authorization": "Bearer not-the-token"})
            self.assertEqual(r.status, 403, r)
        self.assertEqual(srv.get("/v2/repository/status", headers={"Authorization": "Basic x"}).status, 401)
        self.assertIn("admin call refused", srv.log())
        self.assertEqual(self.infer(srv).status, 200)
        self.stop_cleanly(srv)
        off = self.start(token=False)
        r = off.post("/v2/repository/index", {}, headers=AUTH)
        self.assertEqual(r.status, 404)
        self.assertIn("--admin-token", r.json()["error"])
        self.stop_cleanly(off)

    def test_admin_calls_are_logged_with_the_caller(self):
        self.add_version("m", 1)
        srv = self.start()
        self.assertEqual(self.load(srv, "m").status, 200)
        self.assertRegex(srv.log(), r"admin call.*load.*127\.0\.0\.1:\d+")
        self.stop_cleanly(srv)


class BadInputTest(LiveModelTestCase):
    def setUp(self):
        super().setUp()
        self.add_version("m", 1)
        self.srv = self.start()

    def assert_refused(self, config_or_name, status, fragment, name="m"):
        r = self.load(self.srv, name, config_or_name)
        self.assertEqual(r.status, status, r)
        self.assertIn(fragment, r.json()["error"])
        self.assertEqual(self.infer(self.srv).status, 200)  # what served still serves

    def put(self, version, data):
        path = os.path.join(self.repo, "m", str(version), "model.onnx")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)

    def test_corrupt_truncated_and_unsupported_models_are_refused(self):
        self.put(2, b"garbage that is not protobuf at all \xff\xff\xff")
        self.assert_refused({"version_policy": {"specific": [2]}}, 400, "version 2")
        good = classifier(5)[0].SerializeToString()
        self.put(3, good[: len(good) - 40])
        self.assert_refused({"version_policy": {"specific": [3]}}, 400, "version 3")
        model = classifier(6)[0]
        model.graph.node[1].op_type = "NoSuchOperator"
        self.put(4, model.SerializeToString())
        self.assert_refused({"version_policy": {"specific": [4]}}, 400, "NoSuchOperator")
        self.assertEqual(self.row_state(self.srv, "m", 4)["state"], "UNAVAILABLE")
        self.assertEqual(self.row_state(self.srv, "m", 1)["state"], "READY")

    def test_golden_samples_that_no_longer_match_are_refused(self):
        # the store records golden samples at import; then the file is replaced
        store = os.path.join(self.tmp, "store")
        src = os.path.join(self.tmp, "a.onnx")
        model, params = classifier(10)
        save(model, src)
        rows = np.random.default_rng(3).uniform(0, 8, size=(4, 4)).astype(np.float32)
        samples = os.path.join(self.tmp, "samples.json")
        with open(samples, "w") as f:
            json.dump({"samples": [{"inputs": {"x": rows.tolist()},
                                    "outputs": {"probabilities": expected_probabilities(params, rows).tolist()}}]}, f)
        r = subprocess.run([INFERD, "models", "--store", store, "import", src, "--name", "g", "--version", "1",
                            "--samples", samples], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        manifest_path = [os.path.join(d, f) for d, _, fs in os.walk(store) for f in fs if f == "model.json"][0]
        with open(manifest_path) as f:
            manifest = json.load(f)
        self.assertTrue(manifest["golden_samples"])
        # the unchanged model with its manifest loads: the check is real
        with open(src, "rb") as f:
            self.put(3, f.read())
        write_bytes_atomically(os.path.join(self.repo, "m", "3", "model.json"), json.dumps(manifest).encode())
        self.assertEqual(self.load(self.srv, "m", {"version_policy": {"specific": [3]}}).status, 200)
        other = classifier(11)[0].SerializeToString()
        import hashlib
        manifest["sha256"] = hashlib.sha256(other).hexdigest()
        self.put(2, other)
        write_bytes_atomically(os.path.join(self.repo, "m", "2", "model.json"), json.dumps(manifest).encode())
        self.assert_refused({"version_policy": {"specific": [2]}}, 400, "golden samples")

    def test_bad_configs_are_refused_with_the_field(self):
        self.add_version("m", 2)
        r = self.srv.post("/v2/repository/models/m/load", {"parameters": {"config": "{\"traffic\": "}},
                          headers=AUTH)
        self.assertEqual(r.status, 400)
        self.assertIn("line 1", r.json()["error"])
        self.assert_refused({"traffic": {"1": 50, "2": 40}}, 400, "add up to 100")
        self.assert_refused({"traffic": {"1": 90, "7": 10}}, 400, "traffic names version 7")
        self.assert_refused({"version_policy": {"specific": [9]}}, 400, "selects none")
        self.assert_refused({"shadow": {"version": "8"}}, 400, "shadow.version 8")
        self.assert_refused({"rollback": {"min_agreement": 2}}, 400, "rollback.min_agreement")
        self.assert_refused({"frobnicate": 1}, 400, "frobnicate")
        self.assert_refused({"graph_opt": "fast"}, 400, "graph_opt")
        write_bytes_atomically(os.path.join(self.repo, "m", "config.json"), b"{ not json")
        self.assert_refused(None, 400, "config.json")
        r = self.srv.post("/v2/repository/models/m/load", {"parameters": {"file:1/model.onnx": "AAAA"}},
                          headers=AUTH)
        self.assertEqual(r.status, 400)
        self.assertIn("cannot be sent", r.json()["error"])

    def test_config_graph_opt_loads_and_serves(self):
        for level in ("none", "all"):
            r = self.load(self.srv, "m", {"graph_opt": level})
            self.assertEqual(r.status, 200, r)
            self.assertEqual(self.infer(self.srv).status, 200)

    def test_names_never_reach_outside_the_repository(self):
        outside = os.path.join(self.tmp, "outside")
        save(classifier(20)[0], os.path.join(outside, "5", "model.onnx"))
        os.symlink(outside, os.path.join(self.repo, "escape"))
        os.symlink(os.path.join(outside, "5"), os.path.join(self.repo, "m", "5"))
        self.assert_refused(None, 404, "not in the repository", name="escape")
        r = self.load(self.srv, "m", {"version_policy": {"specific": [5]}})
        self.assertEqual(r.status, 400)  # the symlinked version is not a version of m
        self.assertIsNone(self.row_state(self.srv, "m", 5))
        for name in ["..", ".hidden", "a%2Fb"]:
            r = self.srv.post(f"/v2/repository/models/{name}/load", {}, headers=AUTH)
            self.assertIn(r.status, (400, 404), (name, r))
        self.assert_refused(None, 404, "not in the repository", name="unknown")

    def test_two_loads_of_one_model_at_once_get_clear_answers(self):
        save(large_classifier(40), os.path.join(self.repo, "big", "1", "model.onnx"))
        save(large_classifier(40), os.path.join(self.repo, "big", "2", "model.onnx"))
        statuses = []
        configs = [{"version_policy": {"specific": [1]}}, {"version_policy": {"specific": [2]}}]
        threads = [threading.Thread(target=lambda c=c: statuses.append(self.load(self.srv, "big", c).status))
                   for c in configs]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        self.assertTrue(set(statuses) <= {200, 409} and 200 in statuses, statuses)
        self.assertEqual(self.infer(self.srv, name="big").status, 200)

    def test_bad_flags_are_refused(self):
        for args, fragment in [(["--poll-interval", "-1"], "--poll-interval"),
                               (["--model-control", "sometimes"], "--model-control"),
                               (["--admin-token", "short"], "16 characters")]:
            r = subprocess.run([INFERD, "serve", "--repository", self.repo, *args], capture_output=True, text=True,
                               timeout=30)
            self.assertEqual(r.returncode, 1)
            self.assertIn(fragment, r.stderr)
        r = subprocess.run([INFERD, "serve", os.path.join(self.repo, "m", "1", "model.onnx"), "--model-control",
                            "poll"], capture_output=True, text=True, timeout=30)
        self.assertIn("needs --repository", r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
