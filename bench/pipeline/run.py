#!/usr/bin/python3
"""Benchmark of the book's parallel pattern, side by side in one run:

  book     FastAPI proxy + three FastAPI/uvicorn one-vs-rest services, httpx
           fan-out (bench/pipeline/book_services.py)
  local    inferd serving the iris_ovr pipeline: three local model steps
  remote   inferd whose iris_ovr branches are remote steps to a second
           inferd serving the three models (KServe V2 REST over libcurl)

each driven by wrk with POST /predict/label {"data": [[5.1, 3.5, 1.4, 0.2]]}
(the book's proxy route; inferd answers it at /models/<pipeline>/predict/label).
Every configuration is measured --repeats times, alternating the order;
the medians of req/s, p50 and p99 are reported, with the load average.

    /usr/bin/python3 bench/pipeline/run.py [--inferd build/inferd] [--seconds 10]
        [--repeats 3] [--connections 16] [--results bench/RESULTS.md]

The section "Pipelines: the book's parallel pattern" of --results is
replaced (or appended).
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(os.path.dirname(HERE))
CLASSES = ["setosa", "versicolor", "virginica"]
BODY = '{"data": [[5.1, 3.5, 1.4, 0.2]]}'
SECTION = "## Pipelines: the book's parallel pattern"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{url} did not come up")


class Processes:
    def __init__(self):
        self.procs = []

    def start(self, argv, env=None):
        p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             env={**os.environ, **(env or {})})
        self.procs.append(p)
        return p

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()


def wrk(url, seconds, connections, lua):
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", lua, url],
                         capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def percentile(p):
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        value, unit = float(m.group(1)), m.group(2)
        return value * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    return {"rps": rps, "p50": percentile(50), "p99": percentile(99),
            "non2xx": int(errors.group(1)) if errors else 0, "socket_errors": socket_errors.group(1) if socket_errors else ""}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--inferd", default=os.path.join(SOURCE, "build", "inferd"))
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--results", default=os.path.join(SOURCE, "bench", "RESULTS.md"))
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="inferd-bench-pipeline-")
    procs = Processes()
    try:
        repo = os.path.join(tmp, "repo")
        subprocess.run([sys.executable, os.path.join(SOURCE, "tools", "gen_pipeline_examples.py"), "--out", repo],
                       check=True, capture_output=True)
        lua = os.path.join(tmp, "post.lua")
        with open(lua, "w") as f:
            f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                    f"wrk.body = '{BODY}'\n")
        # the book's stack
        services = {}
        for c in CLASSES:
            port = free_port()
            procs.start([sys.executable, os.path.join(HERE, "book_services.py"), "service", "--port", str(port),
                         "--model", os.path.join(repo, f"iris_{c}", "1", "model.onnx")])
            services[f"SERVICE_{c.upper()}"] = f"http://127.0.0.1:{port}"
        book_port = free_port()
        procs.start([sys.executable, os.path.join(HERE, "book_services.py"), "proxy", "--port", str(book_port)],
                    env=services)
        for url in [*services.values(), f"http://127.0.0.1:{book_port}"]:
            wait_http(f"{url}/health")
        # inferd: local, and remote steps to a backend inferd
        local_port, backend_port, front_port = free_port(), free_port(), free_port()
        workers = ["--workers", str(args.workers)]
        procs.start([args.inferd, "serve", "--repository", repo, "--port", str(local_port), *workers],
                    env={"LOG_LEVEL": "WARNING"})
        procs.start([args.inferd, "serve", "--repository", repo, "--port", str(backend_port), *workers],
                    env={"LOG_LEVEL": "WARNING"})
        wait_http(f"http://127.0.0.1:{local_port}/v2/health/ready")
        wait_http(f"http://127.0.0.1:{backend_port}/v2/health/ready")
        front = os.path.join(tmp, "front")  # the same repository plus the remote pipeline
        shutil.copytree(repo, front)
        os.makedirs(os.path.join(front, "remote_ovr"))
        with open(os.path.join(front, "remote_ovr", "pipeline.json"), "w") as f:
            json.dump({"root": {"kind": "parallel", "name": "classify", "branches": [
                {"step": {"kind": "remote", "name": c, "url": f"http://127.0.0.1:{backend_port}",
                          "model": f"iris_{c}", "timeout_ms": 1000}, "label": c} for c in CLASSES],
                "combine": {"kind": "max_score", "output": "probabilities", "index": 0}}}, f)
        procs.start([args.inferd, "serve", "--repository", front, "--port", str(front_port), *workers],
                    env={"LOG_LEVEL": "WARNING"})
        wait_http(f"http://127.0.0.1:{front_port}/v2/health/ready")
        targets = {
            "book": f"http://127.0.0.1:{book_port}/predict/label",
            "local": f"http://127.0.0.1:{local_port}/models/iris_ovr/predict/label",
            "remote": f"http://127.0.0.1:{front_port}/models/remote_ovr/predict/label",
        }
        answers = {}
        for name, url in targets.items():
            req = urllib.request.Request(url, data=BODY.encode(), headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req) as r:
                answers[name] = json.load(r)
        labels = {a["prediction"]["label"] for a in answers.values()}
        if labels != {"setosa"}:
            raise SystemExit(f"the stacks disagree: {answers}")
        load_before = os.getloadavg()[0]
        runs = {name: [] for name in targets}
        order = list(targets)
        for r in range(args.repeats):
            for name in (order if r % 2 == 0 else order[::-1]):
                runs[name].append(wrk(targets[name], args.seconds, args.connections, lua))
                print(name, runs[name][-1], flush=True)
        load_after = os.getloadavg()[0]
    finally:
        procs.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    med = {name: {k: statistics.median(run[k] for run in rs) for k in ("rps", "p50", "p99")}
           for name, rs in runs.items()}
    commit = subprocess.run(["git", "-C", SOURCE, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    rows = [("book's stack: FastAPI proxy + 3 uvicorn services, httpx fan-out", "book"),
            ("inferd, local pipeline (iris_ovr)", "local"),
            ("inferd, remote steps to a second inferd", "remote")]
    lines = [SECTION, "",
             "The book's parallel microservice pattern (three one-vs-rest iris classifiers, the highest \"yes\" "
             "wins) built three ways and measured in one run by `bench/pipeline/run.py`:", "",
             "```", f"/usr/bin/python3 bench/pipeline/run.py --seconds {args.seconds} --repeats {args.repeats} "
             f"--connections {args.connections} --workers {args.workers}", "```", "",
             f"- wrk, 2 threads, {args.connections} connections, {args.seconds} s per run, {args.repeats} runs per "
             "stack (order alternating); medians shown. Every request: `POST /predict/label "
             f"{BODY}`.",
             f"- inferd commit {commit}, Release; each inferd with --workers {args.workers}. The remote "
             "configuration runs two inferd processes (front + backend) on the same 2 cores.",
             "- The book's services evaluate each ONNX file's Gemm + Softmax with numpy (its ONNX Runtime "
             "Python package is not in Debian); python3-fastapi 0.92, python3-uvicorn 0.17, python3-httpx 0.23, "
             "one uvicorn process per service and for the proxy.",
             f"- Load average {load_before:.2f} before, {load_after:.2f} after: the machine is shared, expect noise.",
             "", "| stack | req/s | p50 ms | p99 ms | × book req/s | errors |", "|---|---:|---:|---:|---:|---|"]
    for label, name in rows:
        errors = sum(r["non2xx"] for r in runs[name])
        sockets = "; ".join(filter(None, (r["socket_errors"] for r in runs[name])))
        lines.append(f"| {label} | {med[name]['rps']:.0f} | {med[name]['p50']:.2f} | {med[name]['p99']:.2f} | "
                     f"{med[name]['rps'] / med['book']['rps']:.1f}× | {errors} non-2xx{'; ' + sockets if sockets else ''} |")
    lines += ["", "Goals of the pipelines issue: local ≥ 30× the book's req/s "
              f"({'met' if med['local']['rps'] >= 30 * med['book']['rps'] else 'not met'}), remote steps ≥ 10× "
              f"({'met' if med['remote']['rps'] >= 10 * med['book']['rps'] else 'not met'}).", "",
              "Raw runs: " + json.dumps(runs), ""]
    text = open(args.results).read() if os.path.exists(args.results) else ""
    block = "\n".join(lines)
    if SECTION in text:
        start = text.index(SECTION)
        nxt = text.find("\n## ", start + len(SECTION))
        text = text[:start] + block + ("\n" + text[nxt + 1:] if nxt >= 0 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + block
    with open(args.results, "w") as f:
        f.write(text)
    print(block)


if __name__ == "__main__":
    main()
