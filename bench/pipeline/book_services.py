#!/usr/bin/python3
"""The book's parallel (horizontal) microservice pattern, rebuilt from
Debian's Python packages (python3-fastapi, python3-uvicorn, python3-httpx):

    book_services.py service --model DIR/iris_setosa/1/model.onnx --port P
        one one-vs-rest classifier behind FastAPI: POST /predict
        {"data": [[...]]} -> {"prediction": [p_yes, p_no]}
    book_services.py proxy --port P   (SERVICE_SETOSA=http://..., SERVICE_VERSICOLOR=..., SERVICE_VIRGINICA=...)
        the book's proxy: discovers its services from SERVICE_* environment
        variables and fans each request out with httpx (asyncio.gather):
        POST /predict -> {"setosa": {"prediction": [...]}, ...}
        POST /predict/label -> {"prediction": {"proba": p, "label": name}}

The book's services run ONNX Runtime; its Python package is not in Debian,
so each service evaluates the same ONNX file's graph (Gemm + Softmax, the
weights read with onnx.numpy_helper) with numpy — the same arithmetic,
float32, per request. No timeouts, no partial-failure handling: as in the
book.
"""
import argparse
import asyncio
import os

import numpy as np
import onnx
import uvicorn
from fastapi import FastAPI
from onnx import numpy_helper
from pydantic import BaseModel


class Data(BaseModel):
    data: list = [[5.1, 3.5, 1.4, 0.2]]


def service_app(model_path):
    model = onnx.load(model_path)
    weights = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    w, b = weights["w"], weights["b"]
    app = FastAPI()

    @app.get("/health")
    def health():
        return {"health": "ok"}

    @app.post("/predict")
    def predict(data: Data):
        z = np.asarray(data.data, dtype=np.float32) @ w + b
        e = np.exp(z - z.max(axis=1, keepdims=True))
        p = e / e.sum(axis=1, keepdims=True)
        return {"prediction": p[0].tolist()}

    return app


def proxy_app():
    import httpx
    services = {k[len("SERVICE_"):].lower(): v for k, v in os.environ.items() if k.startswith("SERVICE_")}
    app = FastAPI()
    client = httpx.AsyncClient()

    async def fan_out(data):
        async def call(name, url):
            r = await client.post(f"{url}/predict", json={"data": data.data})
            return name, r.json()
        return dict(await asyncio.gather(*(call(n, u) for n, u in services.items())))

    @app.get("/health")
    def health():
        return {"health": "ok"}

    @app.post("/predict")
    async def predict(data: Data):
        return await fan_out(data)

    @app.post("/predict/label")
    async def predict_label(data: Data):
        answers = await fan_out(data)
        best = max(answers, key=lambda name: answers[name]["prediction"][0])
        return {"prediction": {"proba": answers[best]["prediction"][0], "label": best}}

    return app


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("role", choices=["service", "proxy"])
    ap.add_argument("--model")
    ap.add_argument("--port", type=int, required=True)
    args = ap.parse_args()
    app = service_app(args.model) if args.role == "service" else proxy_app()
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
