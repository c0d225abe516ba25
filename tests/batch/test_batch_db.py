"""`inferd batch --db`: the book's batch pattern on a real SQLite file and a
real PostgreSQL server (started and stopped here), on the book's table
items(id, values JSON, prediction JSON NULL, created_datetime,
updated_datetime). A trigger records every write of a prediction, so "every
row predicted exactly once" is checked, not assumed: two concurrent runs, a
run killed with SIGKILL mid-way (only whole chunks are ever written) and run
again, shards; predictions match `inferd predict` on the same rows. Bad
cells, bad URLs, missing tables and columns, and identifiers carrying SQL
each get a clear error.

Run with Debian's python: /usr/bin/python3 tests/batch/test_batch_db.py
"""
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time
import unittest

from batch_harness import (BOOK_LABELS, book_labels, BOOK_MODEL, INFERD, SLOW, SOURCE, Postgres, book_rows,
                           postgres_available, predict, run_batch, skip_or_fail)

TABLE_FLAGS = ["--table", "items", "--id-column", "id", "--input-column", "values",
               "--output-column", "prediction"]


def rows_written(stderr):
    m = re.search(r"(\d+) rows written", stderr)
    return int(m.group(1)) if m else None


class BatchDbCases:
    """The cases, for each backend: subclasses provide create(rows),
    predictions(), writes(), url and execute()."""

    def setUp(self):
        rng = random.Random(3)
        base = book_rows()
        self.rows = [base[rng.randrange(len(base))] for _ in range(3000)]

    def expected(self, rows):
        out = predict(BOOK_MODEL, rows)
        return [{"output_label": out["output_label"][i],
                 "output_probability": out["output_probability"][i]} for i in range(len(rows))]

    def batch(self, *extra, **kw):
        return run_batch([BOOK_MODEL, "--db", self.url, *TABLE_FLAGS, *extra], **kw)

    def check_every_row_once(self):
        predictions = self.predictions()
        self.assertEqual(len(predictions), len(self.rows))
        self.assertTrue(all(p is not None for p in predictions.values()),
                        [i for i, p in predictions.items() if p is None][:10])
        writes = self.writes()
        self.assertEqual(sorted(writes), sorted(predictions), "a row was predicted twice or never")
        expected = self.expected(self.rows)
        for i, p in predictions.items():
            self.assertEqual(p, expected[i - 1], f"row {i}")

    def done_count(self):
        return sum(p is not None for p in self.predictions().values())

    def test_two_concurrent_runs_predict_every_row_once(self):
        self.create(self.rows)
        argv = [INFERD, "batch", BOOK_MODEL, "--db", self.url, *TABLE_FLAGS, "--batch-size", "25",
                "--threads", "1"]
        procs = [subprocess.Popen(argv, stderr=subprocess.PIPE, text=True) for _ in range(2)]
        outs = [p.communicate(timeout=300 * SLOW)[1] for p in procs]
        for p, err in zip(procs, outs):
            self.assertEqual(p.returncode, 0, err)
        counts = [rows_written(err) for err in outs]
        self.assertEqual(sum(counts), len(self.rows), outs)
        self.assertTrue(all(c > 0 for c in counts), f"the runs did not overlap: {counts}")
        self.check_every_row_once()
        # a third run finds nothing left to do
        r = self.batch()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(rows_written(r.stderr), 0)

    def test_a_killed_run_leaves_whole_chunks_and_a_rerun_finishes(self):
        self.create(self.rows)
        argv = [INFERD, "batch", BOOK_MODEL, "--db", self.url, *TABLE_FLAGS, "--batch-size", "10",
                "--threads", "1", "--quiet"]
        kills = 0
        done = 0
        for attempt in range(2):
            before = done
            proc = subprocess.Popen(argv)
            # kill it as soon as it has committed something of its own
            deadline = time.time() + 60 * SLOW
            while time.time() < deadline and proc.poll() is None and self.done_count() <= before:
                time.sleep(0.01)
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            proc.wait()
            done = self.done_count()
            self.assertEqual(done % 10, 0, f"{done} rows predicted: a chunk was half written")
        self.assertEqual(kills, 2)
        self.assertLess(done, len(self.rows), "the run finished before it was killed")
        r = self.batch("--batch-size", "10")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(rows_written(r.stderr), len(self.rows) - done)
        self.check_every_row_once()

    def test_shards_split_the_table(self):
        self.create(self.rows[:200])
        self.rows = self.rows[:200]
        r = self.batch("--shard", "1/2")
        self.assertEqual(r.returncode, 0, r.stderr)
        predictions = self.predictions()
        self.assertEqual({i for i, p in predictions.items() if p is not None},
                         {i for i in predictions if i % 2 == 1})
        r = self.batch("--shard", "auto/2", env={"JOB_COMPLETION_INDEX": "0"})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(rows_written(r.stderr), 100)
        self.check_every_row_once()
        r = self.batch("--shard", "auto/2", env={"JOB_COMPLETION_INDEX": ""})
        self.assertEqual(r.returncode, 1)
        self.assertIn("JOB_COMPLETION_INDEX is not set", r.stderr)
        r = self.batch("--shard", "2/2")
        self.assertEqual(r.returncode, 1)
        self.assertIn("I must be from 0 to 1", r.stderr)

    def test_bad_cells_are_reported_with_their_row_id_and_left_null(self):
        self.create(self.rows[:30])
        self.execute("UPDATE items SET \"values\" = '[1, 2, 3]' WHERE id = 5")
        self.execute("UPDATE items SET \"values\" = '[\"a\", 2, 3, 4]' WHERE id = 9")
        if self.backend == "sqlite":  # PostgreSQL's JSON column refuses non-JSON itself
            self.execute("UPDATE items SET \"values\" = 'not json' WHERE id = 12")
        errors = os.path.join(self.dir, "errors.txt")
        r = self.batch("--errors", errors, "--batch-size", "8")
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(errors) as f:
            lines = f.read().splitlines()
        self.assertIn("table items, id 5: column 'values': 3 values, the model takes 4 per row",
                      lines[0])
        self.assertIn("table items, id 9: column 'values': value 1 is a string, expected a number",
                      lines[1])
        bad = {5, 9} | ({12} if self.backend == "sqlite" else set())
        if self.backend == "sqlite":
            self.assertIn("id 12: column 'values' is not JSON", lines[2])
        self.assertEqual(len(lines), len(bad))
        predictions = self.predictions()
        self.assertEqual({i for i, p in predictions.items() if p is None}, bad)
        # without --errors they go to stderr, named by row id; --max-errors stops the run
        r = self.batch()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("id 5: column 'values': 3 values", r.stderr)
        self.assertIn(f"0 rows written to items in", r.stderr)
        r = self.batch("--max-errors", "2")
        self.assertEqual(r.returncode, 1)
        self.assertIn("stopped after 2 bad rows (--max-errors 2); the last, id 9:", r.stderr)

    def test_book_shaped_cells_labels_and_updated_time(self):
        self.create(self.rows[:40])
        self.execute("UPDATE items SET updated_datetime = '2000-01-01 00:00:00'")
        r = self.batch("--outputs", "output_probability", "--updated-column", "updated_datetime")
        self.assertEqual(r.returncode, 0, r.stderr)
        expected = self.expected(self.rows[:40])
        predictions = self.predictions()
        for i, p in predictions.items():
            # the book's cell: {"0": p0, "1": p1, "2": p2}
            self.assertEqual(p, expected[i - 1]["output_probability"])
        stale = self.execute("SELECT count(*) FROM items WHERE updated_datetime < '2001-01-01'")
        self.assertEqual(int(stale[0][0]), 0)
        self.execute("UPDATE items SET prediction = NULL")
        r = self.batch("--labels", BOOK_LABELS)
        self.assertEqual(r.returncode, 0, r.stderr)
        labels = book_labels()
        for i, p in self.predictions().items():
            self.assertEqual(p["label"], labels[str(expected[i - 1]["output_label"])])

    def test_missing_tables_columns_and_sql_in_flags_are_refused(self):
        self.create(self.rows[:5])
        cases = [
            (["--table", "nope"], "table 'nope' does not exist"),
            (["--output-column", "predicted"], "has no column 'predicted' (--output-column)"),
            (["--input-column", "vals"], "has no column 'vals' (--input-column)"),
            (["--table", "items; DROP TABLE items"], "expected a plain SQL name"),
            (["--output-column", 'prediction" = 1; --'], "expected a plain SQL name"),
            (["--updated-column", "nope"], "has no column 'nope' (--updated-column)"),
        ]
        for flags, message in cases:
            argv = list(TABLE_FLAGS)
            for k in range(0, len(flags), 2):
                if flags[k] in argv:
                    argv[argv.index(flags[k]) + 1] = flags[k + 1]
                else:
                    argv += flags[k:k + 2]
            r = run_batch([BOOK_MODEL, "--db", self.url, *argv])
            self.assertEqual(r.returncode, 1, flags)
            self.assertIn(message, r.stderr, flags)
        self.assertEqual(len(self.predictions()), 5)  # the table is intact
        self.assertTrue(all(p is None for p in self.predictions().values()))


