#!/usr/bin/python3
"""Resource use of a server's whole process tree (a gunicorn master and its
workers, or inferd's one process), for bench/serve/run.sh.

    procstat.py memory PID   samples every 200 ms until SIGTERM, then prints
                             one JSON line with the peaks:
        peak_rss_kib  sum of VmRSS over the tree (what `ps` adds up; pages
                      forked workers share with their master count once per
                      process)
        peak_pss_kib  sum of Pss from smaps_rollup (shared pages split
                      between their users: the tree's real footprint)
    procstat.py cpu PID      prints the CPU time (user + system, seconds)
                             the tree has used so far; run.sh takes the
                             difference around a load run for the server's
                             CPU cost per request, which unlike requests/s
                             does not depend on how much of the machine the
                             load generator and other jobs take.
"""
import json
import os
import signal
import sys
import time


def tree(root, cpu=None):
    children = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        children.setdefault(int(fields[1]), []).append(int(name))
        if cpu is not None:  # utime + stime of the process and its reaped children
            cpu[int(name)] = sum(int(f) for f in fields[11:15])
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def field_kib(path, key):
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_seconds(root):
    cpu = {}
    pids = tree(root, cpu)
    return sum(cpu.get(p, 0) for p in pids) / os.sysconf("SC_CLK_TCK")


def memory(root):
    peak = {"peak_rss_kib": 0, "peak_pss_kib": 0, "processes": 0, "samples": 0}
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    while not stop and os.path.exists("/proc/%d" % root):
        pids = tree(root)
        rss = sum(field_kib("/proc/%d/status" % p, "VmRSS:") for p in pids)
        pss = sum(field_kib("/proc/%d/smaps_rollup" % p, "Pss:") for p in pids)
        peak["peak_rss_kib"] = max(peak["peak_rss_kib"], rss)
        peak["peak_pss_kib"] = max(peak["peak_pss_kib"], pss)
        peak["processes"] = max(peak["processes"], len(pids))
        peak["samples"] += 1
        time.sleep(0.2)
    print(json.dumps(peak), flush=True)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("memory", "cpu"):
        sys.exit("usage: procstat.py memory|cpu PID")
    if sys.argv[1] == "cpu":
        print("%.3f" % cpu_seconds(int(sys.argv[2])))
    else:
        memory(int(sys.argv[2]))
