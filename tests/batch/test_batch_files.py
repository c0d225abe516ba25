"""`inferd batch` over files: CSV, JSON Lines and .npy round trips checked
against `inferd predict` on the same rows, labels, --columns, bad rows and
--errors/--max-errors, a model whose batch dimension is fixed at 1, and runs
killed with SIGKILL at random moments and resumed: every row exactly once,
byte for byte what an uninterrupted run writes.

Run with Debian's python: /usr/bin/python3 tests/batch/test_batch_files.py
"""
import csv
import io
import json
import os
import random
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

import numpy as np

from batch_harness import (BOOK_LABELS, book_labels, BOOK_MODEL, DEMO_MODEL, INFERD, SLOW, book_rows,
                           fixed_batch_model, predict, run_batch)

COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def write_csv(path, rows, ids=True, header=None):
    with open(path, "w") as f:
        f.write(",".join(header or ((["id"] if ids else []) + COLUMNS)) + "\n")
        for i, r in enumerate(rows):
            f.write(",".join(([str(1000 + i)] if ids else []) + [repr(v) for v in r]) + "\n")


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


class FileRoundTrips(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="inferd-batch-")
        cls.rows = book_rows()
        cls.expected = predict(BOOK_MODEL, cls.rows)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def path(self, name):
        return os.path.join(self.dir, name)

    def check_jsonl(self, lines, rows=None):
        rows = rows if rows is not None else list(range(len(self.rows)))
        self.assertEqual([line["row"] for line in lines], list(range(len(rows))))
        for line, r in zip(lines, rows):
            self.assertEqual(line["output_label"], self.expected["output_label"][r])
            self.assertEqual(line["output_probability"], self.expected["output_probability"][r])

    def test_csv_to_jsonl_matches_predict_with_a_partial_last_chunk(self):
        write_csv(self.path("in.csv"), self.rows)
        r = run_batch([BOOK_MODEL, "--input", self.path("in.csv"), "--output",
                       self.path("out.jsonl"), "--batch-size", "64"])
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = read_jsonl(self.path("out.jsonl"))
        self.check_jsonl(lines)
        self.assertEqual([line["id"] for line in lines], [1000 + i for i in range(len(self.rows))])
        self.assertIn("1000 rows written", r.stderr)
        self.assertFalse(os.path.exists(self.path("out.jsonl.partial")))
        self.assertFalse(os.path.exists(self.path("out.jsonl.resume")))

    def test_csv_to_csv_writes_predicts_digits_and_labels(self):
        write_csv(self.path("in2.csv"), self.rows)
        r = run_batch([BOOK_MODEL, "--input", self.path("in2.csv"), "--output",
                       self.path("out2.csv"), "--labels", BOOK_LABELS, "--batch-size", "1000"])
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(self.path("out2.csv")) as f:
            text = f.read()
        out = list(csv.DictReader(io.StringIO(text)))
        self.assertEqual(text.splitlines()[0], "row,id,output_label,output_probability_0,"
                         "output_probability_1,output_probability_2,label")
        labels = book_labels()
        self.assertEqual(len(out), len(self.rows))
        for i, row in enumerate(out):
            self.assertEqual(int(row["output_label"]), self.expected["output_label"][i])
            probs = self.expected["output_probability"][i]
            for k in "012":
                # same encoder as `inferd predict`: the text is the same digits
                self.assertEqual(float(row[f"output_probability_{k}"]), probs[k])
            self.assertEqual(row["label"], labels[str(self.expected["output_label"][i])])
        # the label of the book's published sample is setosa
        write_csv(self.path("one.csv"), [[5.1, 3.5, 1.4, 0.2]])
        r = run_batch([BOOK_MODEL, "--input", self.path("one.csv"), "--output",
                       self.path("one.jsonl"), "--labels", BOOK_LABELS])
        self.assertEqual(read_jsonl(self.path("one.jsonl"))[0]["label"], "setosa")

    def test_columns_pick_and_order_the_inputs(self):
        header = ["petal_width", "note", "sepal_length", "petal_length", "sepal_width"]
        with open(self.path("shuffled.csv"), "w") as f:
            f.write(",".join(header) + "\n")
            for r in self.rows:
                f.write(f'{r[3]!r},"a, ""quoted"" note",{r[0]!r},{r[2]!r},{r[1]!r}\n')
        r = run_batch([BOOK_MODEL, "--input", self.path("shuffled.csv"), "--output",
                       self.path("shuffled.jsonl"), "--columns", ",".join(COLUMNS)])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.check_jsonl(read_jsonl(self.path("shuffled.jsonl")))
        # without --columns the five columns do not fit four inputs: said at once
        r = run_batch([BOOK_MODEL, "--input", self.path("shuffled.csv"), "--output",
                       self.path("nope.jsonl")])
        self.assertEqual(r.returncode, 1)
        self.assertIn("5 input columns", r.stderr)
        self.assertIn("--columns", r.stderr)
        r = run_batch([BOOK_MODEL, "--input", self.path("shuffled.csv"), "--output",
                       self.path("nope.jsonl"), "--columns", "sepal_length,petal_size"])
        self.assertEqual(r.returncode, 1)
        self.assertIn("'petal_size', which is not in the header", r.stderr)
        self.assertFalse(os.path.exists(self.path("nope.jsonl")))

    def test_a_byte_order_mark_before_the_header_is_ignored(self):
        write_csv(self.path("bom.csv"), self.rows[:10])
        with open(self.path("bom.csv"), "rb") as f:
            text = f.read()
        with open(self.path("bom.csv"), "wb") as f:
            f.write(b"\xef\xbb\xbf" + text)
        r = run_batch([BOOK_MODEL, "--input", self.path("bom.csv"), "--output",
                       self.path("bom.jsonl")])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual([line["id"] for line in read_jsonl(self.path("bom.jsonl"))],
                         list(range(1000, 1010)))

    def test_jsonl_arrays_and_request_objects(self):
        with open(self.path("in.jsonl"), "w") as f:
            for i, r in enumerate(self.rows):
                if i % 3 == 0:
                    f.write(json.dumps(r) + "\n")
                elif i % 3 == 1:
                    f.write(json.dumps({"id": f"item-{i}", "data": [r]}) + "\n")
                else:
                    f.write(json.dumps({"float_input": r}) + "\n")
        r = run_batch([BOOK_MODEL, "--input", self.path("in.jsonl"), "--output",
                       self.path("from_jsonl.jsonl"), "--batch-size", "7"])
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = read_jsonl(self.path("from_jsonl.jsonl"))
        self.check_jsonl(lines)
        self.assertEqual(lines[1]["id"], "item-1")
        self.assertNotIn("id", lines[0])

    def test_npy_float32_and_float64(self):
        for dtype in (np.float32, np.float64):
            path = self.path(f"in_{np.dtype(dtype).name}.npy")
            np.save(path, np.array(self.rows, dtype=dtype))
            out = self.path(f"npy_{np.dtype(dtype).name}.jsonl")
            r = run_batch([BOOK_MODEL, "--input", path, "--output", out, "--batch-size", "100"])
            self.assertEqual(r.returncode, 0, r.stderr)
            self.check_jsonl(read_jsonl(out))
        # a 3-column array cannot feed 4 inputs
        np.save(self.path("narrow.npy"), np.zeros((5, 3), dtype=np.float32))
        r = run_batch([BOOK_MODEL, "--input", self.path("narrow.npy"), "--output",
                       self.path("narrow.csv")])
        self.assertEqual(r.returncode, 1)
        self.assertIn("3 values per row", r.stderr)

    def test_demo_model_and_fixed_batch_dimension(self):
        write_csv(self.path("demo.csv"), self.rows[:50], ids=False)
        r = run_batch([DEMO_MODEL, "--input", self.path("demo.csv"), "--output",
                       self.path("demo.jsonl"), "--outputs", "output_label"])
        self.assertEqual(r.returncode, 0, r.stderr)
        expected = predict(DEMO_MODEL, self.rows[:50])
        self.assertEqual([line["output_label"] for line in read_jsonl(self.path("demo.jsonl"))],
                         expected["output_label"])
        self.assertNotIn("output_probability", read_jsonl(self.path("demo.jsonl"))[0])
        fixed_batch_model(self.path("fixed.onnx"))
        r = run_batch([self.path("fixed.onnx"), "--input", self.path("demo.csv"), "--output",
                       self.path("fixed.jsonl"), "--batch-size", "16"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("batch dimension fixed at 1: running one row per engine call", r.stderr)
        lines = read_jsonl(self.path("fixed.jsonl"))
        self.assertEqual(len(lines), 50)
        for line, row in zip(lines, self.rows):
            self.assertEqual(line["y"], [float(np.float32(v) * np.float32(2) + np.float32(1)) for v in row])
        fixed_batch_model(self.path("fixed4.onnx"), batch=4)
        r = run_batch([self.path("fixed4.onnx"), "--input", self.path("demo.csv"), "--output",
                       self.path("fixed4.jsonl")])
        self.assertEqual(r.returncode, 1)
        self.assertIn("batch dimension fixed at 4", r.stderr)


class ProgressAndStoredModels(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="inferd-batch-progress-")
        self.rows = book_rows() * 20
        write_csv(os.path.join(self.dir, "in.csv"), self.rows)

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def test_a_terminal_gets_a_bar_with_rows_rate_and_eta(self):
        import pty
        master, slave = pty.openpty()
        proc = subprocess.Popen([INFERD, "batch", BOOK_MODEL, "--input",
                                 os.path.join(self.dir, "in.csv"), "--output",
                                 os.path.join(self.dir, "out.csv"), "--batch-size", "100"],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave)
        os.close(slave)
        text = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            text += chunk
        os.close(master)
        self.assertEqual(proc.wait(timeout=60 * SLOW), 0, text)
        text = text.decode()
        self.assertIn("\r[####################] 100%  20000 rows", text)
        self.assertRegex(text, r"\d+ rows/s  ETA 0:00  0 bad")
        self.assertIn("20000 rows written", text)

    def test_a_log_gets_plain_lines(self):
        r = run_batch([BOOK_MODEL, "--input", os.path.join(self.dir, "in.csv"), "--output",
                       os.path.join(self.dir, "out.jsonl")])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("\r", r.stderr)
        self.assertRegex(r.stderr, r"inferd batch: 20000 rows \(100\.0%\), \d+ rows/s, ETA 0:00, "
                         r"0 bad rows, done\n")

    def test_a_stored_model_by_reference_brings_its_labels(self):
        store = os.path.join(self.dir, "store")
        r = subprocess.run([INFERD, "models", "--store", store, "import", BOOK_MODEL, "--name",
                            "iris", "--labels", BOOK_LABELS], capture_output=True, text=True,
                           timeout=60 * SLOW)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = run_batch(["iris:1", "--store", store, "--input", os.path.join(self.dir, "in.csv"),
                       "--output", os.path.join(self.dir, "stored.jsonl"), "--quiet"])
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = read_jsonl(os.path.join(self.dir, "stored.jsonl"))
        labels = book_labels()
        self.assertEqual(len(lines), len(self.rows))
        self.assertTrue(all(line["label"] == labels[str(line["output_label"])] for line in lines))
        r = run_batch(["iris:7", "--store", store, "--input", os.path.join(self.dir, "in.csv"),
                       "--output", os.path.join(self.dir, "none.jsonl")])
        self.assertEqual(r.returncode, 1)
        self.assertIn("iris", r.stderr)


class BadRows(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="inferd-batch-bad-")
        self.rows = book_rows()[:20]

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def path(self, name):
        return os.path.join(self.dir, name)

    def bad_csv(self):
        lines = ["id,sepal_length,sepal_width,petal_length,petal_width"]
        for i, r in enumerate(self.rows):
            lines.append(f"{i}," + ",".join(map(repr, r)))
        lines[4] = "3,5.1,3.5,1.4"                 # line 5: wrong column count
        lines[8] = "7,5.1,abc,1.4,0.2"              # line 9: not a number
        lines[12] = '11,5.1,"3.5,1.4,0.2'           # line 13: unterminated quote
        with open(self.path("bad.csv"), "w") as f:
            f.write("\n".join(lines) + "\n")
        return self.path("bad.csv")

    def test_bad_csv_rows_go_to_the_errors_file_and_the_run_goes_on(self):
        r = run_batch([BOOK_MODEL, "--input", self.bad_csv(), "--output", self.path("out.jsonl"),
                       "--errors", self.path("errors.txt"), "--batch-size", "4"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("3 bad rows", r.stderr)
        with open(self.path("errors.txt")) as f:
            errors = f.read().splitlines()
        source = self.path("bad.csv")
        self.assertEqual(errors, [
            f"{source}:5: row 3 (id 3): 4 fields, the header has 5",
            f"{source}:9: row 7 (id 7): column 'sepal_width': 'abc' is not a number",
            f"{source}:13: row 11: field 3: unterminated quote",
        ])
        lines = read_jsonl(self.path("out.jsonl"))
        self.assertEqual([line["id"] for line in lines], [i for i in range(20) if i not in (3, 7, 11)])
        good = [r for i, r in enumerate(self.rows) if i not in (3, 7, 11)]
        self.assertEqual([line["output_label"] for line in lines],
                         predict(BOOK_MODEL, good)["output_label"])

    def test_without_errors_file_bad_rows_go_to_stderr_and_max_errors_stops(self):
        r = run_batch([BOOK_MODEL, "--input", self.bad_csv(), "--output", self.path("out.jsonl"),
                       "--batch-size", "2"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(f"{self.path('bad.csv')}:5: row 3 (id 3): 4 fields, the header has 5", r.stderr)
        self.assertIn(f"{self.path('bad.csv')}:9: row 7 (id 7): column 'sepal_width'", r.stderr)
        self.assertIn("17 rows written", r.stderr)
        self.assertIn("3 bad rows reported above", r.stderr)
        os.unlink(self.path("out.jsonl"))
        r = run_batch([BOOK_MODEL, "--input", self.bad_csv(), "--output", self.path("out.jsonl"),
                       "--batch-size", "2", "--max-errors", "1"])
        self.assertEqual(r.returncode, 1)
        self.assertIn("stopped after 1 bad rows (--max-errors 1); the last, line 5: 4 fields",
                      r.stderr)
        self.assertFalse(os.path.exists(self.path("out.jsonl")))
        # rows before it are kept, resumable
        self.assertEqual(len(read_jsonl(self.path("out.jsonl.partial"))), 3)

    def test_max_errors_stops_and_resume_continues_with_a_higher_limit(self):
        args = [BOOK_MODEL, "--input", self.bad_csv(), "--output", self.path("out.jsonl"),
                "--errors", self.path("errors.txt"), "--batch-size", "3"]
        r = run_batch(args + ["--max-errors", "2"])
        self.assertEqual(r.returncode, 1)
        self.assertIn("stopped after 2 bad rows (--max-errors 2)", r.stderr)
        self.assertIn("line 9: column 'sepal_width'", r.stderr)
        r = run_batch(args + ["--max-errors", "5", "--resume"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual([line["id"] for line in read_jsonl(self.path("out.jsonl"))],
                         [i for i in range(20) if i not in (3, 7, 11)])
        with open(self.path("errors.txt")) as f:
            self.assertEqual(len(f.read().splitlines()), 3)

    def test_a_jsonl_line_that_is_not_json_is_a_bad_row(self):
        with open(self.path("bad.jsonl"), "w") as f:
            f.write(json.dumps(self.rows[0]) + "\n")
            f.write("{not json\n")
            f.write(json.dumps({"data": [1, 2, 3]}) + "\n")
            f.write(json.dumps([1, "two", 3, 4]) + "\n")
            f.write(json.dumps(self.rows[1]) + "\n")
        r = run_batch([BOOK_MODEL, "--input", self.path("bad.jsonl"), "--output",
                       self.path("out.csv"), "--errors", self.path("errors.txt")])
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(self.path("errors.txt")) as f:
            errors = f.read().splitlines()
        self.assertEqual(len(errors), 3)
        self.assertTrue(errors[0].startswith(f"{self.path('bad.jsonl')}:2: row 1: not JSON"), errors[0])
        self.assertIn(":3: row 2: 3 values, the model takes 4 per row", errors[1])
        self.assertIn(":4: row 3: value 2 is a string, expected a number", errors[2])
        with open(self.path("out.csv")) as f:
            self.assertEqual(len(f.read().splitlines()), 3)

    def test_bad_flags_and_files_are_named(self):
        cases = [
            (["--input", self.path("missing.csv"), "--output", self.path("o.csv")], "missing.csv: No such file"),
            (["--input", self.bad_csv(), "--output", self.path("o.txt")], "give --output-format"),
            (["--input", self.bad_csv(), "--output", self.path("o.csv"), "--batch-size", "0"], "--batch-size"),
            (["--input", self.bad_csv(), "--output", self.path("o.csv"), "--outputs", "nope"], "no output 'nope'"),
            (["--input", self.bad_csv(), "--output", self.path("o.csv"), "--labels", self.bad_csv()], "--labels"),
            (["--input", self.bad_csv()], "--input and --output go together"),
        ]
        # --resume with nothing to resume starts from the first row (a Job's first attempt)
        r = run_batch([BOOK_MODEL, "--input", self.bad_csv(), "--output", self.path("o.jsonl"),
                       "--resume", "--errors", self.path("e.txt")])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("no interrupted run", r.stderr)
        self.assertEqual(len(read_jsonl(self.path("o.jsonl"))), 17)
        for args, message in cases:
            r = run_batch([BOOK_MODEL, *args])
            self.assertNotEqual(r.returncode, 0, args)
            self.assertIn(message, r.stderr, args)


class KilledAndResumed(unittest.TestCase):
    """SIGKILL at random moments, then --resume: the output is what one
    uninterrupted run writes, every row once."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="inferd-batch-kill-")
        rng = random.Random(7)
        base = book_rows()
        self.rows = [base[rng.randrange(len(base))] for _ in range(60000)]

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def path(self, name):
        return os.path.join(self.dir, name)

    def kill_and_resume(self, source, output, extra):
        args = [INFERD, "batch", BOOK_MODEL, "--input", source, "--output", output,
                "--batch-size", "50", "--threads", "1", "--quiet", *extra]
        base, ext = os.path.splitext(output)
        reference = base + ".reference" + ext
        r = subprocess.run(args[:6] + [reference] + args[7:], capture_output=True, text=True,
                           timeout=300 * SLOW)
        self.assertEqual(r.returncode, 0, r.stderr)
        rng = random.Random(11)
        partial = output + ".partial"
        kills = 0
        first = True
        while kills < 4:
            before = os.path.getsize(partial) if os.path.exists(partial) else 0
            proc = subprocess.Popen(args + ([] if first else ["--resume"]), stderr=subprocess.PIPE)
            first = False
            # wait until this attempt has written chunks of its own, then kill it at a random moment
            deadline = time.time() + 60 * SLOW
            while (time.time() < deadline and proc.poll() is None and
                   (os.path.getsize(partial) if os.path.exists(partial) else 0) <= before):
                time.sleep(0.002)
            time.sleep(rng.uniform(0, 0.03))
            if proc.poll() is not None:
                break
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            proc.stderr.close()
            kills += 1
            self.assertTrue(os.path.exists(output + ".resume"))
            self.assertFalse(os.path.exists(output))
        r = subprocess.run(args + ["--resume"], capture_output=True, text=True, timeout=300 * SLOW)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertGreaterEqual(kills, 2, "the run finished before it could be killed twice")
        with open(output, "rb") as f, open(reference, "rb") as g:
            got, want = f.read(), g.read()
        self.assertEqual(got, want)
        self.assertFalse(os.path.exists(output + ".resume"))
        self.assertFalse(os.path.exists(output + ".partial"))
        return got

    def test_csv_killed_four_times_then_resumed_is_every_row_once(self):
        write_csv(self.path("big.csv"), self.rows)
        out = self.kill_and_resume(self.path("big.csv"), self.path("big.jsonl"), [])
        lines = [json.loads(line) for line in out.decode().splitlines()]
        self.assertEqual([line["row"] for line in lines], list(range(len(self.rows))))
        self.assertEqual([line["id"] for line in lines], [1000 + i for i in range(len(self.rows))])
        expected = predict(BOOK_MODEL, self.rows[:200])
        self.assertEqual([line["output_label"] for line in lines[:200]], expected["output_label"])

    def test_npy_to_csv_killed_and_resumed_with_sync(self):
        np.save(self.path("big.npy"), np.array(self.rows, dtype=np.float32))
        out = self.kill_and_resume(self.path("big.npy"), self.path("big.csv"), ["--sync"])
        lines = out.decode().splitlines()
        self.assertEqual(len(lines), len(self.rows) + 1)
        self.assertEqual([int(line.split(",")[0]) for line in lines[1:]], list(range(len(self.rows))))

    def test_a_second_run_on_the_same_output_is_refused_while_the_first_writes(self):
        write_csv(self.path("both.csv"), self.rows)
        args = [BOOK_MODEL, "--input", self.path("both.csv"), "--output", self.path("both.jsonl"),
                "--batch-size", "10", "--threads", "1"]
        first = subprocess.Popen([INFERD, "batch", *args, "--quiet"], stderr=subprocess.PIPE)
        partial = self.path("both.jsonl.partial")
        deadline = time.time() + 30 * SLOW
        while time.time() < deadline and not (os.path.exists(partial) and os.path.getsize(partial)):
            time.sleep(0.002)
        for extra in ([], ["--resume"]):
            r = run_batch(args + extra)
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertIn("another inferd batch is writing", r.stderr)
        self.assertIsNone(first.poll(), "the first run ended before the second started")
        first.send_signal(signal.SIGKILL)
        first.wait()
        first.stderr.close()
        r = run_batch(args + ["--resume", "--quiet"])
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = read_jsonl(self.path("both.jsonl"))
        self.assertEqual([line["row"] for line in lines], list(range(len(self.rows))))

    def test_an_interrupted_run_is_not_overwritten_or_resumed_with_other_input(self):
        write_csv(self.path("small.csv"), self.rows[:5000])
        args = [BOOK_MODEL, "--input", self.path("small.csv"), "--output", self.path("o.jsonl"),
                "--batch-size", "10"]
        proc = subprocess.Popen([INFERD, "batch", *args, "--quiet"])
        deadline = time.time() + 30 * SLOW
        while time.time() < deadline and not (os.path.exists(self.path("o.jsonl.partial")) and
                                               os.path.getsize(self.path("o.jsonl.partial")) > 0):
            time.sleep(0.001)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        r = run_batch(args)
        self.assertEqual(r.returncode, 1)
        self.assertIn("continue it with --resume", r.stderr)
        with open(self.path("small.csv"), "a") as f:
            f.write("99999,1,2,3,4\n")
        r = run_batch(args + ["--resume"])
        self.assertEqual(r.returncode, 1)
        self.assertIn("differs in 'input_bytes'", r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
