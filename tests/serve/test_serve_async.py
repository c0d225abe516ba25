"""Asynchronous inference end to end, on real processes: `inferd serve` with
its job routes and job threads, `inferd worker` processes, the embedded
(SQLite) queue in a temporary state dir and a real redis-server on a free
127.0.0.1 port in a temporary dir. Every process is started and stopped by
the test (by PID); every wait is bounded.

What is checked: the V2 async route and the book's --async-book flow answer
exactly what the synchronous routes answer; pending, failed, cancelled and
expired jobs; every bad input of the issue (malformed id, unknown job,
unknown model, a body failing the signature at submit, a full queue); a
server kill -9'ed with queued jobs finishes them all after a restart; two
workers share one Redis stream and one kill -9'ed mid-job still gets its job
done by the other; Redis down at start (clear error) and lost mid-run
(503 for submits, sync routes keep serving, reconnects); job metrics pass
promtool.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_harness import (DEMO_MODEL, INFERD, SLOW, Server, free_port, save, skip_or_fail,  # noqa: E402
                           slow_model, adder_model, v2_binary_request)

import numpy as np  # noqa: E402

IRIS_ROW = [5.1, 3.5, 1.4, 0.2]
IRIS_V2 = {"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32", "data": IRIS_ROW}]}
ASYNC = {"Prefer": "respond-async"}
# MatMuls per row of the slow model (one shared 256x256 weight, so the file
# stays small): deep enough that a job of a second or two is a few thousand
# rows on a fast engine, its cost in inference rather than in JSON
SLOW_DEPTH = 384
SANITIZER = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:", "SUMMARY: ")


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout * SLOW
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout * SLOW:.0f} s waiting for {what}")


class Redis:
    """A redis-server on a free port in its own temporary dir (no persistence:
    the tests that restart it check reconnection, not Redis's durability)."""

    def __init__(self, port=None):
        self.dir = tempfile.mkdtemp(prefix="inferd-redis-")
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = None
        self.start()

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir, "--save", "",
             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self.answers, 10, f"redis-server on port {self.port}")

    def answers(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def close(self):
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class Worker:
    """One `inferd worker` process."""

    def __init__(self, args):
        self.log_file = tempfile.NamedTemporaryFile(prefix="inferd-worker-", suffix=".log", delete=False)
        env = {k: v for k, v in os.environ.items() if k not in ("LOG_LEVEL", "LOG_FORMAT")}
        self.proc = subprocess.Popen([INFERD, "worker", *args], stdin=subprocess.DEVNULL, stdout=self.log_file,
                                     stderr=subprocess.STDOUT, env=env)

    def log(self):
        with open(self.log_file.name, errors="replace") as f:
            return f.read()

    def wait_started(self):
        wait_for(lambda: "worker started" in self.log() or self.proc.poll() is not None, 30, "the worker to start")
        if self.proc.poll() is not None:
            raise AssertionError(f"inferd worker exited with {self.proc.returncode}:\n{self.log()}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60 * SLOW)
            except subprocess.TimeoutExpired:
                pass

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.log_file.close()
        os.unlink(self.log_file.name)


class AsyncTestCase(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="inferd-async-")
        self.closers = []

    def tearDown(self):
        # every process is stopped and every directory removed even when a
        # check on the way fails; the first failure is reported after
        failure = None
        for close in reversed(self.closers):
            try:
                close()
            except Exception as e:  # noqa: BLE001 (re-raised below)
                failure = failure or e
        shutil.rmtree(self.tmp, ignore_errors=True)
        if failure:
            raise failure

    def serve(self, args, ready=True):
        server = Server(args, ready=ready)
        self.closers.append(server.close)
        # a clean stop first, so that LeakSanitizer's report at exit is in the log
        self.closers.append(lambda: (server.stop(), self.check_clean(server.log(), "inferd serve")))
        return server

    def worker(self, args, started=True):
        w = Worker(args)
        self.closers.append(w.close)
        self.closers.append(lambda: (w.stop(), self.check_clean(w.log(), "inferd worker")))
        if started:
            w.wait_started()
        return w

    def redis(self):
        if not shutil.which("redis-server"):
            skip_or_fail(self, "redis-server", "redis-server is not installed (Debian package redis-server)")
        r = Redis()
        self.closers.append(r.close)
        return r

    def check_clean(self, log, who):
        for marker in SANITIZER:
            if marker in log:
                self.fail(f"{who} reported a sanitizer error:\n{log}")

    def state(self, name="state"):
        path = os.path.join(self.tmp, name)
        os.makedirs(path, exist_ok=True)
        return path

    def submit(self, server, path, body, headers=None):
        r = server.post(path, body, headers={**ASYNC, **(headers or {})})
        self.assertEqual(r.status, 202, r.body)
        job = r.json()["id"]
        self.assertEqual(r.headers["location"], f"/v2/jobs/{job}")
        self.assertRegex(job, r"^[0-9a-f]{32}$")
        return job

    def result(self, server, job, timeout=60):
        def finished():
            r = server.get(f"/v2/jobs/{job}")
            if r.status == 202:
                self.assertIn(r.json()["status"], ("queued", "running"))
                return None
            return r
        return wait_for(finished, timeout, f"job {job}")

    def slow_request(self, rows):
        x = np.random.default_rng(7).standard_normal((rows, 256)).astype(np.float32)
        return {"inputs": [{"name": "x", "shape": [rows, 256], "datatype": "FP32", "data": x.ravel().tolist()}]}

    def slow_rows(self, server, seconds):
        """Rows of the slow model that take about `seconds` on this machine now.
        Timed by the server's own compute time (decode, inference, encode:
        what a job's worker does), the fastest of three runs, not the
        client's wall clock, which adds Python's JSON work on 16k numbers and
        whatever other jobs on the machine take."""
        def compute_seconds():
            text = server.get("/metrics").body.decode()
            return sum(float(line.split()[-1]) for line in text.splitlines()
                       if line.startswith("inferd_compute_duration_seconds_sum"))
        per_row = None
        for _ in range(3):
            before = compute_seconds()
            r = server.post("/v2/models/slow/infer", self.slow_request(64))
            self.assertEqual(r.status, 200, r.body)
            took = max((compute_seconds() - before) / 64, 1e-5)
            per_row = took if per_row is None else min(per_row, took)
        # a request of 10000 rows is ~54 MB of JSON, under the server's 64 MiB
        # body limit; SLOW_DEPTH keeps the rows for a second well below it
        return int(min(max(seconds / per_row, 64), 10000))


class TestEmbedded(AsyncTestCase):
    def test_v2_async_answers_what_sync_answers(self):
        s = self.serve([DEMO_MODEL, "--state-dir", self.state(), "--async-workers", "1"])
        sync = s.post("/v2/models/iris_svc/infer", IRIS_V2)
        self.assertEqual(sync.status, 200)
        job = self.submit(s, "/v2/models/iris_svc/infer", IRIS_V2)
        done = self.result(s, job)
        self.assertEqual(done.status, 200)
        self.assertEqual(done.body, sync.body)  # byte-identical
        # a named version, and V2's binary tensors (the answer's bytes and header too)
        header = {"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32",
                              "parameters": {"binary_data_size": 16}}],
                  "outputs": [{"name": "output_probability", "parameters": {"binary_data": True}}]}
        body, headers = v2_binary_request(header, [np.array(IRIS_ROW, dtype=np.float32).tobytes()])
        sync = s.post("/v2/models/iris_svc/versions/1/infer", body, headers=headers)
        self.assertEqual(sync.status, 200, sync.body)
        job = self.submit(s, "/v2/models/iris_svc/versions/1/infer", body, headers=headers)
        done = self.result(s, job)
        self.assertEqual(done.body, sync.body)
        self.assertEqual(done.headers["inference-header-content-length"],
                         sync.headers["inference-header-content-length"])
        self.assertEqual(done.headers["content-type"], "application/octet-stream")

    def test_pending_cancel_and_status(self):
        # --async-workers 0: this server only queues; the jobs stay queued
        s = self.serve([DEMO_MODEL, "--state-dir", self.state(), "--async-workers", "0"])
        job = self.submit(s, "/v2/models/iris_svc/infer", IRIS_V2)
        r = s.get(f"/v2/jobs/{job}")
        self.assertEqual(r.status, 202)
        status = r.json()
        self.assertEqual(status["status"], "queued")
        self.assertEqual(status["model"], "iris_svc")
        self.assertGreater(status["queued_at"], time.time() - 60)
        self.assertIsNone(status["started_at"])
        r = s.request("DELETE", f"/v2/jobs/{job}")
        self.assertEqual((r.status, r.json()["status"]), (200, "cancelled"))
        r = s.get(f"/v2/jobs/{job}")
        self.assertEqual((r.status, r.json()["status"]), (200, "cancelled"))
        r = s.request("DELETE", f"/v2/jobs/{job}")
        self.assertEqual(r.status, 409, r.body)
        # a second server on the same state dir runs what the first queued
        job = self.submit(s, "/v2/models/iris_svc/infer", IRIS_V2)
        runner = self.serve([DEMO_MODEL, "--state-dir", self.state(), "--async-workers", "1"])
        self.assertEqual(self.result(runner, job).status, 200)
        self.assertEqual(self.result(s, job).body, s.post("/v2/models/iris_svc/infer", IRIS_V2).body)

    def test_bad_input(self):
        s = self.serve([DEMO_MODEL, "--state-dir", self.state(), "--async-workers", "0", "--max-queued", "2"])
        r = s.get("/v2/jobs/not-a-job")
        self.assertEqual(r.status, 400)
        self.assertIn("malformed job id 'not-a-job'", r.json()["error"])
        r = s.get("/v2/jobs/" + "A" * 32)
        self.assertEqual(r.status, 400)
        r = s.request("DELETE", "/v2/jobs/xyz")
        self.assertEqual(r.status, 400)
        r = s.get("/v2/jobs/" + "0" * 32)
        self.assertEqual(r.status, 404)
        self.assertIn("0" * 32, r.json()["error"])
        r = s.post("/v2/models/nosuch/infer", IRIS_V2, headers=ASYNC)
        self.assertEqual(r.status, 404)
        self.assertIn("nosuch", r.json()["error"])
        # the signature is checked at submit: a 400 and nothing queued
        bad = {"inputs": [{"name": "float_input", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}
        r = s.post("/v2/models/iris_svc/infer", bad, headers=ASYNC)
        self.assertEqual(r.status, 400)
        self.assertIn("dimension 1 must be 4", r.json()["error"])
        r = s.post("/v2/models/iris_svc/infer", b"{not json", headers={**ASYNC, "Content-Type": "application/json"})
        self.assertEqual(r.status, 400)
        self.assertIn("malformed JSON", r.json()["error"])
        metrics = s.get("/metrics").body.decode()
        self.assertIn('inferd_jobs_total{state="submitted"} 0', metrics)
        self.assertIn('inferd_jobs{state="queued"} 0', metrics)
        # a full queue: 429 with Retry-After, nothing stored
        self.submit(s, "/v2/models/iris_svc/infer", IRIS_V2)
        self.submit(s, "/v2/models/iris_svc/infer", IRIS_V2)
        r = s.post("/v2/models/iris_svc/infer", IRIS_V2, headers=ASYNC)
        self.assertEqual(r.status, 429, r.body)
        self.assertEqual(r.headers["retry-after"], "1")
        self.assertIn("full", r.json()["error"])
        metrics = s.get("/metrics").body.decode()
        self.assertIn('inferd_jobs{state="queued"} 2', metrics)
        self.assertIn('inferd_jobs_total{state="rejected_full"} 1', metrics)
        self.assertIn("inferd_jobs_queue_depth 2", metrics)
        if not shutil.which("promtool"):
            skip_or_fail(self, "promtool", "promtool is not installed (Debian package prometheus)")
        check = subprocess.run(["promtool", "check", "metrics"], input=metrics.encode(), capture_output=True)
        self.assertEqual(check.returncode, 0, check.stdout + check.stderr)
        # the book's job route exists only with --async-book
        self.assertEqual(s.get("/job/" + "0" * 32).status, 404)

    def test_book_async_flow(self):
        s = self.serve([DEMO_MODEL, "--state-dir", self.state(), "--async-workers", "0", "--async-book"])
        sync = s.post("/predict/label", {"data": [IRIS_ROW]})  # still synchronous
        self.assertEqual(sync.json(), {"prediction": 0})
        r = s.post("/predict", {"data": [IRIS_ROW]})
        self.assertEqual(r.status, 200, r.body)
        job = r.json()["job_id"]
        self.assertEqual(s.get(f"/job/{job}").json(), {job: {"prediction": ""}})  # pending, as the book's clients expect
        runner = self.serve([DEMO_MODEL, "--state-dir", self.state(), "--async-workers", "1"])
        self.assertEqual(self.result(runner, job).status, 200)
        answer = s.get(f"/job/{job}").json()
        expected = self.serve([DEMO_MODEL, "--state-dir", self.state("other")]).post(
            "/predict", {"data": [IRIS_ROW]}).json()
        self.assertEqual(answer, {job: expected})
        self.assertEqual(len(expected["prediction"]), 3)
        self.assertEqual(s.get("/job/bad").status, 400)

    def test_book_sync_async_pattern(self):
        # the book's sync_async: the fast (default) model answers now, the
        # slow one is queued; one answer carries both
        repo = os.path.join(self.tmp, "repo")
        save(adder_model(1), os.path.join(repo, "a_fast", "1", "model.onnx"))
        save(adder_model(2), os.path.join(repo, "b_slow", "1", "model.onnx"))
        s = self.serve(["--repository", repo, "--state-dir", self.state(), "--async-workers", "1", "--async-book",
                        "--async-book-model", "b_slow"])
        r = s.post("/predict", {"data": [[1, 2, 3]]})
        self.assertEqual(r.status, 200, r.body)
        answer = r.json()
        self.assertEqual(answer["prediction"], [2, 3, 4])
        job = answer["job_id"]
        done = wait_for(lambda: s.get(f"/job/{job}").json()[job]["prediction"] != "" and s.get(f"/job/{job}").json(),
                        60, "the slow model's job")
        self.assertEqual(done, {job: {"prediction": [3, 4, 5]}})
        r = s.post("/predict", {"data": [[1, 2]]})  # refused by the signature: nothing queued
        self.assertEqual(r.status, 400)
        self.assertIn('inferd_jobs_total{state="submitted"} 1', s.get("/metrics").body.decode())
        bad = self.serve(["--repository", repo, "--state-dir", self.state(), "--async-book", "--async-book-model",
                          "nosuch"], ready=False)
        self.assertEqual(bad.proc.wait(30 * SLOW), 1)
        self.assertIn("--async-book-model names no loaded model model=nosuch", bad.log())

    def test_no_writable_state_dir_serves_synchronously(self):
        # nobody asked for a queue and the default directory cannot be made
        # (a read-only root filesystem): serve anyway, async answers 503
        env = {"HOME": "/proc/inferd-no-home", "XDG_STATE_HOME": "", "INFERD_STATE_DIR": ""}
        s = Server([DEMO_MODEL], env=env)
        self.closers.append(s.close)
        self.assertIn("no job queue", s.log())
        self.assertEqual(s.post("/v2/models/iris_svc/infer", IRIS_V2).status, 200)
        r = s.post("/v2/models/iris_svc/infer", IRIS_V2, headers=ASYNC)
        self.assertEqual(r.status, 503)
        self.assertIn("no job queue", r.json()["error"])
        self.assertEqual(s.get("/v2/jobs/" + "0" * 32).status, 503)
        self.assertNotIn("inferd_jobs_total", s.get("/metrics").body.decode())
        self.assertEqual(s.stop(), 0)
        # asked for explicitly, the same directory stops the start with the reason
        bad = Server([DEMO_MODEL, "--state-dir", "/proc/inferd-no-state"], env=env, ready=False)
        self.closers.append(bad.close)
        self.assertEqual(bad.proc.wait(30 * SLOW), 1)
        self.assertIn("cannot open the job queue", bad.log())
        self.assertIn("/proc/inferd-no-state", bad.log())

    def test_results_expire_after_ttl(self):
        s = self.serve([DEMO_MODEL, "--state-dir", self.state(), "--async-workers", "1", "--job-ttl", "1"])
        job = self.submit(s, "/v2/models/iris_svc/infer", IRIS_V2)
        self.assertEqual(self.result(s, job).status, 200)
        wait_for(lambda: s.get(f"/v2/jobs/{job}").status == 404, 10, "the result to expire")

    def test_unloaded_version_fails_clearly(self):
        repo_a = os.path.join(self.tmp, "repo_a")
        repo_b = os.path.join(self.tmp, "repo_b")
        save(adder_model(1), os.path.join(repo_a, "adder", "1", "model.onnx"))
        save(adder_model(2), os.path.join(repo_b, "adder", "2", "model.onnx"))
        s = self.serve(["--repository", repo_a, "--state-dir", self.state(), "--async-workers", "0"])
        body = {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}
        job = self.submit(s, "/v2/models/adder/versions/1/infer", body)
        # a worker that serves only version 2 of the model
        self.worker(["--repository", repo_b, "--state-dir", self.state(), "--threads", "1"])
        r = self.result(s, job)
        self.assertEqual(r.status, 200)
        status = r.json()
        self.assertEqual(status["status"], "failed")
        self.assertIn("version '1' is not loaded", status["error"])
        self.assertEqual(status["attempts"], 1)  # permanent: not retried

    def test_job_queued_before_an_unload_fails_clearly(self):
        repo = os.path.join(self.tmp, "repo")
        save(slow_model(depth=SLOW_DEPTH), os.path.join(repo, "slow", "1", "model.onnx"))
        token = "async-test-admin-token-0123456789"
        s = self.serve(["--repository", repo, "--model-control", "explicit", "--admin-token", token,
                        "--state-dir", self.state(), "--async-workers", "1"])
        running = self.submit(s, "/v2/models/slow/infer", self.slow_request(self.slow_rows(s, 1.0)))
        wait_for(lambda: s.get(f"/v2/jobs/{running}").json().get("status") == "running", 30, "a job to run")
        queued = self.submit(s, "/v2/models/slow/versions/1/infer", self.slow_request(1))
        r = s.post("/v2/repository/models/slow/unload", {}, headers={"Authorization": f"Bearer {token}"})
        self.assertEqual(r.status, 200, r.body)
        # the running job holds its version and finishes; the queued one finds it gone
        self.assertEqual(self.result(s, running).status, 200)
        self.assertIn("outputs", self.result(s, running).json())
        failed = self.result(s, queued).json()
        self.assertEqual(failed["status"], "failed")
        self.assertIn("model 'slow' version '1' is not loaded", failed["error"])
        self.assertEqual(failed["attempts"], 1)

    def test_kill_9_with_queued_jobs_then_restart(self):
        model = save(slow_model(depth=SLOW_DEPTH), os.path.join(self.tmp, "slow.onnx"))
        args = [model, "--name", "slow", "--state-dir", self.state(), "--async-workers", "1",
                "--visibility-timeout", "1"]
        s = self.serve(args)
        rows = self.slow_rows(s, 0.3)
        request = self.slow_request(rows)
        expected = s.post("/v2/models/slow/infer", request).body
        jobs = [self.submit(s, "/v2/models/slow/infer", request) for _ in range(6)]
        wait_for(lambda: s.get(f"/v2/jobs/{jobs[0]}").json().get("status") in ("running", None), 30,
                 "the first job to run")
        s.kill()  # kill -9, with jobs queued and one running
        s2 = self.serve(args)
        for job in jobs:
            r = self.result(s2, job, timeout=120)
            self.assertEqual(r.status, 200, r.body)
            self.assertEqual(r.body, expected)


class TestRedis(AsyncTestCase):
    def test_two_workers_share_a_stream_and_survive_kill_9(self):
        r = self.redis()
        # twice SLOW_DEPTH: a 2 s job is still a small request whose polls are quick
        model = save(slow_model(depth=2 * SLOW_DEPTH), os.path.join(self.tmp, "slow.onnx"))
        s = self.serve([model, "--name", "slow", "--queue", r.url, "--async-workers", "0"])
        worker_args = [model, "--name", "slow", "--queue", r.url, "--threads", "1", "--visibility-timeout", "2"]
        a = self.worker(worker_args + ["--worker-name", "a"])
        b = self.worker(worker_args + ["--worker-name", "b"])
        rows = self.slow_rows(s, 2.0)

        def states(jobs):
            return [s.get(f"/v2/jobs/{j}").json().get("status") for j in jobs]

        # each worker runs one at once: both are running, one on each worker.
        # The rows were timed on the server while the machine may have been
        # busier than it is now: if the pair finishes before both are seen
        # running, the jobs were too short to see it, so retry with longer ones
        for _ in range(4):
            request = self.slow_request(rows)
            expected = s.post("/v2/models/slow/infer", request).body
            jobs = [self.submit(s, "/v2/models/slow/infer", request) for _ in range(2)]
            seen = wait_for(lambda: (lambda st: st if st == ["running"] * 2 or "done" in st else None)(states(jobs)),
                            60, "both jobs to run")
            if seen == ["running"] * 2:
                break
            for job in jobs:
                self.assertEqual(self.result(s, job).status, 200)
            self.assertLess(rows, 10000, "the jobs finish before both are seen running even at 10000 rows")
            rows = min(rows * 3, 10000)
        else:
            self.fail(f"never saw both jobs running at once; last states {seen}")
        a.proc.kill()
        a.proc.wait(10)
        for job in jobs:
            done = self.result(s, job, timeout=120)
            self.assertEqual(done.status, 200, done.body)
            self.assertEqual(done.body, expected)
        metrics = s.get("/metrics").body.decode()
        self.assertIn("inferd_jobs_queue_depth 0", metrics)
        # b ran both of the last pair: its own and, after the visibility
        # timeout, a's (plus one of each earlier pair, if any was retried)
        b.proc.send_signal(signal.SIGTERM)
        self.assertEqual(b.proc.wait(30 * SLOW), 0, b.log())
        completed = re.search(r"completed=(\d+)", b.log())
        self.assertIsNotNone(completed, b.log())
        self.assertGreaterEqual(int(completed.group(1)), 2)

    def test_worker_finishes_its_job_on_sigterm(self):
        r = self.redis()
        model = save(slow_model(depth=SLOW_DEPTH), os.path.join(self.tmp, "slow.onnx"))
        s = self.serve([model, "--name", "slow", "--queue", r.url, "--async-workers", "0"])
        request = self.slow_request(self.slow_rows(s, 1.0))
        w = self.worker([model, "--name", "slow", "--queue", r.url, "--threads", "1"])
        job = self.submit(s, "/v2/models/slow/infer", request)
        wait_for(lambda: s.get(f"/v2/jobs/{job}").json().get("status") == "running", 30, "the job to run")
        w.proc.send_signal(signal.SIGTERM)
        self.assertEqual(w.proc.wait(60 * SLOW), 0, w.log())
        r2 = s.get(f"/v2/jobs/{job}")
        self.assertEqual(r2.status, 200)
        self.assertIn("outputs", r2.json())

    def test_results_expire_after_ttl(self):
        r = self.redis()
        s = self.serve([DEMO_MODEL, "--queue", r.url, "--async-workers", "1", "--job-ttl", "1"])
        job = self.submit(s, "/v2/models/iris_svc/infer", IRIS_V2)
        self.assertEqual(self.result(s, job).status, 200)
        wait_for(lambda: s.get(f"/v2/jobs/{job}").status == 404, 10, "the result to expire")

    def test_worker_reconnects_after_redis_restarts(self):
        r = self.redis()
        s = self.serve([DEMO_MODEL, "--queue", r.url, "--async-workers", "0"])
        w = self.worker([DEMO_MODEL, "--queue", r.url, "--threads", "1"])
        r.kill()
        wait_for(lambda: "queue unavailable" in w.log(), 30, "the worker to notice Redis is gone")
        self.assertIsNone(w.proc.poll())  # it waits, it does not exit
        r.start()

        def submitted():
            a = s.post("/v2/models/iris_svc/infer", IRIS_V2, headers=ASYNC)
            return a.json()["id"] if a.status == 202 else None
        job = wait_for(submitted, 30, "submits to work again")
        done = self.result(s, job)
        self.assertEqual(done.body, s.post("/v2/models/iris_svc/infer", IRIS_V2).body)

    def test_redis_down_at_start(self):
        port = free_port()
        s = self.serve([DEMO_MODEL, "--queue", f"redis://127.0.0.1:{port}/0"], ready=False)
        self.assertNotEqual(s.proc.wait(30 * SLOW), 0)
        self.assertIn("cannot open the job queue", s.log())
        self.assertIn(f"redis://127.0.0.1:{port}", s.log())
        w = self.worker([DEMO_MODEL, "--queue", f"redis://127.0.0.1:{port}"], started=False)
        self.assertEqual(w.proc.wait(30 * SLOW), 1)
        self.assertIn("cannot open the job queue", w.log())
        self.assertIn("Connection refused", w.log())

    def test_redis_lost_mid_run(self):
        r = self.redis()
        s = self.serve([DEMO_MODEL, "--queue", r.url, "--async-workers", "1"])
        job = self.submit(s, "/v2/models/iris_svc/infer", IRIS_V2)
        self.assertEqual(self.result(s, job).status, 200)
        r.kill()
        lost = s.post("/v2/models/iris_svc/infer", IRIS_V2, headers=ASYNC)
        self.assertEqual(lost.status, 503, lost.body)
        self.assertEqual(lost.headers["retry-after"], "1")
        self.assertIn("unavailable", lost.json()["error"])
        self.assertEqual(s.get(f"/v2/jobs/{job}").status, 503)
        self.assertEqual(s.post("/v2/models/iris_svc/infer", IRIS_V2).status, 200)  # sync keeps serving
        self.assertEqual(s.post("/predict", {"data": [IRIS_ROW]}).status, 200)
        self.assertIn("inferd_jobs_queue_up 0", s.get("/metrics").body.decode())
        r.start()  # same port: the server reconnects with backoff

        def submitted():
            a = s.post("/v2/models/iris_svc/infer", IRIS_V2, headers=ASYNC)
            return a.json()["id"] if a.status == 202 else None
        job = wait_for(submitted, 30, "submits to work again")
        self.assertEqual(self.result(s, job).status, 200)


if __name__ == "__main__":
    unittest.main(verbosity=2)