class SqliteBatch(BatchDbCases, unittest.TestCase):
    backend = "sqlite"

    def setUp(self):
        super().setUp()
        self.dir = tempfile.mkdtemp(prefix="inferd-batch-sqlite-")
        self.path = os.path.join(self.dir, "items.db")
        self.url = "sqlite:///" + self.path  # sqlite:////abs/path: an absolute path

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def execute(self, sql):
        with sqlite3.connect(self.path) as db:
            return db.execute(sql).fetchall()

    def create(self, rows):
        with sqlite3.connect(self.path) as db:
            db.executescript("""
                CREATE TABLE items (id INTEGER PRIMARY KEY, "values" TEXT NOT NULL,
                                    prediction TEXT NULL,
                                    created_datetime TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
                                    updated_datetime TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP);
                CREATE TABLE prediction_writes (id INTEGER);
                CREATE TRIGGER count_writes AFTER UPDATE OF prediction ON items
                WHEN NEW.prediction IS NOT NULL BEGIN INSERT INTO prediction_writes VALUES (NEW.id); END;
            """)
            db.executemany('INSERT INTO items (id, "values") VALUES (?, ?)',
                           [(i + 1, json.dumps(r)) for i, r in enumerate(rows)])

    def predictions(self):
        with sqlite3.connect(self.path) as db:
            return {i: json.loads(p) if p is not None else None
                    for i, p in db.execute("SELECT id, prediction FROM items")}

    def writes(self):
        with sqlite3.connect(self.path) as db:
            return [i for (i,) in db.execute("SELECT id FROM prediction_writes")]

    def test_urls_that_do_not_parse_or_open(self):
        for url, message in [("sqlite://relative.db", "expected sqlite:///relative/path.db"),
                             ("mysql://x", "expected sqlite:///"),
                             ("sqlite:///" + self.path + ".missing", "cannot open")]:
            r = run_batch([BOOK_MODEL, "--db", url, *TABLE_FLAGS])
            self.assertEqual(r.returncode, 1, url)
            self.assertIn(message, r.stderr, url)
        self.assertFalse(os.path.exists(self.path + ".missing"))


