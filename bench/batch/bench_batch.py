#!/usr/bin/python3
"""inferd batch against the Python batch jobs (python_job.py), side by side
in one run: rows/s end to end (process start to exit, model load included)
on N iris rows, from a CSV file and from a PostgreSQL table (started here:
initdb + pg_ctl on a free port, tests/batch's harness). Medians of repeats,
alternating who goes first; the load average is recorded before and after.
Writes bench/batch/RESULTS.md and bench/batch/raw.jsonl.

Usage: bench/batch/run.sh [--rows N] [--repeats R] [--book-repeats B]
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "batch"))
from batch_harness import Postgres  # noqa: E402

PY = "/usr/bin/python3"
JOB = os.path.join(HERE, "python_job.py")
MODEL = os.path.join(ROOT, "models", "iris_svc.onnx")
TABLE = ["--table", "items", "--id-column", "id", "--input-column", "values",
         "--output-column", "prediction"]


def iris_rows(n, seed=0):
    from sklearn.datasets import load_iris
    base = load_iris().data
    rng = np.random.default_rng(seed)
    rows = base[rng.integers(0, len(base), n)] + rng.normal(0, 0.1, (n, 4))
    return np.round(np.clip(rows, 0.1, None), 1)


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def timed(argv, env=None):
    start = time.monotonic()
    r = subprocess.run(argv, capture_output=True, text=True, env=env)
    seconds = time.monotonic() - start
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {r.stderr[-2000:]}")
    return seconds


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--book-repeats", type=int, default=1,
                        help="repeats of the per-row book jobs (minutes each at 1M rows)")
    parser.add_argument("--inferd", default=os.path.join(ROOT, "build", "inferd"))
    parser.add_argument("--out", default=os.path.join(HERE, "RESULTS.md"))
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="inferd-bench-batch-")
    n = args.rows
    rows = iris_rows(n)
    csv_path = os.path.join(work, "iris.csv")
    with open(csv_path, "w") as f:
        f.write("id,sepal_length,sepal_width,petal_length,petal_width\n")
        for i, r in enumerate(rows):
            f.write("%d,%.1f,%.1f,%.1f,%.1f\n" % (i + 1, *r))
    load_before = loadavg()
    raw = []
    started = time.time()

    def record(case, who, seconds, command):
        raw.append({"case": case, "who": who, "seconds": seconds, "rows": n,
                    "rows_per_s": n / seconds, "command": command})
        print(f"{case:4} {who:28} {seconds:8.2f} s {n / seconds:12.0f} rows/s", flush=True)

    # ---- CSV ----
    inferd_csv = [args.inferd, "batch", MODEL, "--input", csv_path, "--output",
                  os.path.join(work, "inferd.csv"), "--outputs", "output_probability", "--quiet"]
    pandas_csv = [PY, JOB, "csv-pandas", "--input", csv_path, "--output",
                  os.path.join(work, "pandas.csv")]
    book_csv = [PY, JOB, "csv-book", "--input", csv_path, "--output", os.path.join(work, "book.csv")]
    for rep in range(args.repeats):
        order = [("inferd batch", inferd_csv), ("python pandas chunks", pandas_csv)]
        for who, argv in (order if rep % 2 == 0 else order[::-1]):
            record("csv", who, timed(argv), argv)
        if rep < args.book_repeats:
            record("csv", "python per row (book)", timed(book_csv), book_csv)
    # the two sides compute the same function
    import pandas as pd
    a = pd.read_csv(os.path.join(work, "inferd.csv"))
    b = pd.read_csv(os.path.join(work, "pandas.csv"))
    cols = ["output_probability_0", "output_probability_1", "output_probability_2"]
    agreement = {"rows": len(a),
                 "same_label": float((a[cols].values.argmax(1) == b[cols].values.argmax(1)).mean()),
                 "max_probability_difference": float(np.abs(a[cols].values - b[cols].values).max())}

    # ---- PostgreSQL ----
    pg = Postgres()
    try:
        values_path = os.path.join(work, "items.csv")
        with open(values_path, "w") as f:
            for i, r in enumerate(rows):
                f.write('%d,"[%.1f, %.1f, %.1f, %.1f]"\n' % (i + 1, *r))
        pg.sql("""CREATE TABLE items (id SERIAL PRIMARY KEY, "values" JSON NOT NULL,
                  prediction JSON NULL,
                  created_datetime TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(),
                  updated_datetime TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now());""")
        pg.sql(f"\\copy items (id, \"values\") FROM '{values_path}' WITH (FORMAT csv)")

        def reset():
            pg.sql("UPDATE items SET prediction = NULL; VACUUM (FULL, ANALYZE) items;")

        inferd_db = [args.inferd, "batch", MODEL, "--db", pg.url, *TABLE, "--outputs",
                     "output_probability", "--updated-column", "updated_datetime", "--quiet"]
        chunked_db = [PY, JOB, "db-chunked", "--db", pg.url]
        book_db = [PY, JOB, "db-book", "--db", pg.url]

        def check_done(who):
            left = int(pg.sql("SELECT count(*) FROM items WHERE prediction IS NULL")[0][0])
            if left:
                raise RuntimeError(f"{who} left {left} rows without a prediction")

        for rep in range(args.repeats):
            order = [("inferd batch", inferd_db), ("python psycopg2 chunks", chunked_db)]
            for who, argv in (order if rep % 2 == 0 else order[::-1]):
                reset()
                record("pg", who, timed(argv), argv)
                check_done(who)
            if rep < args.book_repeats:
                reset()
                record("pg", "python per row (book, ORM)", timed(book_db), book_db)
                check_done("book")
        sample = pg.sql("SELECT prediction FROM items WHERE id = 1")[0][0]
    finally:
        pg.stop()
    load_after = loadavg()
    with open(os.path.join(HERE, "raw.jsonl"), "w") as f:
        for r in raw:
            f.write(json.dumps(r) + "\n")
    write_report(args, raw, agreement, sample, load_before, load_after, time.time() - started)
    subprocess.run(["rm", "-rf", work])


def write_report(args, raw, agreement, sample, load_before, load_after, wall):
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    lines = ["# inferd batch vs Python batch jobs", "",
             "Written by `bench/batch/run.sh` (raw runs: `bench/batch/raw.jsonl`). Regenerate with:",
             "", "```", f"bench/batch/run.sh --rows {args.rows} --repeats {args.repeats} "
             f"--book-repeats {args.book_repeats}", "```", "",
             "## Setup", "",
             f"- {args.rows:,} iris rows (scikit-learn's iris, resampled with N(0, 0.1) noise, one "
             "decimal), the same rows in a CSV file and in a PostgreSQL 15 table "
             "`items(id, values JSON, prediction JSON NULL, created_datetime, updated_datetime)` "
             "(the book's), served on 127.0.0.1 by a cluster made for the run (initdb, fsync=off); "
             "every table run starts from all predictions NULL (UPDATE + VACUUM FULL).",
             f"- Machine: {os.cpu_count()} cores, shared: load average {load_before} before and "
             f"{load_after} after the run (1, 5, 15 min). Expect noise.",
             f"- inferd commit {commit}{' with uncommitted changes' if dirty else ''}, Release build; "
             f"`--threads` default (one chunk worker per core), `--batch-size` default 1024. "
             f"Python {platform.python_version()} (Debian), scikit-learn, pandas, SQLAlchemy, "
             "psycopg2 from Debian.",
             "- Model: `models/iris_svc.onnx` for inferd; for Python the same scikit-learn pipeline "
             "it was converted from (tools/fixtures, StandardScaler + SVC(probability=True)), since "
             "ONNX Runtime (the book's) is not in Debian. Every job writes the class probabilities "
             "only (the book's job stores just those; inferd: `--outputs output_probability`). On "
             f"the CSV rows inferd and pandas pick the same most likely class for "
             f"{agreement['same_label'] * 100:.3f} % of the rows, probabilities within "
             f"{agreement['max_probability_difference']:.1e} (inferd computes in float32).",
             "- Times are wall clock from process start to exit (imports, model load, reading, "
             "predicting, writing). Each case: median over repeats; ± is half the range.",
             f"- Measuring took {wall:.0f} s.", "",
             "## Results", "",
             "| source | job | runs | median s | rows/s | inferd's rows/s ÷ this |",
             "|---|---|---:|---:|---:|---:|"]
    for case in ("csv", "pg"):
        runs = [r for r in raw if r["case"] == case]
        whos = list(dict.fromkeys(r["who"] for r in runs))
        medians = {w: statistics.median(r["seconds"] for r in runs if r["who"] == w) for w in whos}
        for w in whos:
            secs = [r["seconds"] for r in runs if r["who"] == w]
            spread = (max(secs) - min(secs)) / 2 / medians[w] * 100
            ratio = medians[w] / medians["inferd batch"]
            lines.append(f"| {'CSV file' if case == 'csv' else 'PostgreSQL'} | {w} | {len(secs)} | "
                         f"{medians[w]:.2f} ±{spread:.0f}% | {args.rows / medians[w]:,.0f} | "
                         f"{ratio:.1f}× |")
    lines += ["", "## Commands", ""]
    for case in ("csv", "pg"):
        seen = set()
        for r in raw:
            if r["case"] == case and r["who"] not in seen:
                seen.add(r["who"])
                lines.append(f"- {r['who']} ({case}): `{' '.join(r['command'])}`")
    lines += ["", f"A prediction cell as inferd writes it (`--outputs output_probability`, the "
              f"book's shape): `{sample}`", ""]
    with open(args.out, "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
