#!/usr/bin/python3
"""Live model management benchmark (issue: zero-downtime updates), on 127.0.0.1.

  load → serving   explicit mode: unload a model, then time from the load
                   call until the first successful inference, for the book's
                   iris_svc.onnx (../shared/book) and a 25 MB classifier;
                   median of --loads repeats
  swap storm       wrk (2 threads, 8 connections) on /v2/models/book/infer:
                   --seconds of steady state, then --seconds while a client
                   swaps version 1 <-> 2 through the load API as fast as it
                   can; every answer checked (status 200 and the body of the
                   version named in X-Model-Version); --rounds rounds,
                   medians
  RSS              the server's VmRSS before and after --cycles unload+load
                   cycles of the book model (after one warm-up cycle)

Run:  /usr/bin/python3 bench/models/bench_live.py [--inferd build/inferd]
         [--loads 20] [--seconds 5] [--rounds 3] [--cycles 1000] [--out bench/models/RESULTS.md]
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(SOURCE, "tests", "models"))
sys.path.insert(0, os.path.join(SOURCE, "tests", "serve"))
import serve_harness  # noqa: E402
from live_harness import AUTH, TOKEN, CheckedLoad, Server, large_classifier, save  # noqa: E402

BOOK = os.path.join(os.path.dirname(SOURCE), "shared", "book")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--inferd", default=os.path.join(SOURCE, "build", "inferd"))
    ap.add_argument("--loads", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cycles", type=int, default=1000)
    ap.add_argument("--out", default=os.path.join(HERE, "RESULTS.md"))
    a = ap.parse_args()
    serve_harness.INFERD = os.path.abspath(a.inferd)
    tmp = tempfile.mkdtemp(prefix="inferd-bench-live-")
    repo = os.path.join(tmp, "repo")
    for v in ("1", "2"):
        os.makedirs(os.path.join(repo, "book", v))
        shutil.copy(os.path.join(BOOK, "iris_svc.onnx"), os.path.join(repo, "book", v, "model.onnx"))
        shutil.copy(os.path.join(BOOK, "label.json"), os.path.join(repo, "book", v, "labels.json"))
    save(large_classifier(25), os.path.join(repo, "large", "1", "model.onnx"))
    large_mb = os.path.getsize(os.path.join(repo, "large", "1", "model.onnx")) / 1e6
    load_avg_before = os.getloadavg()
    srv = Server(["--repository", repo, "--model-control", "explicit", "--admin-token", TOKEN, "--workers", "2"],
                 env={"LOG_LEVEL": "WARNING"})
    body = {"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}
    results = {"load_avg_before": load_avg_before, "large_mb": large_mb}
    try:
        # ---- load call -> serving
        for name in ("book", "large"):
            times, call_times = [], []
            for _ in range(a.loads):
                r = srv.post(f"/v2/repository/models/{name}/unload", {}, headers=AUTH)
                assert r.status == 200, r
                t0 = time.perf_counter()
                r = srv.post(f"/v2/repository/models/{name}/load",
                             {"parameters": {"config": json.dumps({"version_policy": {"specific": [1]}})}},
                             headers=AUTH, timeout=120)
                t_call = time.perf_counter()
                assert r.status == 200, r
                req = body if name == "book" else {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32",
                                                               "data": [5.1, 3.5, 1.4, 0.2]}]}
                r = srv.post(f"/v2/models/{name}/infer", req)
                t1 = time.perf_counter()
                assert r.status == 200, r
                times.append((t1 - t0) * 1e3)
                call_times.append((t_call - t0) * 1e3)
            results[f"load_{name}_ms"] = statistics.median(times)
            results[f"load_{name}_call_ms"] = statistics.median(call_times)
            results[f"load_{name}_range"] = (min(times), max(times))
        # ---- swap storm vs steady state
        srv.post("/v2/repository/models/book/load",
                 {"parameters": {"config": json.dumps({"version_policy": {"all": True}})}}, headers=AUTH)
        expected = {}
        for v in ("1", "2"):
            r = srv.post(f"/v2/models/book/versions/{v}/infer", body)
            expected[f"book:{v}"] = r.body.decode()
        # the answers of both versions are the same bytes but for model_version
        steady, storm, swaps_per_s, answered = [], [], [], 0
        for _ in range(a.rounds):
            load = CheckedLoad(srv, "/v2/models/book/infer", body, expected)
            time.sleep(a.seconds)
            res = load.stop()
            assert res["bad"] == 0 and res["connect"] + res["read"] + res["write"] + res["timeout"] == 0, res
            steady.append(res["ok"] / res["seconds"])
            load = CheckedLoad(srv, "/v2/models/book/infer", body, expected)
            t0 = time.monotonic()
            swaps = 0
            while time.monotonic() - t0 < a.seconds:
                target = 1 + swaps % 2
                r = srv.post("/v2/repository/models/book/load",
                             {"parameters": {"config": json.dumps({"version_policy": {"specific": [target]}})}},
                             headers=AUTH)
                assert r.status == 200, r
                swaps += 1
            res = load.stop()
            assert res["bad"] == 0 and res["connect"] + res["read"] + res["write"] + res["timeout"] == 0, res
            storm.append(res["ok"] / res["seconds"])
            swaps_per_s.append(swaps / (time.monotonic() - t0))
            answered += res["ok"]
        results.update(steady_rps=statistics.median(steady), storm_rps=statistics.median(storm),
                       swaps_per_s=statistics.median(swaps_per_s), storm_answers=answered,
                       steady_all=steady, storm_all=storm)
        # ---- RSS over load/unload cycles
        def cycle():
            assert srv.post("/v2/repository/models/book/unload", {}, headers=AUTH).status == 200
            assert srv.post("/v2/repository/models/book/load", {}, headers=AUTH).status == 200
        assert srv.post("/v2/repository/models/large/unload", {}, headers=AUTH).status == 200
        cycle()
        before = rss_kib(srv.proc.pid)
        t0 = time.monotonic()
        for _ in range(a.cycles):
            cycle()
        results.update(rss_before_kib=before, rss_after_kib=rss_kib(srv.proc.pid), cycles=a.cycles,
                       cycle_ms=(time.monotonic() - t0) * 1e3 / a.cycles)
    finally:
        srv.stop()
        srv.close()
        shutil.rmtree(tmp, ignore_errors=True)
    results["load_avg_after"] = os.getloadavg()
    commit = subprocess.run(["git", "-C", SOURCE, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    growth = (results["rss_after_kib"] - results["rss_before_kib"]) / 1024
    text = f"""# Live model management benchmark

