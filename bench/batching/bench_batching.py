#!/usr/bin/python3
"""Adaptive batching under load: `inferd serve` on the digits MLP and CNN
fixtures (tools/gen_fixtures.py, trained with torch), 64 concurrent
keep-alive clients (wrk with a Lua body: one real digits row per request,
KServe V2 JSON), batching off vs on, side by side in one run.

    bench/batching/run.sh [--seconds S] [--repeats N] [--connections C]

Server pinned to CPU 0 and wrk to CPU 1 (taskset), as issue 15 measures
(--no-pin: the 2-core layout, both sharing both cores).
Each cell is the median of N alternating repeats (off, on, off, on, ...),
each a fresh server: rows/s, p50/p99 latency from wrk --latency, server CPU
µs per row from /proc/PID/stat (utime+stime over the run / rows answered)
and the server's cores used (CPU seconds / wall seconds: on a shared
machine rows/s follows the share of the core the server gets, CPU per row
does not), and for "on" the mean batch size and the engine's wall time per
row and per batch from the server's own /metrics. Prints a
Markdown section (bench/RESULTS.md keeps it) and writes raw JSON lines.
"""
import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
MODELS = ["digits_mlp", "digits_cnn", "digits_cnn28", "wide_mlp"]
FIXTURE_MODELS = ["digits_mlp", "digits_cnn", "digits_cnn28"]
TICKS = os.sysconf("SC_CLK_TCK")

WRK_LUA = r"""
wrk.method = "POST"
wrk.body = [==[%s]==]
wrk.headers["Content-Type"] = "application/json"
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_wide_mlp(directory):
    """A model whose engine time dominates a request's (unlike the digits
    fixtures, where HTTP and JSON cost more than the inference): 784 ->
    1024 -> 1024 -> 10 with ReLU and Softmax, seeded weights, and one
    input row stored as the fixtures store theirs."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(1)
    sizes = [784, 1024, 1024, 10]
    nodes, inits, last = [], [], "input"
    for i in range(3):
        w = (rng.normal(size=(sizes[i], sizes[i + 1])) / np.sqrt(sizes[i])).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"w{i}"),
                  numpy_helper.from_array(np.zeros(sizes[i + 1], np.float32), f"b{i}")]
        nodes.append(helper.make_node("Gemm", [last, f"w{i}", f"b{i}"], [f"g{i}"]))
        last = f"g{i}"
        if i < 2:
            nodes.append(helper.make_node("Relu", [last], [f"r{i}"]))
            last = f"r{i}"
    nodes.append(helper.make_node("Softmax", [last], ["probabilities"], axis=1))
    graph = helper.make_graph(nodes, "wide_mlp",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 784])],
                              [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 10])],
                              inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    os.makedirs(os.path.join(directory, "test_data_set_0"), exist_ok=True)
    with open(os.path.join(directory, "model.onnx"), "wb") as f:
        f.write(model.SerializeToString())
    x = numpy_helper.from_array(rng.random((1, 784), dtype=np.float32), "input")
    with open(os.path.join(directory, "test_data_set_0", "input_0.pb"), "wb") as f:
        f.write(x.SerializeToString())


def one_row_body(fixture_dir, input_name):
    import numpy as np
    from onnx import TensorProto, numpy_helper
    t = TensorProto()
    with open(os.path.join(fixture_dir, "test_data_set_0", "input_0.pb"), "rb") as f:
        t.ParseFromString(f.read())
    x = numpy_helper.to_array(t)[:1].astype(np.float32)
    return json.dumps({"inputs": [{"name": input_name, "shape": list(x.shape), "datatype": "FP32",
                                   "data": [float(v) for v in x.ravel()]}]})


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def scrape(port, name):
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    return sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines() if l.startswith(name + "{"))


