#!/usr/bin/python3
"""The book's web single pattern server, rebuilt from Debian's packages as the
peer of `inferd serve` in the serving benchmark (bench/serve/run.sh).

The book (ML System Design Patterns, chapter 4, web_single_pattern) serves a
scikit-learn iris pipeline with FastAPI under gunicorn's uvicorn workers,
running the model's ONNX export with onnxruntime. Debian has no
onnxruntime, so this server predicts with scikit-learn itself: it loads the
pickled Pipeline(StandardScaler, SVC(probability=True)) that
tools/gen_fixtures.py trains and converts into the iris_svc fixture — the
very model inferd serves as ONNX, same support vectors and coefficients.
Routes, request model and answers are the book's: sync `def` handlers
(FastAPI runs them on its thread pool, as the book's do), `Data` with the
sample row as default, and only row 0's probabilities answered.

BOOK_MODEL selects what one gunicorn app serves:
  iris    the book's API (/health, /metadata, /label, /predict[/label],
          /predict/test[/label]) on the pickled scikit-learn pipeline;
  digits  a KServe V2 shaped endpoint (/v2/health/ready,
          POST /v2/models/{name}/infer) on the digits MLP in PyTorch, with the
          weights of the digits_mlp fixture's ONNX file (same module, same
          parameters as the model torch.onnx.export wrote);
  floor   the iris routes answering a constant instead of predicting: what
          the Python web stack alone costs per request.
BOOK_MODEL_DIR holds the files `--make-models` writes.

    /usr/bin/python3 bench/serve/book_app.py --make-models OUT FIXTURE_DIR
    BOOK_MODEL=iris BOOK_MODEL_DIR=OUT gunicorn --chdir bench/serve \
        -k uvicorn.workers.UvicornWorker -w 2 -b 127.0.0.1:8000 book_app:app
"""
import json
import os
import pickle
import sys
from typing import Any, Dict, List, Optional

SAMPLE_ROW = [5.1, 3.5, 1.4, 0.2]
MODEL_DIR = os.environ.get("BOOK_MODEL_DIR", ".")
WHICH = os.environ.get("BOOK_MODEL", "iris")


def make_models(out, fixture_dir):
    """Writes the peer's model files and the request bodies both servers get."""
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, os.path.join(here, "..", "..", "tools"))
    import numpy as np
    import onnx
    from onnx import numpy_helper
    import torch
    from fixtures import sklearn_models

    os.makedirs(out, exist_ok=True)
    _, pipe, _, _, _ = sklearn_models.iris_svc_model()
    with open(os.path.join(out, "iris_svc.pkl"), "wb") as f:
        pickle.dump(pipe, f)
    with open(os.path.join(out, "iris_body.json"), "w") as f:
        json.dump({"data": [SAMPLE_ROW]}, f)

    model = onnx.load(os.path.join(fixture_dir, "digits_mlp", "model.onnx"))
    state = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy())
             for t in model.graph.initializer}
    torch.save(state, os.path.join(out, "digits_mlp.pt"))
    pb = onnx.TensorProto()
    with open(os.path.join(fixture_dir, "digits_mlp", "test_data_set_1", "input_0.pb"), "rb") as f:
        pb.ParseFromString(f.read())
    row = numpy_helper.to_array(pb).astype(np.float32).reshape(1, 64)
    body = {"id": "bench", "inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32",
                                       "data": [float(v) for v in row.ravel()]}]}
    with open(os.path.join(out, "digits_body.json"), "w") as f:
        json.dump(body, f)
    # what a peer answers for the same rows, so run.sh can check both agree
    x = np.asarray([SAMPLE_ROW], dtype=np.float32)
    expected = {"iris_probabilities": pipe.predict_proba(x.astype(np.float64))[0].tolist(),
                # the book's published answer of its own iris_svc.onnx (ONNX Runtime)
                "book_iris_probabilities": [0.9709315896034241, 0.015583082102239132,
                                            0.013485366478562355]}
    net = DigitsMLP()
    net.load_state_dict(state)
    with torch.no_grad():
        expected["digits_probabilities"] = net(torch.from_numpy(row))[1][0].tolist()
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f)


