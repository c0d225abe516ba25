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
    ap.add_argument("--list-misses", action="store_true",
                    help="print the cells to profile (label threads batch), one a line, and stop")
    ap.add_argument("--profiles", help="folder of bench_inferd --profile tables, "
                    "<label>_t<threads>_b<batch>.txt, shown for the cells that miss")
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
    to_profile = []  # (label, threads, batch, kind) of each miss
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
                to_profile.append((label, threads, batch, "time"))
            if si and batch >= 8 and si < 1.7:
                misses.append("%s, batch %d: 2-thread speed-up %.2f× (goal 1.7×)" % (label, batch, si))
                to_profile.append((label, 2, batch, "speed-up"))
            if ri and ro and ri >= ro:
                misses.append("%s, %d thread(s), batch %d: peak RSS %.1f MB, ORT %.1f MB" % (label, threads, batch, ri, ro))
        out.append("")
    if args.list_misses:
        cells_to_run = []
        for label, threads, batch, kind in to_profile:
            for t in ([1, 2] if kind == "speed-up" else [threads]):
                if (label, t, batch) not in cells_to_run:
                    cells_to_run.append((label, t, batch))
        print("\n".join("%s %d %d" % c for c in cells_to_run))
        return
    out += ["### Cells that miss the goals", ""] + ["- " + m for m in misses] + [""]
    if args.profiles and to_profile:
        out += profile_section(args.profiles, to_profile)
    if errors:
        out += ["### Errors", ""] + ["- " + e for e in errors] + [""]
    print("\n".join(out))


def read_profile(folder, label, threads, batch):
    """bench_inferd --profile's table: node -> (us a run, share %, runs a run, op)."""
    try:
        with open("%s/%s_t%d_b%d.txt" % (folder, label, threads, batch)) as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    nodes = {}
    for line in lines:
        fields = line.split()
        if len(fields) < 5 or "(sum)" in fields:
            continue
        try:
            nodes[" ".join(fields[4:])] = (float(fields[0]), fields[1], float(fields[2]), fields[3])
        except ValueError:
            continue  # the title and the header
    return nodes


def profile_section(folder, to_profile, top=8):
    out = ["### Where the time goes in the cells that miss (`bench_inferd --profile`)", "",
           "One more run of inferd per cell with per-node timers (`ifd_session_options.profile`; "
           "~50 ns a node added). A node's µs are its median over the last 4096 timed runs (at "
           "most); on a run split over the threads (*runs/run* 2) they are the slices' sum, so "
           "CPU time, and the node speed-up is not a wall-time one.", ""]
    for label, threads, batch, kind in to_profile:
        here = read_profile(folder, label, threads, batch)
        if here is None:
            continue
        if kind == "speed-up":
            one = read_profile(folder, label, 1, batch) or {}
            out += ["**%s, batch %d, 2-thread speed-up**: the %d nodes taking most time at 1 "
                    "thread, and their own speed-up" % (label, batch, top), "",
                    "| node | op | 1t µs | 2t µs | runs/run at 2t | node speed-up |",
                    "|---|---|---:|---:|---:|---:|"]
            for name in sorted(one, key=lambda n: -one[n][0])[:top]:
                t1, t2 = one[name][0], here.get(name, (None,))[0]
                out.append("| %s | %s | %.1f | %s | %s | %s |" % (
                    name, one[name][3], t1, "-" if t2 is None else "%.1f" % t2,
                    "-" if t2 is None else "%.2f" % here[name][2],
                    "-" if not t2 else "%.2f×" % (t1 / t2)))
            s1, s2 = sum(v[0] for v in one.values()), sum(v[0] for v in here.values())
            out += ["| (all %d nodes) | | %.1f | %.1f | | %.2f× |" % (len(here), s1, s2,
                                                                        s1 / s2 if s2 else 0), ""]
        else:
            out += ["**%s, %d thread(s), batch %d**: the %d slowest nodes" % (label, threads, batch, top),
                    "", "| node | op | µs a run | share |", "|---|---|---:|---:|"]
            for name in sorted(here, key=lambda n: -here[n][0])[:top]:
                out.append("| %s | %s | %.1f | %s |" % (name, here[name][3], here[name][0], here[name][1]))
            out.append("")
    return out


if __name__ == "__main__":
    main()