def ms(text):
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    value, unit = float(m.group(1)), m.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def run_once(inferd, model, batching, args, lua):
    port = free_port()
    server_pin = [] if args.no_pin else ["taskset", "-c", "0"]
    client_pin = [] if args.no_pin else ["taskset", "-c", "1"]
    argv = [*server_pin, inferd, "serve", model, "--name", "m", "--port", str(port)]
    if batching:
        argv += ["--max-batch-size", str(args.max_batch), "--max-queue-delay-us", str(args.delay_us)]
    env = dict(os.environ, LOG_LEVEL="WARNING")
    server = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        for _ in range(300):
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1).status == 200:
                    break
            except OSError:
                time.sleep(0.05)
        url = f"http://127.0.0.1:{port}/v2/models/m/infer"
        subprocess.run([*client_pin, "wrk", "-t1", "-c", str(args.connections), "-d", "1s", "-s", lua,
                        url], capture_output=True, check=True)  # warm-up
        rows_before = scrape(port, "inferd_batch_size_rows_sum") if batching else 0
        batches_before = scrape(port, "inferd_batch_size_rows_count") if batching else 0
        run_before = scrape(port, "inferd_batch_run_seconds_total") if batching else 0
        cpu0 = cpu_seconds(server.pid)
        out = subprocess.run([*client_pin, "wrk", "-t1", "-c", str(args.connections), "-d",
                              f"{args.seconds}s", "--latency", "--timeout", "10s", "-s", lua, url],
                             capture_output=True, text=True, check=True).stdout
        cpu = cpu_seconds(server.pid) - cpu0
        requests = int(re.search(r"(\d+) requests in", out).group(1))
        seconds = float(re.search(r"requests in ([\d.]+)s", out).group(1))
        bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        errors = re.search(r"Socket errors: (.*)", out)
        lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
        mean_batch = engine_us_per_row = batch_run_ms = None
        if batching:
            rows = scrape(port, "inferd_batch_size_rows_sum") - rows_before
            batches = scrape(port, "inferd_batch_size_rows_count") - batches_before
            run = scrape(port, "inferd_batch_run_seconds_total") - run_before
            mean_batch = rows / batches if batches else None
            engine_us_per_row = run / rows * 1e6 if rows else None
            batch_run_ms = run / batches * 1e3 if batches else None
        return {"rows_per_s": requests / seconds, "p50_ms": ms(lat["50"]), "p99_ms": ms(lat["99"]),
                "cpu_us_per_row": cpu / requests * 1e6, "cpu_share": cpu / seconds,
                "non_2xx": int(bad.group(1)) if bad else 0,
                "socket_errors": errors.group(1) if errors else "", "mean_batch": mean_batch,
                "engine_us_per_row": engine_us_per_row, "batch_run_ms": batch_run_ms}
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--inferd", default=os.path.join(REPO, "build", "inferd"))
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--max-batch", type=int, default=64)
    parser.add_argument("--delay-us", type=int, default=2000)
    parser.add_argument("--fixtures", default=os.path.join(REPO, "build", "bench-batching", "fixtures"))
    parser.add_argument("--raw", default=os.path.join(REPO, "build", "bench-batching", "raw.jsonl"))
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--no-pin", action="store_true",
                        help="the 2-core layout: server and wrk share both cores (default: taskset 0 / 1)")
    args = parser.parse_args()
    fixtures = [m for m in args.models if m in FIXTURE_MODELS]
    if fixtures:
        subprocess.run([sys.executable, os.path.join(REPO, "tools", "gen_fixtures.py"), "--out", args.fixtures,
                        "--only", *fixtures], check=True, stdout=subprocess.DEVNULL)
    if "wide_mlp" in args.models:
        write_wide_mlp(os.path.join(args.fixtures, "wide_mlp"))
    os.makedirs(os.path.dirname(args.raw), exist_ok=True)
    load_before = os.getloadavg()
    started = time.time()
    results = {}
    with open(args.raw, "a") as raw:
        for name in args.models:
            model = os.path.join(args.fixtures, name, "model.onnx")
            lua = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
            lua.write(WRK_LUA % one_row_body(os.path.join(args.fixtures, name), "input"))
            lua.close()
            for r in range(args.repeats):
                for batching in ((False, True) if r % 2 == 0 else (True, False)):
                    res = run_once(args.inferd, model, batching, args, lua.name)
                    res.update(model=name, batching=batching, repeat=r, connections=args.connections)
                    raw.write(json.dumps(res) + "\n")
                    results.setdefault((name, batching), []).append(res)
                    print(json.dumps(res), file=sys.stderr)
            os.unlink(lua.name)
    load_after = os.getloadavg()
    commit = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()

    def med(cell, key):
        values = [r[key] for r in cell if r[key] is not None]
        return statistics.median(values) if values else float("nan")

    print(f"Command: `bench/batching/run.sh --seconds {args.seconds} --repeats {args.repeats} "
          f"--connections {args.connections}{' --no-pin' if args.no_pin else ''}` (commit {commit}); "
          f"{'server and wrk share both cores' if args.no_pin else 'server `taskset -c 0`, wrk `taskset -c 1`'}, "
          f"wrk `-t1 -c{args.connections}`; batching on = `--max-batch-size {args.max_batch} "
          f"--max-queue-delay-us {args.delay_us}`. One digits row per request (V2 JSON). Medians of "
          f"{args.repeats} alternating repeats, {args.seconds} s each. Load average "
          f"{load_before[0]:.2f} before, {load_after[0]:.2f} after; {time.time() - started:.0f} s.\n")
    print("| model | batching | rows/s | p50 ms | p99 ms | server CPU µs/row | server cores used | mean batch | "
          "engine µs/row in batches | on/off rows/s | on/off CPU per row | p99 ≤ delay + batch run |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for name in args.models:
        off, on = results[(name, False)], results[(name, True)]
        for label, cell in (("off", off), ("on", on)):
            ratio = f"{med(on, 'rows_per_s') / med(off, 'rows_per_s'):.2f}×" if label == "on" else ""
            cpu_ratio = f"{med(off, 'cpu_us_per_row') / med(on, 'cpu_us_per_row'):.2f}×" if label == "on" else ""
            bound = ""
            if label == "on":
                # the goal's bound: the queue delay plus one batch run (the
                # mean wall time of a batch's engine call, from the server)
                limit = args.delay_us / 1000 + med(on, "batch_run_ms")
                bound = f"{'yes' if med(on, 'p99_ms') <= limit else 'no'} ({limit:.2f} ms)"
            mb = f"{med(cell, 'mean_batch'):.1f}" if label == "on" else ""
            eng = f"{med(cell, 'engine_us_per_row'):.2f}" if label == "on" else ""
            print(f"| {name} | {label} | {med(cell, 'rows_per_s'):,.0f} | {med(cell, 'p50_ms'):.2f} | "
                  f"{med(cell, 'p99_ms'):.2f} | {med(cell, 'cpu_us_per_row'):.1f} | {med(cell, 'cpu_share'):.2f} | "
                  f"{mb} | {eng} | {ratio} | {cpu_ratio} | {bound} |")
    bad = sum(r["non_2xx"] for cell in results.values() for r in cell)
    print(f"\nNon-2xx answers over all runs: {bad}.")


if __name__ == "__main__":
    main()
