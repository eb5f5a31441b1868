"""``hypermaml serve``: the page and its JSON API, on FastAPI.

- ``GET /``: the page (``page.html``). For a character model a person draws one to five examples
  of each class on canvases, then a query; for any model, images can be uploaded instead.
- ``GET /api/info``: the model: method, classes per task, input transform.
- ``POST /api/predict``: multipart form with ``support`` files, ``labels`` (a JSON list, one
  class name per support file) and ``query`` files; answers the classes, the adaptation time,
  and per query the predicted class, the adapted and the universal classifier's probabilities.

(No ``from __future__ import annotations`` here: FastAPI reads the endpoints' annotations, and
``Request`` is imported inside ``create_app``, with the optional extra.)

Every bad request is answered 400 (413 when too large) with ``{"error": ...}`` naming the
problem; nothing a client sends stops the server. Uploads are bounded in size and count
(``Limits``). Requests are served one model call at a time (a lock), each on a worker thread.
"""

import io
import json
import threading
import time
from dataclasses import dataclass
from importlib.resources import files
from typing import Any

from ..data.images import DECODE_ERRORS
from ..errors import HypermamlError
from ..extras import require
from ..inference import FewShotModel

PAGE = files("hypermaml.serve") / "page.html"


@dataclass(frozen=True)
class Limits:
    """What one request may send."""

    max_file_bytes: int = 4 * 2**20
    max_support: int = 100
    max_query: int = 64
    max_request_bytes: int = 64 * 2**20
    max_pixels: int = 40_000_000


class BadRequest(Exception):
    """A request the server refuses, with the HTTP status and the message for the client."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def model_info(model: FewShotModel, name: str) -> dict[str, Any]:
    method, pre = model.method, model.preprocess
    fixed = hasattr(method, "head")
    return {
        "name": name, "method": type(method).__name__, "dataset": model.config.data.dataset,
        "n_way": method.n_way, "any_n_way": not fixed, "n_shot": model.config.data.n_shot,
        "character": pre.ink == "dark", "size": pre.size, "channels": pre.channels,
        "preprocess": pre.describe(),
    }  # fmt: skip


def decode_upload(data: bytes, filename: str, limits: Limits):
    """A loaded Pillow image of an uploaded file, or a BadRequest naming the file."""
    from PIL import Image

    if len(data) > limits.max_file_bytes:
        raise BadRequest(f"{filename} is {len(data):,} bytes; the limit is "
                         f"{limits.max_file_bytes:,}", 413)  # fmt: skip
    if not data:
        raise BadRequest(f"{filename} is empty")
    try:
        image = Image.open(io.BytesIO(data))
        if image.size[0] * image.size[1] > limits.max_pixels:
            raise BadRequest(f"{filename} is {image.size[0]}x{image.size[1]} pixels; the limit "
                             f"is {limits.max_pixels:,} pixels", 413)  # fmt: skip
        image.load()
    except BadRequest:
        raise
    except DECODE_ERRORS as exc:
        raise BadRequest(f"{filename} is not an image ({type(exc).__name__}); upload PNG, JPEG, "
                         f"GIF, BMP, TIFF or WebP files") from exc  # fmt: skip
    return image


def predict_request(model: FewShotModel, support: list[tuple[str, bytes]], labels: Any,
                    queries: list[tuple[str, bytes]],
                    limits: Limits) -> dict[str, Any]:  # fmt: skip
    """The answer to one ``/api/predict``: (file name, bytes) of each upload."""
    if not isinstance(labels, list) or not all(isinstance(x, str) and x for x in labels):
        raise BadRequest("labels must be a JSON list of class names, one per support image")
    if len(labels) != len(support):
        raise BadRequest(f"{len(support)} support images but {len(labels)} labels")
    if not support or not queries:
        raise BadRequest("send at least one support image per class and one query image")
    if len(support) > limits.max_support or len(queries) > limits.max_query:
        raise BadRequest(f"at most {limits.max_support} support and {limits.max_query} query "
                         f"images a request", 413)  # fmt: skip
    support_images = [decode_upload(d, f, limits) for f, d in support]
    query_images = [decode_upload(d, f, limits) for f, d in queries]
    task = model.adapt(support_images, labels)
    started = time.perf_counter()
    probs = task.predict_proba(query_images)
    universal = task.universal_proba(query_images)
    predict_ms = 1000 * (time.perf_counter() - started)
    rows = []
    for i, (name, _) in enumerate(queries):
        best = int(probs[i].argmax())
        rows.append({"file": name, "label": str(task.classes[best]),
                     "probability": float(probs[i, best]), "probs": probs[i].tolist(),
                     "universal": None if universal is None
                     else universal[i].tolist()})  # fmt: skip
    return {"classes": [str(c) for c in task.classes], "shots": task.shots,
            "adapt_ms": 1000 * task.seconds, "predict_ms": predict_ms,
            "predictions": rows}  # fmt: skip


def create_app(model: FewShotModel, name: str, limits: Limits = Limits()) -> Any:
    """The FastAPI application serving ``model`` (module doc)."""
    require("fastapi", "hypermaml serve")
    require("python_multipart", "hypermaml serve (uploads)")
    from fastapi import FastAPI, Request
    from fastapi.concurrency import run_in_threadpool
    from fastapi.responses import HTMLResponse, JSONResponse

    app = FastAPI(title="hypermaml", docs_url=None, redoc_url=None, openapi_url=None)
    lock = threading.Lock()
    info = model_info(model, name)

    def error(message: str, status: int = 400) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return PAGE.read_text()

    @app.get("/api/info")
    def get_info() -> dict[str, Any]:
        return info

    @app.post("/api/predict")
    async def predict(request: Request) -> JSONResponse:
        size = request.headers.get("content-length")
        if size is not None and (not size.isdigit() or int(size) > limits.max_request_bytes):
            return error(f"the request is larger than {limits.max_request_bytes:,} bytes", 413)
        try:
            form = await request.form(max_files=limits.max_support + limits.max_query + 1,
                                      max_fields=8)  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - a malformed body, whatever the parser says
            return error(f"the request is not a valid multipart form ({exc})")
        try:
            labels = json.loads(str(form.get("labels", "")))
        except json.JSONDecodeError:
            return error("labels must be a JSON list of class names, one per support image")
        try:
            support = [(f.filename or "support", await f.read(limits.max_file_bytes + 1))
                       for f in form.getlist("support") if hasattr(f, "read")]  # fmt: skip
            queries = [(f.filename or "query", await f.read(limits.max_file_bytes + 1))
                       for f in form.getlist("query") if hasattr(f, "read")]  # fmt: skip

            def work() -> dict[str, Any]:
                with lock:
                    return predict_request(model, support, labels, queries, limits)

            return JSONResponse(await run_in_threadpool(work))
        except BadRequest as exc:
            return error(str(exc), exc.status)
        except (HypermamlError, ValueError) as exc:
            return error(str(exc))

    return app


def serve(model: FewShotModel, name: str, host: str = "127.0.0.1", port: int = 8000,
          limits: Limits = Limits()) -> None:  # fmt: skip
    """Run the page until interrupted."""
    uvicorn = require("uvicorn", "hypermaml serve")
    uvicorn.run(create_app(model, name, limits), host=host, port=port, log_level="info")
