"""Asynchronous inference throughput of `inferd serve`, against its own
synchronous throughput on the same model and machine, in one run.

For each backend (embedded SQLite in a temporary state dir; a redis-server
started on a free 127.0.0.1 port in a temporary dir), a fresh server on the
book's iris model with --workers 2 --async-workers 2:
  - submit: wrk posts V2 requests with 'Prefer: respond-async' for DURATION
    seconds (CONNECTIONS connections, 2 threads): jobs/s accepted (202);
  - completed: from the first submit until /metrics shows every accepted
    job completed: jobs/s end to end (the job threads run while wrk submits);
and the synchronous reference: wrk on the same route without the header;
then the book's own asynchronous stack (book_async.py) under the same load.
Each measurement is repeated REPEATS times; the medians (and ranges) go to
bench/async/RESULTS.md with the load average before and after.

  /usr/bin/python3 bench/async/run.py [--repeats 5] [--duration 5] [--connections 32] [--no-book]
Needs (Debian): wrk redis-server python3-fastapi python3-uvicorn python3-redis python3-sklearn
"""
import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
INFERD = os.environ.get("INFERD", os.path.join(ROOT, "build", "inferd"))
MODEL = os.path.join(ROOT, "models", "iris_svc.onnx")
BODY = json.dumps({"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32",
                               "data": [5.1, 3.5, 1.4, 0.2]}]})


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
    raise RuntimeError(f"{url} did not answer")