Written by `/usr/bin/python3 bench/models/bench_live.py --loads {a.loads} --seconds {a.seconds:g} --rounds {a.rounds} --cycles {a.cycles}`
(commit {commit}; Release build; 2-core machine shared with other jobs: load average
{results['load_avg_before'][0]:.2f} before, {results['load_avg_after'][0]:.2f} after). `inferd serve --repository R
--model-control explicit --workers 2`, LOG_LEVEL=WARNING, everything on 127.0.0.1.

## Load call to serving

From the `POST /v2/repository/models/M/load` call (after an unload) until the first
inference answers 200: reading and hashing the file, the version guard, one session
per serving thread (5 here) each warmed up, the atomic publish, then one request.
Median of {a.loads}.

| model | size | load call → 200 | load call → first answer | range |
|---|---:|---:|---:|---:|
| book `iris_svc.onnx` (skl2onnx SVC pipeline) | {os.path.getsize(os.path.join(BOOK, 'iris_svc.onnx')) / 1e3:.1f} kB | {results['load_book_call_ms']:.2f} ms | {results['load_book_ms']:.2f} ms | {results['load_book_range'][0]:.2f}–{results['load_book_range'][1]:.2f} ms |
| 2-layer classifier (MatMul [4,K], [K,3]) | {results['large_mb']:.1f} MB | {results['load_large_call_ms']:.1f} ms | {results['load_large_ms']:.1f} ms | {results['load_large_range'][0]:.1f}–{results['load_large_range'][1]:.1f} ms |

## Requests during a swap storm vs steady state (same run)

wrk, 2 threads, 8 connections, `POST /v2/models/book/infer` (one iris row, V2 JSON), every
answer checked by the Lua script (status 200 and exactly the body of the version its
X-Model-Version names). {a.rounds} rounds of {a.seconds:g} s steady then {a.seconds:g} s storm.

| | req/s (median) | rounds |
|---|---:|---|
| steady state | {results['steady_rps']:,.0f} | {', '.join(f'{x:,.0f}' for x in results['steady_all'])} |
| swap storm ({results['swaps_per_s']:.0f} swaps/s, version 1 ↔ 2 by the load API) | {results['storm_rps']:,.0f} | {', '.join(f'{x:,.0f}' for x in results['storm_all'])} |
| storm / steady | {results['storm_rps'] / results['steady_rps']:.2f}× | |

Failed or wrong answers during the storms: 0 of {results['storm_answers']:,}; connection errors: 0.

## Memory over load/unload cycles

| | VmRSS |
|---|---:|
| before (the 25 MB model unloaded, one warm-up cycle) | {results['rss_before_kib'] / 1024:.1f} MiB |
| after {results['cycles']:,} unload + load cycles of the book model | {results['rss_after_kib'] / 1024:.1f} MiB |
| growth | {growth:+.2f} MiB (goal < 5 MiB; Triton's own test allows 100 MB) |

One cycle (unload + load through HTTP) took {results['cycle_ms']:.2f} ms on average.
"""
    with open(a.out, "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
