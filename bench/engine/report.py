#!/usr/bin/python3
"""Turns bench/engine/run.sh's raw JSON lines into the markdown section of
bench/RESULTS.md: per model, one row per (threads, batch) with both engines'
median time per run, their ratio, inferd's 2-thread speed-up and both peak
RSS figures; cells that miss the issue's goals are listed at the end."""
import argparse
import json
import statistics
from collections import defaultdict


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw", required=True)
    ap.add_argument("--command", required=True)
    ap.add_argument("--load-before", required=True)
    ap.add_argument("--load-after", required=True)
    ap.add_argument("--seconds", required=True)
    args = ap.parse_args()
    cells = defaultdict(lambda: defaultdict(list))
    errors = []
    order = []
    with open(args.raw) as f:
        for line in f:
            d = json.loads(line)
            key = (d["label"], d["threads"], d["batch"])
            if d["label"] not in order:
                order.append(d["label"])
            if d.get("status") != "ok":
                errors.append("%s %s: %s" % (key, d["engine"], d.get("error", "?")))
                continue
            cells[key][d["engine"]].append(d)

    def med(key, engine, field):
        runs = [r for r in cells.get(key, {}).get(engine, []) if field in r]
        return statistics.median(r[field] for r in runs) if runs else None

    out = ["## Engine at real sizes (issue 14)", "",
           "Command: `%s` (%s s of measuring). Load average before: %s; after: %s. "
           "Time = median µs per run (one process per cell and engine); RSS = the process's "
           "peak (MB). *inferd/ORT* < 1 means inferd is faster; *2t speed-up* = inferd's "
           "1-thread time / its 2-thread time at the same batch. *CPU µs/run* is the process's CPU "
           "time (all threads) over the timed runs per run: on a loaded machine the wall time "
           "includes waiting for a core and the CPU time does not, so at 1 thread *CPU "
           "inferd/ORT* is the fairer ratio (ORT's includes node's event loop)." %
           (args.command, args.seconds, args.load_before.split()[0], args.load_after.split()[0]), ""]
    misses = []
    for label in order:
        out += ["### " + label, "",
                "| threads | batch | inferd µs | ORT µs | inferd/ORT | inferd 2t speed-up | ORT 2t speed-up | CPU µs/run inferd / ORT | CPU inferd/ORT | RSS MB inferd / ORT |",
                "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for key in sorted(k for k in cells if k[0] == label):
            _, threads, batch = key
            i, o = med(key, "inferd", "median_us"), med(key, "ort", "median_us")
            ri, ro = med(key, "inferd", "peak_rss_mb"), med(key, "ort", "peak_rss_mb")
            one = (label, 1, batch)
            si = so = None
            if threads == 2 and i and med(one, "inferd", "median_us"):
                si = med(one, "inferd", "median_us") / i
            if threads == 2 and o and med(one, "ort", "median_us"):
                so = med(one, "ort", "median_us") / o
            ratio = i / o if i and o else None
            ci, co = med(key, "inferd", "cpu_us_per_run"), med(key, "ort", "cpu_us_per_run")
            cratio = ci / co if ci and co else None
            fmt = lambda v, f="%.1f": "-" if v is None else f % v
            out.append("| %d | %d | %s | %s | %s | %s | %s | %s / %s | %s | %s / %s |" % (
                threads, batch, fmt(i), fmt(o), fmt(ratio, "%.2f×"), fmt(si, "%.2f×"),
                fmt(so, "%.2f×"), fmt(ci), fmt(co), fmt(cratio, "%.2f×"), fmt(ri), fmt(ro)))
            if ratio and ratio > 1.0:
                misses.append("%s, %d thread(s), batch %d: inferd %.2f× ORT's time" % (label, threads, batch, ratio))
            if si and batch >= 8 and si < 1.7:
                misses.append("%s, batch %d: 2-thread speed-up %.2f× (goal 1.7×)" % (label, batch, si))
            if ri and ro and ri >= ro:
                misses.append("%s, %d thread(s), batch %d: peak RSS %.1f MB, ORT %.1f MB" % (label, threads, batch, ri, ro))
        out.append("")
    out += ["### Cells that miss the goals", ""] + ["- " + m for m in misses] + [""]
    if errors:
        out += ["### Errors", ""] + ["- " + e for e in errors] + [""]
    print("\n".join(out))


if __name__ == "__main__":
    main()
