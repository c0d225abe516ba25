#!/usr/bin/python3
"""The book's asynchronous pattern (ML System Design Patterns, chapter 4,
asynchronous_pattern), rebuilt from Debian's packages as the peer of
inferd's job routes in bench/async/run.py.

The book's stack: a FastAPI proxy whose POST /predict stores the request
under a short job id in Redis (SET id data, LPUSH queue id) and answers
{"job_id": id}; worker processes that pop ids off the list, predict and SET
the prediction under the id; GET /job/{id} answers {id: {"prediction": ...}}
("" while pending). No TTL, no retry limit, no failure state — as the book.
Its worker runs the model's ONNX export with onnxruntime; Debian has no
onnxruntime, so the workers predict with the scikit-learn pipeline that
tools/gen_fixtures.py converts into models/iris_svc.onnx (same model). For
the benchmark only, each worker also INCRs a counter after a prediction so
the harness can tell when the queue is drained.

    BOOK_REDIS_PORT=6379 /usr/bin/python3 -m uvicorn --app-dir bench/async book_async:app --workers 2
    BOOK_REDIS_PORT=6379 /usr/bin/python3 bench/async/book_async.py worker
"""
import json
import os
import sys
import time
import uuid

import redis

QUEUE = "redis_queue"
CLIENT = redis.Redis(host="127.0.0.1", port=int(os.environ.get("BOOK_REDIS_PORT", "6379")), db=0,
                     decode_responses=True)

if __name__ != "__main__":
    from typing import List

    from fastapi import FastAPI
    from pydantic import BaseModel

    app = FastAPI()

    class Data(BaseModel):
        data: List[List[float]] = [[5.1, 3.5, 1.4, 0.2]]

    @app.post("/predict")
    def predict(data: Data):
        job_id = str(uuid.uuid4())[:6]
        CLIENT.set(job_id, json.dumps(data.data))
        CLIENT.lpush(QUEUE, job_id)
        return {"job_id": job_id}

    @app.get("/job/{job_id}")
    def job(job_id: str):
        value = CLIENT.get(job_id)
        result = json.loads(value) if value else None
        return {job_id: result if isinstance(result, dict) else {"prediction": ""}}


def worker():
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
    import numpy as np
    from fixtures import sklearn_models
    _, pipe, _, _, _ = sklearn_models.iris_svc_model()
    while True:
        job_id = CLIENT.rpop(QUEUE)
        if job_id is None:
            time.sleep(0.01)  # the book's worker polls the list
            continue
        rows = json.loads(CLIENT.get(job_id))
        prediction = pipe.predict_proba(np.asarray(rows, dtype=np.float64))[0].tolist()
        CLIENT.set(job_id, json.dumps({"prediction": prediction}))
        CLIENT.incr("bench_completed")


if __name__ == "__main__" and sys.argv[1:] == ["worker"]:
    worker()
