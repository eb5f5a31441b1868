"""The page's JSON API: the same answer as the Python API, and every bad request refused with a
message while the server stays up; a bounded load test of a running server."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from hypermaml.serve.app import Limits, create_app
from hypermaml.serve.load import run_load

testclient = pytest.importorskip("fastapi.testclient", reason="needs hypermaml[serve]")


def png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def strokes(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.full((64, 64), 255, dtype=np.uint8)
    for _ in range(3):
        r, c = rng.integers(8, 56, 2)
        img[r - 2 : r + 2, 8:56] = 0
        img[8:56, c - 2 : c + 2] = 0
    return img


@pytest.fixture(scope="module")
def client(model):
    return testclient.TestClient(create_app(model, "m", Limits(max_file_bytes=200_000)))


def form(n: int = 5, labels: list[str] | None = None, query: bytes | None = None):
    files = [("support", (f"s{c}.png", png(strokes(c)), "image/png")) for c in range(n)]
    files.append(("query", ("q.png", query if query is not None else png(strokes(2)), "image/png")))
    return files, {"labels": json.dumps(labels or [f"k{c}" for c in range(n)])}


def test_a_prediction_equals_the_python_apis(client, model):
    files, data = form()
    answer = client.post("/api/predict", files=files, data=data).json()
    task = model.adapt([strokes(c) for c in range(5)], [f"k{c}" for c in range(5)])
    probs = task.predict_proba([strokes(2)])[0]
    row = answer["predictions"][0]
    assert answer["classes"] == task.classes and row["label"] == task.predict([strokes(2)])[0]
    assert np.allclose(row["probs"], probs.numpy(), atol=1e-5)
    assert len(row["universal"]) == 5 and answer["adapt_ms"] > 0
    assert client.get("/api/info").json()["n_way"] == 5


@pytest.mark.parametrize(("make", "status", "message"), [
    (lambda: form(query=b"GIF89a not really"), 400, "q.png is not an image"),
    (lambda: form(labels=["one"]), 400, "5 support images but 1 labels"),
    (lambda: form(n=3), 400, "exactly 5 classes"),
    (lambda: form(query=b"\x89PNG" + b"0" * 300_000), 413, "the limit is 200,000"),
    (lambda: ([("support", ("a.png", png(strokes(0)), "image/png"))], {"labels": "[1]"}), 400,
     "labels must be a JSON list"),
])  # fmt: skip
def test_bad_requests_are_refused_with_the_reason_and_the_server_stays_up(
    client, make, status, message
):
    files, data = make()
    response = client.post("/api/predict", files=files, data=data)
    assert response.status_code == status and message in response.json()["error"]
    garbage = client.post("/api/predict", content=b"\x00\x01",
                          headers={"content-type": "multipart/form-data; boundary=zz"})  # fmt: skip
    assert garbage.status_code == 400
    assert client.post("/api/predict", files=form()[0], data=form()[1]).status_code == 200


def test_a_bounded_load_test_has_no_failed_valid_request(server):
    report = run_load(server, clients=6, requests=5, malformed_every=3)
    assert report.valid == 24 and report.malformed == 6  # the 3rd request of each client
    assert report.valid_failed == 0 and report.malformed_mishandled == 0 and report.alive_after


def test_the_load_test_targets_this_machine_only():
    with pytest.raises(ValueError, match="only targets this machine"):
        run_load("http://192.0.2.1:8000", clients=1, requests=1)
