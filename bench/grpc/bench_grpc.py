#!/usr/bin/python3
"""KServe V2 inference over gRPC against REST V2 on the same `inferd serve`
(bench/grpc/run.sh runs this; see there for the options).

One server (--workers 1, pinned to CPU 0 with taskset) serves the bundled
iris model and the digits MLP (tools/gen_fixtures.py --only digits_mlp)
on an HTTP and a gRPC port. The load generator is h2load (nghttp2-client, C,
one thread, pinned to CPU 1), for both protocols: HTTP/1.1 keep-alive for
REST, HTTP/2 with one stream per connection at a time for gRPC, the same
number of connections. Each request is one row: REST V2 JSON, gRPC with
typed contents (fp32_contents) and gRPC with raw_input_contents. Before the
runs every body is sent once and its answer checked (the gRPC answers equal
the REST one); after each run the server's own counter
inferd_requests_total{code="200"} must have grown by what h2load counted
(h2load sees a gRPC error as an HTTP 200 with a grpc-status trailer, so this
is what proves every call succeeded). Server CPU per request is the
process's utime+stime (/proc/PID/stat) over the run divided by the
requests answered. Medians over --rounds; prints a markdown section.
"""
import argparse
import json
import os
import re
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TICKS = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def http_get(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as r:
        return r.read()


def http_post(port, path, body):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def ok_count(port):
    """inferd_requests_total{code="200"} per protocol."""
    counts = {"http": 0.0, "grpc": 0.0}
    for line in http_get(port, "/metrics").decode().splitlines():
        m = re.match(r'inferd_requests_total\{(.*)\} (\S+)$', line)
        if m and 'code="200"' in m.group(1):
            proto = re.search(r'protocol="(\w+)"', m.group(1))
            counts[proto.group(1) if proto else "http"] += float(m.group(2))
    return counts


def stubs(work):
    out = os.path.join(work, "stubs")
    os.makedirs(out)
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I", os.path.join(ROOT, "proto"),
                    f"--python_out={out}", f"--grpc_python_out={out}", "kserve/grpc_predict_v2.proto"],
                   check=True, stdout=subprocess.DEVNULL)
    sys.path.insert(0, out)
    from kserve import grpc_predict_v2_pb2 as pb
    from kserve import grpc_predict_v2_pb2_grpc as pb_grpc
    return pb, pb_grpc


