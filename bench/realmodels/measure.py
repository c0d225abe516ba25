#!/usr/bin/python3
"""The measuring half of bench/realmodels/run.sh (which builds first).

For every case of tests/fixtures/run_real_models.py it replays the case with
ONNX Runtime, keeping the inputs of each model's last call, writes them as
input_<i>.pb, then runs bench_inferd and bench_ort.js on them (--as-is)
alternately, REPEATS times each, the first engine swapped on every repeat,
and reports the medians over repeats: load time (file to runnable session),
batch-1 latency (each process's median run) and peak RSS (ru_maxrss).
"""
import os

# ONNX Runtime's telemetry off for the node processes started below (and for
# tools/ort_reference.py's); set before anything can start one.
os.environ["ORT_DISABLE_TELEMETRY"] = "1"

import argparse  # noqa: E402
import contextlib  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import onnx  # noqa: E402
from onnx import numpy_helper  # noqa: E402

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "fixtures"))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import run_real_models as fixtures  # noqa: E402
import real_models  # noqa: E402


def _batch_one(feeds):
    first = np.asarray(next(iter(feeds.values())))
    return first.ndim == 0 or first.shape[0] == 1


def record_inputs(name, cache, torch_models):
    """model path -> the feeds of its last batch-1 call in case NAME (ONNX
    Runtime's run); a model the case only calls with a batch (openWakeWord's
    embedding of all windows at once) keeps its last call."""
    sources, _, program, _ = fixtures.CASES[name]
    paths = fixtures.resolve(sources, cache, torch_models)
    last = {}

    def engine(model, feeds):
        if model not in last or _batch_one(feeds) or not _batch_one(last[model]):
            last[model] = feeds
        return fixtures.ort_engine(model, feeds)
    with contextlib.redirect_stdout(io.StringIO()):  # the case's own commentary
        program(engine, paths)
    roles = {path: role for role, path in paths.items()}
    return [(roles[model], model, feeds) for model, feeds in last.items()]


def write_inputs(model, feeds, folder):
    os.makedirs(folder, exist_ok=True)
    graph = onnx.load(model, load_external_data=False).graph
    initializers = {t.name for t in graph.initializer}
    names = [i.name for i in graph.input if i.name not in initializers]
    for k, input_name in enumerate(names):
        with open(os.path.join(folder, "input_%d.pb" % k), "wb") as f:
            f.write(numpy_helper.from_array(np.asarray(feeds[input_name]),
                                            input_name).SerializeToString())


def run_engine(command):
    # Linux keeps ru_maxrss across fork and exec: a process forked from this
    # Python (100+ MB with numpy and onnx loaded) would report Python's peak as
    # its own. A small shell forks the engine instead, so the figure is the
    # engine's; the shell is not exec'd away because a command follows.
    proc = subprocess.run(["/bin/sh", "-c", '"$@"; exit $?', "sh"] + command,
                          capture_output=True, text=True, timeout=900)
    lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
    if not lines:
        return {"status": "error", "error": (proc.stderr or proc.stdout)[-400:]}
    return json.loads(lines[-1])


def median_of(runs, field):
    values = [r[field] for r in runs if r.get("status") == "ok"]
    return statistics.median(values) if values else None