def _torch_module():
    import torch
    from torch import nn
    import torch.nn.functional as F

    class DigitsMLP(nn.Module):
        """tools/fixtures/torch_models.py's DigitsMLP, line for line."""

        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(64, 128)
            self.fc2 = nn.Linear(128, 64)
            self.fc3 = nn.Linear(64, 10)

        def forward(self, x):
            logits = self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))
            return logits, F.softmax(logits, dim=1)

    return torch, DigitsMLP


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--make-models":
        _, DigitsMLP = _torch_module()
        make_models(sys.argv[2], sys.argv[3])
        sys.exit(0)
    print(__doc__, file=sys.stderr)
    sys.exit(64)

# ---- the served app (imported by gunicorn's workers) ----------------------

import numpy as np  # noqa: E402
from fastapi import FastAPI  # noqa: E402
from pydantic import BaseModel  # noqa: E402

app = FastAPI(title="web_single_pattern", description="the book's web single pattern", version="0.1")


@app.get("/health")
def health() -> Dict[str, str]:
    return {"health": "ok"}


if WHICH in ("iris", "floor"):
    LABELS = {"0": "setosa", "1": "versicolor", "2": "virginica"}

    class Data(BaseModel):
        data: List[List[float]] = [SAMPLE_ROW]

    class Classifier:
        def __init__(self, path: Optional[str]):
            self.model = None
            if path:
                with open(path, "rb") as f:
                    self.model = pickle.load(f)

        def predict(self, data: List[List[float]]) -> np.ndarray:
            if self.model is None:  # floor: the web stack without a model
                return np.array([0.97093159, 0.01558308, 0.01348537])
            np_data = np.array(data).astype(np.float32)
            return self.model.predict_proba(np_data)[0]

        def predict_label(self, data: List[List[float]]) -> str:
            return LABELS[str(int(np.argmax(self.predict(data))))]

    classifier = Classifier(os.path.join(MODEL_DIR, "iris_svc.pkl") if WHICH == "iris" else None)

    @app.get("/metadata")
    def metadata() -> Dict[str, Any]:
        return {"data_type": "float32", "data_structure": "(1,4)", "data_sample": Data().data,
                "prediction_type": "float32", "prediction_structure": "(1,3)",
                "prediction_sample": [0.97093159, 0.01558308, 0.01348537]}

    @app.get("/label")
    def label() -> Dict[str, str]:
        return LABELS

    @app.get("/predict/test")
    def predict_test() -> Dict[str, List[float]]:
        return {"prediction": list(classifier.predict(data=Data().data))}

    @app.get("/predict/test/label")
    def predict_test_label() -> Dict[str, str]:
        return {"prediction": classifier.predict_label(data=Data().data)}

    @app.post("/predict")
    def predict(data: Data) -> Dict[str, List[float]]:
        return {"prediction": list(classifier.predict(data.data))}

    @app.post("/predict/label")
    def predict_label(data: Data) -> Dict[str, str]:
        return {"prediction": classifier.predict_label(data.data)}

elif WHICH == "digits":
    torch, DigitsMLP = _torch_module()
    torch.set_num_threads(1)  # one process per core, like inferd's one session per worker
    net = DigitsMLP()
    net.load_state_dict(torch.load(os.path.join(MODEL_DIR, "digits_mlp.pt")))
    net.eval()
    OUTPUTS = ("logits", "probabilities")

    class RequestInput(BaseModel):
        name: str
        shape: List[int]
        datatype: str
        data: List[float]

    class InferenceRequest(BaseModel):
        id: Optional[str] = None
        inputs: List[RequestInput]

    @app.get("/v2/health/ready")
    def ready() -> Dict[str, bool]:
        return {"ready": True}

    @app.get("/v2/health/live")
    def live() -> Dict[str, bool]:
        return {"live": True}

    @app.post("/v2/models/{model_name}/infer")
    def infer(model_name: str, request: InferenceRequest) -> Dict[str, Any]:
        x = request.inputs[0]
        tensor = torch.tensor(x.data, dtype=torch.float32).reshape(x.shape)
        with torch.no_grad():
            results = net(tensor)
        answer = {"model_name": model_name, "outputs": [
            {"name": name, "shape": list(t.shape), "datatype": "FP32", "data": t.reshape(-1).tolist()}
            for name, t in zip(OUTPUTS, results)]}
        if request.id is not None:
            answer["id"] = request.id
        return answer

else:
    raise SystemExit("BOOK_MODEL must be iris, digits or floor, not %r" % WHICH)
