#!/usr/bin/python3
"""The Python batch jobs inferd batch is measured against (bench/batch/run.sh),
on Debian's python3 with scikit-learn, pandas, SQLAlchemy and psycopg2.

The model is the one inferd runs: tools/fixtures' iris_svc pipeline
(StandardScaler + SVC(probability=True)), trained exactly as
models/iris_svc.onnx was, so both sides compute the same function (ONNX
Runtime, which the book's job uses, is not packaged in Debian).

Modes:
  csv-book     what the book's job does, on a CSV file: every row predicted on
               its own (the book's `classifier.predict(data=[item.values])`)
               through a ThreadPoolExecutor(4), then written (csv module)
  csv-pandas   the fast way in Python: pandas.read_csv in chunks of
               --batch-size, one predict_proba per chunk, to_csv
All write the class probabilities only, as the book's job stores them (and
as inferd batch is run: --outputs output_probability).
  db-book      the book's job itself on PostgreSQL: SQLAlchemy ORM, select
               every item whose prediction IS NULL, predict each row in a
               ThreadPoolExecutor(4), set item.prediction = {"0": p0, ...},
               one commit at the end
  db-chunked   psycopg2, chunks of --batch-size: SELECT ... FOR UPDATE SKIP
               LOCKED, one predict_proba, execute_values UPDATE, commit

Usage: python_job.py MODE --input CSV --output CSV | --db URL [--batch-size N]
"""
import argparse
import csv
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools"))


def load_model():
    from fixtures import sklearn_models
    return sklearn_models.iris_svc_model()[1]


def csv_book(pipe, args):
    def predict(row):
        # the book's classifier.predict: one row, float32, probabilities out
        return pipe.predict_proba(np.array([row], dtype=np.float32))[0]

    with open(args.input, newline="") as f:
        reader = csv.reader(f)
        next(reader)
        items = [(r[0], [float(v) for v in r[1:5]]) for r in reader]
    with ThreadPoolExecutor(4) as executor:
        results = list(executor.map(predict, [values for _, values in items]))
    with open(args.output, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "output_probability_0", "output_probability_1", "output_probability_2"])
        for (item_id, _), p in zip(items, results):
            writer.writerow([item_id, *p.tolist()])


def csv_pandas(pipe, args):
    import pandas as pd
    first = True
    with open(args.output, "w") as out:
        for chunk in pd.read_csv(args.input, chunksize=args.batch_size):
            x = chunk.iloc[:, 1:5].to_numpy(dtype=np.float32)
            p = pipe.predict_proba(x)
            frame = pd.DataFrame({"id": chunk.iloc[:, 0],
                                  "output_probability_0": p[:, 0], "output_probability_1": p[:, 1],
                                  "output_probability_2": p[:, 2]})
            frame.to_csv(out, header=first, index=False)
            first = False


def db_book(pipe, args):
    from sqlalchemy import JSON, Column, DateTime, Integer, create_engine
    from sqlalchemy.orm import declarative_base, sessionmaker
    from sqlalchemy.sql.functions import current_timestamp

    Base = declarative_base()

    class Item(Base):  # the book's src/db/models.py
        __tablename__ = "items"
        id = Column(Integer, primary_key=True, autoincrement=True)
        values = Column(JSON, nullable=False)
        prediction = Column(JSON, nullable=True)
        created_datetime = Column(DateTime(timezone=True), server_default=current_timestamp(),
                                  nullable=False)
        updated_datetime = Column(DateTime(timezone=True), server_default=current_timestamp(),
                                  nullable=False, onupdate=current_timestamp())

    engine = create_engine(args.db.replace("postgresql://", "postgresql+psycopg2://", 1))
    session = sessionmaker(autocommit=False, autoflush=False, bind=engine)()

    def predict(item):
        prediction = pipe.predict_proba(np.array([item.values], dtype=np.float32))[0]
        return item.id, {f"{i}": float(p) for i, p in enumerate(prediction)}

    items = session.query(Item).filter(Item.prediction == None).all()  # noqa: E711 (the book's)
    with ThreadPoolExecutor(4) as executor:
        predictions = dict(executor.map(predict, items))
    by_id = {item.id: item for item in items}
    for item_id, prediction in predictions.items():
        by_id[item_id].prediction = prediction
    session.commit()
    session.close()


def db_chunked(pipe, args):
    import psycopg2
    from psycopg2.extras import execute_values
    conn = psycopg2.connect(args.db)
    last = 0
    while True:
        with conn.cursor() as cur:
            cur.execute('SELECT id, "values"::text FROM items WHERE prediction IS NULL AND id > %s '
                        'ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED', (last, args.batch_size))
            rows = cur.fetchall()
            if not rows:
                conn.rollback()
                break
            x = np.array([json.loads(v) for _, v in rows], dtype=np.float32)
            p = pipe.predict_proba(x)
            execute_values(cur, "UPDATE items SET prediction = v.p::json, updated_datetime = now() "
                           "FROM (VALUES %s) AS v(id, p) WHERE items.id = v.id",
                           [(r[0], json.dumps({"0": float(a), "1": float(b), "2": float(c)}))
                            for r, (a, b, c) in zip(rows, p)], page_size=args.batch_size)
            last = rows[-1][0]
        conn.commit()
    conn.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=["csv-book", "csv-pandas", "db-book", "db-chunked"])
    parser.add_argument("--input")
    parser.add_argument("--output")
    parser.add_argument("--db")
    parser.add_argument("--batch-size", type=int, default=1024)
    args = parser.parse_args()
    pipe = load_model()
    {"csv-book": csv_book, "csv-pandas": csv_pandas, "db-book": db_book,
     "db-chunked": db_chunked}[args.mode](pipe, args)


if __name__ == "__main__":
    main()