def h2load(args, url, body_path, headers, h1, connections, duration, cpu):
    cmd = ["taskset", "-c", str(cpu), "h2load", "-t", "1", "-c", str(connections), "-m", "1",
           "-D", str(duration), "-d", body_path]
    for h in headers:
        cmd += ["-H", h]
    if h1:
        cmd.append("--h1")
    p = subprocess.run(cmd + [url], capture_output=True, text=True, timeout=duration + 120)
    out = p.stdout
    done = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored", out)
    rps = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out)
    if p.returncode != 0 or not done or not rps:
        raise SystemExit(f"h2load failed ({p.returncode}):\n{out}\n{p.stderr}")
    return int(done.group(2)), int(done.group(3)) + int(done.group(4)), float(rps.group(1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--server-cpu", type=int, default=0)
    ap.add_argument("--load-cpu", type=int, default=1)
    ap.add_argument("--command", default="bench/grpc/run.sh")
    a = ap.parse_args()
    for tool in ("h2load", "taskset"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} not found (scripts/deps.sh bench)")
    work = tempfile.mkdtemp(prefix="inferd-grpc-bench-")
    server = None
    try:
        pb, pb_grpc = stubs(work)
        import grpc
        repo = os.path.join(work, "repo")
        os.makedirs(os.path.join(repo, "iris", "1"))
        shutil.copy(os.path.join(ROOT, "models", "iris_svc.onnx"), os.path.join(repo, "iris", "1", "model.onnx"))
        subprocess.run([sys.executable, os.path.join(ROOT, "tools", "gen_fixtures.py"), "--out",
                        os.path.join(work, "fixtures"), "--only", "digits_mlp"], check=True,
                       stdout=subprocess.DEVNULL)
        os.makedirs(os.path.join(repo, "digits_mlp", "1"))
        shutil.copy(os.path.join(work, "fixtures", "digits_mlp", "model.onnx"),
                    os.path.join(repo, "digits_mlp", "1", "model.onnx"))
        http_port, grpc_port = free_port(), free_port()
        env = dict(os.environ, LOG_LEVEL="WARNING")
        log = open(os.path.join(work, "server.log"), "w")
        server = subprocess.Popen(["taskset", "-c", str(a.server_cpu), os.path.join(a.build, "inferd"), "serve",
                                   "--repository", repo, "--workers", "1", "--port", str(http_port),
                                   "--grpc-port", str(grpc_port), "--async-workers", "0"],
                                  stdout=log, stderr=subprocess.STDOUT, env=env)
        for _ in range(600):
            try:
                if http_get(http_port, "/v2/health/ready"):
                    break
            except OSError:
                time.sleep(0.05)
        channel = grpc.insecure_channel(f"127.0.0.1:{grpc_port}")
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        rows = {"iris": [5.1, 3.5, 1.4, 0.2],
                "digits_mlp": (np.arange(64, dtype=np.float32) % 17 / 16.0).tolist()}
        forms = {}
        for model, row in rows.items():
            meta = stub.ModelMetadata(pb.ModelMetadataRequest(name=model))
            name = meta.inputs[0].name
            rest_body = json.dumps({"inputs": [{"name": name, "datatype": "FP32", "shape": [1, len(row)],
                                                "data": row}]}).encode()
            rest = http_post(http_port, f"/v2/models/{model}/infer", rest_body)
            first = rest["outputs"][0]
            typed = pb.ModelInferRequest(model_name=model)
            typed.inputs.add(name=name, datatype="FP32", shape=[1, len(row)]).contents.fp32_contents.extend(row)
            raw = pb.ModelInferRequest(model_name=model)
            raw.inputs.add(name=name, datatype="FP32", shape=[1, len(row)])
            raw.raw_input_contents.append(np.array(row, dtype="<f4").tobytes())
            t = stub.ModelInfer(typed).outputs[0]
            got = list(getattr(t.contents, {"INT64": "int64_contents", "FP32": "fp32_contents"}[t.datatype]))
            np.testing.assert_allclose(got, first["data"], rtol=1e-6)
            r = stub.ModelInfer(raw)
            np.testing.assert_allclose(np.frombuffer(r.raw_output_contents[0],
                                                     {"INT64": "<i8", "FP32": "<f4"}[r.outputs[0].datatype]),
                                       first["data"], rtol=1e-6)
            for form, body in (("REST V2 JSON", rest_body), ("gRPC typed", typed.SerializeToString()),
                               ("gRPC raw", raw.SerializeToString())):
                path = os.path.join(work, f"{model}-{form.replace(' ', '_')}.bin")
                with open(path, "wb") as f:
                    f.write(body if form.startswith("REST") else b"\0" + struct.pack(">I", len(body)) + body)
                forms[(model, form)] = path
        channel.close()
        results = {}
        for rnd in range(a.rounds):
            for (model, form), path in forms.items():
                rest = form.startswith("REST")
                url = (f"http://127.0.0.1:{http_port}/v2/models/{model}/infer" if rest else
                       f"http://127.0.0.1:{grpc_port}/inference.GRPCInferenceService/ModelInfer")
                headers = (["Content-Type: application/json"] if rest else
                           ["content-type: application/grpc", "te: trailers"])
                if rnd == 0:  # warm-up
                    h2load(a, url, path, headers, rest, a.connections, 1, a.load_cpu)
                before_ok, before_cpu = ok_count(http_port), cpu_seconds(server.pid)
                done, failed, rps = h2load(a, url, path, headers, rest, a.connections, a.duration, a.load_cpu)
                cpu = cpu_seconds(server.pid) - before_cpu
                after_ok = ok_count(http_port)
                proto = "http" if rest else "grpc"
                answered = after_ok[proto] - before_ok[proto]
                if rest:
                    answered -= 1  # the /metrics request read before the run
                # h2load stops counting with requests still in flight (up to
                # one per connection); a gRPC error would make the server's
                # count fall short of h2load's
                if failed or answered < done or answered > done + 2 * a.connections:
                    raise SystemExit(f"{model} {form}: h2load counted {done} ({failed} failed), the server "
                                     f"answered {answered} with code 200")
                results.setdefault((model, form), []).append((rps, cpu / max(answered, 1) * 1e6))
        load = open("/proc/loadavg").read().split()[:3]
        print("## KServe V2 over gRPC vs REST V2 (`inferd serve --grpc-port`)\n")
        print(f"Command: `{a.command}`; one run of {a.rounds} rounds × {a.duration} s per row, medians; "
              f"load average before the report {' '.join(load)} (a shared machine: rerun quiet). Server: "
              f"`inferd serve --workers 1` pinned to CPU {a.server_cpu}; load generator h2load (C, 1 thread, "
              f"{a.connections} connections, one request in flight per connection) pinned to CPU {a.load_cpu}; "
              "REST over HTTP/1.1 keep-alive, gRPC over HTTP/2 (h2c). One row per request. "
              "CPU µs/request: server utime+stime over the run ÷ requests the server answered (its own "
              "inferd_requests_total{code=\"200\"}, which also proves no call failed).\n")
        print("| model | protocol | requests/s | server CPU µs/request | vs REST (CPU) |")
        print("|---|---|---:|---:|---:|")
        for model in rows:
            base = statistics.median(c for _, c in results[(model, "REST V2 JSON")])
            for form in ("REST V2 JSON", "gRPC typed", "gRPC raw"):
                rps = statistics.median(r for r, _ in results[(model, form)])
                cpu = statistics.median(c for _, c in results[(model, form)])
                print(f"| {model} | {form} | {rps:,.0f} | {cpu:.1f} | {cpu / base:.2f}× |")
    finally:
        if server:
            server.terminate()
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