def metric(port, name):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    m = re.search(r"^" + re.escape(name) + r" (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def wrk(port, seconds, connections, async_):
    script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
    headers = 'wrk.headers["Content-Type"] = "application/json"\n'
    if async_:
        headers += 'wrk.headers["Prefer"] = "respond-async"\n'
    script.write(f'wrk.method = "POST"\nwrk.body = [[{BODY}]]\n{headers}')
    script.close()
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "-s", script.name,
                          f"http://127.0.0.1:{port}/v2/models/iris_svc/infer"],
                         capture_output=True, text=True, check=True).stdout
    os.unlink(script.name)
    total = int(re.search(r"(\d+) requests in", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return total - (int(bad.group(1)) if bad else 0), float(re.search(r"Requests/sec:\s+(\S+)", out).group(1))


class Redis:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="inferd-bench-redis-")
        self.port = free_port()
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
                                      self.dir, "--save", "", "--appendonly", "yes", "--appendfsync", "everysec"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def close(self):
        self.proc.kill()
        self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


def one_round(backend, args):
    state = tempfile.mkdtemp(prefix="inferd-bench-state-")
    redis = Redis() if backend == "redis" else None
    port = free_port()
    queue = ["--queue", f"redis://127.0.0.1:{redis.port}/0"] if redis else ["--state-dir", state]
    server = subprocess.Popen([INFERD, "serve", MODEL, "--port", str(port), "--workers", "2", "--async-workers", "2",
                               *queue], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env={**os.environ, "LOG_LEVEL": "WARNING"})
    try:
        wait_http(f"http://127.0.0.1:{port}/v2/health/ready")
        _, sync_rps = wrk(port, args.duration, args.connections, False)
        start = time.monotonic()
        accepted, submit_rps = wrk(port, args.duration, args.connections, True)
        deadline = start + 600
        while metric(port, 'inferd_jobs_total{state="completed"}') < accepted and time.monotonic() < deadline:
            time.sleep(0.05)
        elapsed = time.monotonic() - start
        completed = metric(port, 'inferd_jobs_total{state="completed"}')
        return {"sync": sync_rps, "submit": submit_rps, "completed": completed / elapsed, "jobs": accepted}
    finally:
        server.terminate()
        server.wait(60)
        if redis:
            redis.close()
        shutil.rmtree(state, ignore_errors=True)


def redis_counter(port, key):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(f"GET {key}\r\n".encode())
        reply = s.recv(64).decode()
    if reply.startswith("$-1"):
        return 0
    return int(reply.split("\r\n")[1])


def book_round(args):
    """The book's async stack: FastAPI (uvicorn, 2 workers) + a Redis list + 2
    python worker processes predicting with scikit-learn."""
    redis = Redis()
    port = free_port()
    env = {**os.environ, "BOOK_REDIS_PORT": str(redis.port)}
    here = os.path.dirname(os.path.abspath(__file__))
    api = subprocess.Popen([sys.executable, "-m", "uvicorn", "--app-dir", here, "book_async:app", "--port", str(port),
                            "--workers", "2", "--log-level", "warning"], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers = [subprocess.Popen([sys.executable, os.path.join(here, "book_async.py"), "worker"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(2)]
    try:
        wait_http(f"http://127.0.0.1:{port}/docs")
        time.sleep(2)  # the workers import scikit-learn and train the pipeline
        start = time.monotonic()
        script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
        # a Lua quoted string: the body holds "]]", which would end a [[long string]]
        script.write('wrk.method = "POST"\nwrk.body = \'{"data": [[5.1, 3.5, 1.4, 0.2]]}\'\n'
                     'wrk.headers["Content-Type"] = "application/json"\n')
        script.close()
        out = subprocess.run(["wrk", "-t2", f"-c{args.connections}", f"-d{args.duration}s", "-s", script.name,
                              f"http://127.0.0.1:{port}/predict"], capture_output=True, text=True, check=True).stdout
        os.unlink(script.name)
        total = int(re.search(r"(\d+) requests in", out).group(1))
        bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        accepted = total - (int(bad.group(1)) if bad else 0)
        submit_rps = float(re.search(r"Requests/sec:\s+(\S+)", out).group(1))
        deadline = start + 600
        while redis_counter(redis.port, "bench_completed") < accepted and time.monotonic() < deadline:
            time.sleep(0.05)
        elapsed = time.monotonic() - start
        return {"sync": 0.0, "submit": submit_rps, "completed": redis_counter(redis.port, "bench_completed") / elapsed,
                "jobs": accepted}
    finally:
        for p in [api, *workers]:
            p.terminate()
            p.wait(30)
        redis.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--no-book", action="store_true", help="skip the book's FastAPI + Redis list stack")
    args = ap.parse_args()
    load_before = open("/proc/loadavg").read().split()[:3]
    rows = []
    for backend in ("embedded", "redis"):
        runs = [one_round(backend, args) for _ in range(args.repeats)]
        print(backend, runs, file=sys.stderr)
        rows.append((backend, runs))
    if not args.no_book:
        runs = [book_round(args) for _ in range(args.repeats)]
        print("book", runs, file=sys.stderr)
        rows.append(("book", runs))
    load_after = open("/proc/loadavg").read().split()[:3]

    def cell(runs, key):
        values = [r[key] for r in runs]
        return f"**{statistics.median(values):.0f}** ({min(values):.0f}–{max(values):.0f})"
    lines = [
        "# Asynchronous inference throughput",
        "",
        f"Made by `/usr/bin/python3 bench/async/run.py --repeats {args.repeats} --duration {args.duration} "
        f"--connections {args.connections}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "",
        f"`inferd serve models/iris_svc.onnx --workers 2 --async-workers 2`, wrk with {args.connections} "
        f"connections for {args.duration} s per measurement; medians of {args.repeats} fresh servers (range in "
        "brackets). *sync*: requests/s of the synchronous V2 route (the reference); *submit*: jobs/s accepted "
        "(202) by the same route with `Prefer: respond-async`; *completed*: jobs/s from the first submit until "
        "every accepted job was done (the job threads run while wrk submits, on the same 2 cores).",
        "",
        f"Machine: {os.cpu_count()} cores shared with other builds; load average {' '.join(load_before)} before "
        f"and {' '.join(load_after)} after (1, 5, 15 min), so expect noise.",
        "",
        "| stack | sync req/s (reference) | async submit jobs/s | async completed jobs/s | jobs per run |",
        "|---|---:|---:|---:|---:|",
    ]
    names = {"embedded": "inferd, embedded queue", "redis": "inferd, Redis",
             "book": "the book's stack (FastAPI + Redis list + 2 python workers)"}
    for backend, runs in rows:
        sync = "—" if backend == "book" else cell(runs, "sync")
        lines.append(f"| {names[backend]} | {sync} | {cell(runs, 'submit')} | {cell(runs, 'completed')} | "
                     f"{statistics.median([r['jobs'] for r in runs]):.0f} |")
    lines += ["", "The book's stack (bench/async/book_async.py) is its asynchronous_pattern rebuilt from Debian's "
              "packages: FastAPI under uvicorn with 2 worker processes, python3-redis, a Redis list, 2 worker "
              "processes predicting with the scikit-learn pipeline iris_svc.onnx was converted from (Debian has "
              "no onnxruntime); it keeps no TTL, retries or failure state. Same wrk load, same Redis build, "
              "same 2 cores.", ""]
    with open(os.path.join(ROOT, "bench", "async", "RESULTS.md"), "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