class PostgresBatch(BatchDbCases, unittest.TestCase):
    backend = "postgresql"

    @classmethod
    def setUpClass(cls):
        cls.server = None
        if postgres_available():
            cls.server = Postgres()

    @classmethod
    def tearDownClass(cls):
        if cls.server:
            cls.server.stop()

    def setUp(self):
        if not self.server:
            skip_or_fail(self, "postgresql", "PostgreSQL (initdb, psql) is not installed")
        super().setUp()
        self.dir = tempfile.mkdtemp(prefix="inferd-batch-pg-")
        self.url = self.server.url
        self.server.sql("DROP TABLE IF EXISTS items; DROP TABLE IF EXISTS prediction_writes;")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def execute(self, sql):
        return self.server.sql(sql)

    def create(self, rows):
        values = ",".join("(%d, '%s')" % (i + 1, json.dumps(r)) for i, r in enumerate(rows))
        self.server.sql(f"""
            CREATE TABLE items (id SERIAL PRIMARY KEY, "values" JSON NOT NULL,
                                prediction JSON NULL,
                                created_datetime TIMESTAMP NOT NULL DEFAULT now(),
                                updated_datetime TIMESTAMP NOT NULL DEFAULT now());
            CREATE TABLE prediction_writes (id INTEGER);
            CREATE OR REPLACE FUNCTION count_writes() RETURNS trigger AS $$
            BEGIN INSERT INTO prediction_writes VALUES (NEW.id); RETURN NEW; END $$ LANGUAGE plpgsql;
            CREATE TRIGGER count_writes AFTER UPDATE OF prediction ON items
            FOR EACH ROW WHEN (NEW.prediction IS NOT NULL) EXECUTE FUNCTION count_writes();
            INSERT INTO items (id, "values") VALUES {values};
        """)

    def predictions(self):
        return {int(i): json.loads(p) if p else None
                for i, p in self.server.sql("SELECT id, prediction FROM items")}

    def writes(self):
        return [int(i) for (i,) in self.server.sql("SELECT id FROM prediction_writes")]

    def manifest_args(self, name, kind):
        """The container args of a deploy/kubernetes manifest, runnable here:
        the image's model path becomes the book's model, $(DB_URL) this server."""
        import yaml
        with open(os.path.join(SOURCE, "deploy", "kubernetes", name)) as f:
            doc, = [d for d in yaml.safe_load_all(f) if d and d["kind"] == kind]
        spec = doc["spec"]["jobTemplate"]["spec"] if kind == "CronJob" else doc["spec"]
        container, = spec["template"]["spec"]["containers"]
        self.assertEqual(container["command"], ["inferd"])
        args = [BOOK_MODEL if a == "/models/iris/1/model.onnx" else
                self.url if a == "$(DB_URL)" else a for a in container["args"]]
        return doc, spec, args

    def test_the_cronjob_manifest_runs_the_books_hourly_batch(self):
        doc, spec, args = self.manifest_args("batch-cronjob.yaml", "CronJob")
        self.assertEqual(doc["spec"]["schedule"], "0 * * * *")
        self.create(self.rows[:500])
        self.rows = self.rows[:500]
        r = run_batch(args[1:])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.check_every_row_once()

    def test_the_indexed_job_manifest_splits_the_table_by_completion_index(self):
        doc, spec, args = self.manifest_args("batch-indexed-job.yaml", "Job")
        self.assertEqual(spec["completionMode"], "Indexed")
        shards = int(args[args.index("--shard") + 1].split("/")[1])
        self.assertEqual(args[args.index("--shard") + 1], f"auto/{shards}")
        self.assertEqual(spec["completions"], shards)
        self.create(self.rows)
        # every pod at once, as Kubernetes runs them (parallelism = completions)
        procs = [subprocess.Popen([INFERD, *args], stderr=subprocess.PIPE, text=True,
                                  env={**os.environ, "JOB_COMPLETION_INDEX": str(k)})
                 for k in range(shards)]
        outs = [p.communicate(timeout=300 * SLOW)[1] for p in procs]
        for p, err in zip(procs, outs):
            self.assertEqual(p.returncode, 0, err)
        self.assertEqual([rows_written(e) for e in outs],
                         [sum(1 for i in range(1, len(self.rows) + 1) if i % shards == k)
                          for k in range(shards)])
        self.check_every_row_once()

    def test_urls_that_do_not_parse_or_connect(self):
        closed = f"postgresql://postgres:secret@127.0.0.1:{self.server.port + 1 if self.server.port < 65535 else 1}/postgres"
        for url, message in [("postgresql://host:5432/db?no_such_option=1", "does not parse"),
                             ("postgresql://127.0.0.1:notaport/db", 'invalid integer value "notaport"'),
                             (closed, "cannot connect")]:
            r = run_batch([BOOK_MODEL, "--db", url, *TABLE_FLAGS])
            self.assertEqual(r.returncode, 1, url)
            self.assertIn(message, r.stderr, url)
            self.assertNotIn("secret", r.stderr)
        r = run_batch([BOOK_MODEL, "--db", f"postgresql://127.0.0.1:{self.server.port}/postgres"
                       f"?user=nobody_here&password=secret", *TABLE_FLAGS])
        self.assertEqual(r.returncode, 1)
        self.assertIn("password=***", r.stderr)
        self.assertNotIn("secret", r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