def fmt(value, digits=1):
    return "—" if value is None else "%.*f" % (digits, value)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--build", required=True)
    parser.add_argument("--command", default="bench/realmodels/run.sh")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--min-time", default="0.5")
    parser.add_argument("--threads", default="1")
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "realmodels", "RESULTS.md"))
    args = parser.parse_args()
    args.build = os.path.abspath(args.build)
    cache = os.path.join(args.build, "real-models-cache")
    work = os.path.join(args.build, "bench-realmodels")
    torch_models = os.path.join(work, "torch-architectures")
    subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "tools", "real_models.py"), "fetch",
                    "--cache", cache], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "tools", "gen_torch_architectures.py"),
                    "--out", torch_models], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    load_before = open("/proc/loadavg").read().split()[:3]
    started = time.time()
    rows = []
    for name in fixtures.CASES:
        for role, model, feeds in record_inputs(name, cache, torch_models):
            label = name if role == "model" else "%s: %s" % (name, role)
            folder = os.path.join(work, "inputs", label.replace(": ", "_"))
            write_inputs(model, feeds, folder)
            common = ["--input-from", folder, "--as-is", "--threads", args.threads,
                      "--min-time", args.min_time, "--min-iters", "20", "--warmup", "0.1"]
            inferd_cmd = [os.path.join(args.build, "bench", "bench_inferd"), model] + common
            ort_cmd = ["node", os.path.join(ROOT, "bench", "bench_ort.js"), model] + common
            runs = {"inferd": [], "ort": []}
            for repeat in range(args.repeats):
                order = [("inferd", inferd_cmd), ("ort", ort_cmd)]
                for engine, command in (order if repeat % 2 == 0 else order[::-1]):
                    runs[engine].append(run_engine(command))
            shapes = ", ".join("x".join(map(str, np.asarray(v).shape)) or "scalar"
                               for v in feeds.values())
            row = {"model": label, "size_mb": os.path.getsize(model) / 1e6, "inputs": shapes}
            for engine in runs:
                for field in ("load_ms", "median_us", "peak_rss_mb"):
                    row[engine + "_" + field] = median_of(runs[engine], field)
                errors = [r.get("error") for r in runs[engine] if r.get("status") != "ok"]
                row[engine + "_error"] = errors[0] if errors else None
            rows.append(row)
            print("%-40s inferd load %s ms, %s us, %s MB | ORT load %s ms, %s us, %s MB"
                  % (label, fmt(row["inferd_load_ms"]), fmt(row["inferd_median_us"]),
                     fmt(row["inferd_peak_rss_mb"]), fmt(row["ort_load_ms"]),
                     fmt(row["ort_median_us"]), fmt(row["ort_peak_rss_mb"])), flush=True)
    load_after = open("/proc/loadavg").read().split()[:3]
    with open(args.out, "w") as f:
        f.write(report(args, rows, load_before, load_after, time.time() - started))
    print("wrote %s" % args.out)
    failed = [r["model"] for r in rows if r["inferd_error"] or r["ort_error"]]
    return 1 if failed else 0


def report(args, rows, load_before, load_after, seconds):
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    lines = [
        "# Real-model fixtures: inferd vs ONNX Runtime",
        "",
        "Written by `%s` (commit %s). Load = model file to a runnable session "
        "(`ifd_model_load_file` + `ifd_session_create`; `InferenceSession.create`, "
        "graphOptimizationLevel all); latency = batch-1 median of one process's timed runs "
        "(at least %s s and 20 runs after 0.1 s warm-up), %s thread(s); peak RSS = the whole "
        "process's ru_maxrss (node alone is about 40 MB before onnxruntime-node loads, "
        "bench_inferd about 4 MB). Each figure is the median over %d fresh processes per engine, "
        "alternating which engine goes first. Inputs: the last step of each model's fixture in "
        "tests/fixtures/run_real_models.py (real speech, rendered text), fed as stored."
        % (args.command, commit, args.min_time, args.threads, args.repeats),
        "",
        "Machine: %s, %d cores, load average %s before and %s after (shared machine: expect "
        "noise); ONNX Runtime 1.30 via onnxruntime-node, node %s; %.0f s of measuring."
        % (platform.processor() or platform.machine(), os.cpu_count(), " ".join(load_before),
           " ".join(load_after), node, seconds),
        "",
        "| model | MB | inputs | inferd load ms | ORT load ms | inferd µs | ORT µs | ORT/inferd "
        "| inferd RSS MB | ORT RSS MB |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        ratio = (r["ort_median_us"] / r["inferd_median_us"]
                 if r["ort_median_us"] and r["inferd_median_us"] else None)
        lines.append("| %s | %.1f | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            r["model"], r["size_mb"], r["inputs"], fmt(r["inferd_load_ms"]),
            fmt(r["ort_load_ms"]), fmt(r["inferd_median_us"]), fmt(r["ort_median_us"]),
            "—" if ratio is None else "%.2f×" % ratio, fmt(r["inferd_peak_rss_mb"]),
            fmt(r["ort_peak_rss_mb"])))
    errors = [(r["model"], e, r[e + "_error"]) for r in rows for e in ("inferd", "ort")
              if r[e + "_error"]]
    if errors:
        lines += ["", "Errors:", ""] + ["- %s (%s): %s" % e for e in errors]
    lines += ["", "ORT/inferd > 1 means inferd is faster.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
