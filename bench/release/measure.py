#!/usr/bin/python3
"""Release-pattern benchmark (issue 4): sizes of what each pattern ships and
the time from exec to ready.

  * model-in-image: `inferd bundle` executable size and exec-to-ready time
    (a copy alone in an empty folder), `inferd image` OCI archive size;
  * model-load: `inferd serve --model-uri http://127.0.0.1:PORT/...` exec to
    ready, with a fresh store (download, verify, import) and with the model
    already in the store (cache hit by --sha256);
  * the book stack's image: the installed size of Python + FastAPI + uvicorn
    + gunicorn + scikit-learn from Debian, with every package they depend on.

Usage: bench/release/measure.py BUILD_DIR > bench/release/RESULTS.md
Loopback only; every process it starts is stopped.
"""
import hashlib
import http.server
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL = os.path.join(ROOT, "models", "iris_svc.onnx")
LABELS = os.path.join(ROOT, "models", "iris_labels.json")
RUNS = 5


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def exec_to_ready(argv, port, env=None, cwd=None):
    """Seconds from just before exec until /v2/health/ready answers 200."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = start + 30
        while time.perf_counter() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready",
                                            timeout=1) as r:
                    if r.status == 200:
                        return time.perf_counter() - start
            except OSError:
                pass
            if proc.poll() is not None:
                raise RuntimeError(f"{argv[0]} exited with {proc.returncode}")
            time.sleep(0.001)
        raise RuntimeError(f"{argv[0]} was not ready within 30 s")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def median_ms(samples):
    return f"{statistics.median(samples) * 1e3:.1f}", ", ".join(f"{s * 1e3:.1f}" for s in samples)


def book_stack_size():
    """Installed size (KiB) of the book stack's Debian packages and dependencies."""
    roots = ["python3", "python3-fastapi", "python3-uvicorn", "gunicorn", "python3-sklearn"]
    out = subprocess.run(["apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests",
                          "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances", *roots],
                         capture_output=True, text=True, check=True).stdout
    names = sorted({line.strip() for line in out.splitlines()
                    if line and not line.startswith(" ") and not line.startswith("<")})
    total, counted = 0, 0
    for name in names:
        q = subprocess.run(["dpkg-query", "-W", "-f=${Status}|${Installed-Size}", name],
                           capture_output=True, text=True)
        if q.returncode == 0 and q.stdout.startswith("install ok installed|"):
            size = q.stdout.split("|")[1]
            if size.isdigit():
                total += int(size)
                counted += 1
    return total, counted


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build")
    inferd = os.path.abspath(os.path.join(build, "inferd"))
    tmp = tempfile.mkdtemp(prefix="inferd-release-bench-")
    server = None
    try:
        store = os.path.join(tmp, "store")
        subprocess.run([inferd, "models", "--store", store, "import", MODEL, "--name", "iris",
                        "--labels", LABELS], check=True, capture_output=True)
        bundle = os.path.join(tmp, "iris-server")
        image = os.path.join(tmp, "iris.oci.tar")
        subprocess.run([inferd, "bundle", "iris", "-o", bundle, "--store", store], check=True,
                       capture_output=True)
        subprocess.run([inferd, "image", "iris", "-o", image, "--store", store, "--tag", "iris:1"],
                       check=True, capture_output=True)

        bundle_times = []
        for _ in range(RUNS):
            empty = tempfile.mkdtemp(dir=tmp)
            shutil.copy2(bundle, os.path.join(empty, "iris-server"))
            port = free_port()
            bundle_times.append(exec_to_ready(["./iris-server"], port, cwd=empty,
                                              env={"PORT": str(port), "PATH": "/usr/bin:/bin"}))

        served = tempfile.mkdtemp(dir=tmp)
        shutil.copy2(MODEL, os.path.join(served, "iris_svc.onnx"))
        handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=served, **k)
        http.server.SimpleHTTPRequestHandler.log_message = lambda *a: None
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        uri = f"http://127.0.0.1:{server.server_address[1]}/iris_svc.onnx"
        sha = hashlib.sha256(open(MODEL, "rb").read()).hexdigest()
        pull_times, cached_times = [], []
        for _ in range(RUNS):
            fresh = tempfile.mkdtemp(dir=tmp)
            port = free_port()
            pull_times.append(exec_to_ready([inferd, "serve", "--model-uri", uri, "--sha256", sha,
                                             "--store", fresh, "--port", str(port)], port))
            port = free_port()
            cached_times.append(exec_to_ready([inferd, "serve", "--model-uri", uri, "--sha256", sha,
                                               "--store", fresh, "--port", str(port)], port))
        plain_times = []
        for _ in range(RUNS):
            port = free_port()
            plain_times.append(exec_to_ready([inferd, "serve", MODEL, "--port", str(port)], port))

        book_kib, book_packages = book_stack_size()
        rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True).stdout.strip()
        load = open("/proc/loadavg").read().split()[:3]
        b_med, b_all = median_ms(bundle_times)
        p_med, p_all = median_ms(pull_times)
        c_med, c_all = median_ms(cached_times)
        s_med, s_all = median_ms(plain_times)
        mib = lambda n: f"{n / 2**20:.1f} MiB"
        print(f"""# Release patterns: sizes and time to ready

Written by `bench/release/measure.py {os.path.relpath(build, ROOT)}` (inferd {rev}; load
average {' '.join(load)} on 2 shared cores when it ran). The model is the bundled
`models/iris_svc.onnx` (2.2 KiB). Exec to ready: from just before exec until
`GET /v2/health/ready` answers 200 (polled every 1 ms), median of {RUNS}.

| what | size |
|---|---:|
| `inferd` binary (everything: engine, server, store, pull, bundle, image) | {mib(os.path.getsize(inferd))} |
| model-in-image: `inferd bundle` executable (binary + model + labels + manifest) | {mib(os.path.getsize(bundle))} |
| model-in-image: `inferd image` OCI archive (bundle + every shared library it loads) | {mib(os.path.getsize(image))} |
| the book stack's image contents: Python 3 + FastAPI + uvicorn + gunicorn + scikit-learn and every Debian package they depend on ({book_packages} packages, installed size) | {book_kib / 1024:.1f} MiB |

| start | exec to ready, median ms | all runs ms |
|---|---:|---|
| bundle, alone in an empty folder (verifies the embedded sha256) | {b_med} | {b_all} |
| model-load: `serve --model-uri` over local http, fresh store (download, verify, import, serve) | {p_med} | {p_all} |
| model-load: `serve --model-uri --sha256`, model already in the store (no download) | {c_med} | {c_all} |
| `serve MODEL.onnx` from a file, for comparison | {s_med} | {s_all} |

The OCI image is mostly the shared libraries the store links (libcurl's
dependency tree and libarchive's libxml2 with ICU data): see `inferd image`'s
layer listing with `skopeo inspect oci-archive:FILE`. The book stack's figure
counts installed files only, before any base image (debian:12-slim adds about
75 MiB to both).
""")
    finally:
        if server:
            server.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
