"""A bounded load test of a running ``hypermaml serve``: C concurrent clients each send R
requests, valid adapt-and-predict requests with malformed ones mixed in, to a local address.

Valid requests carry ``ways`` classes of one small generated image each and one query; every
``malformed_every``-th request of a client is one of the malformed kinds (a body that is no form,
a file that is no image, labels that do not match, a request without queries). A valid request
fails unless answered 200 with a prediction; a malformed one fails unless answered 4xx. The
server must answer ``/api/info`` after the run.
"""

from __future__ import annotations

import io
import json
import statistics
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlparse

import numpy as np

from ..extras import require

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")


@dataclass
class LoadReport:
    clients: int
    requests_per_client: int
    valid: int
    valid_failed: int
    malformed: int
    malformed_mishandled: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    seconds: float
    alive_after: bool

    def lines(self) -> list[str]:
        return [
            f"{self.clients} clients x {self.requests_per_client} requests in "
            f"{self.seconds:.1f} s: "
            f"{self.valid} valid ({self.valid_failed} failed), {self.malformed} malformed "
            f"({self.malformed_mishandled} not refused with 4xx); server alive after: "
            f"{self.alive_after}",
            f"valid request latency: p50 {self.p50_ms:.1f} ms, p99 {self.p99_ms:.1f} ms, max "
            f"{self.max_ms:.1f} ms",
        ]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _png(pixels: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def _images(ways: int, size: int, channels: int, seed: int) -> list[bytes]:
    """``ways + 1`` random stroke-like images (dark marks on white)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(ways + 1):
        img = np.full((size, size), 255, dtype=np.uint8)
        for _ in range(3):
            r, c = rng.integers(size // 8, size - size // 8, 2)
            img[max(0, r - 2) : r + 2, size // 8 : size - size // 8] = 0
            img[size // 8 : size - size // 8, max(0, c - 2) : c + 2] = 0
        out.append(_png(img if channels == 1 else np.repeat(img[..., None], 3, -1)))
    return out


def run_load(url: str, clients: int = 20, requests: int = 25, malformed_every: int = 5,
             ways: int = 5, timeout: float = 60.0) -> LoadReport:  # fmt: skip
    """Load the server at ``url`` (a loopback address only) as the module doc says."""
    httpx = require("httpx", "the load test")
    host = urlparse(url).hostname or ""
    if host not in LOCAL_HOSTS and not host.startswith("127."):
        raise ValueError(
            f"the load test only targets this machine (127.0.0.1, localhost), not {host}"
        )
    info = httpx.get(f"{url}/api/info", timeout=timeout).json()
    ways = info["n_way"] if not info["any_n_way"] else ways
    size = max(info["size"], 28)
    latencies: list[float] = []
    counts = {"valid": 0, "valid_failed": 0, "malformed": 0, "mishandled": 0}
    guard = threading.Lock()

    def client(index: int) -> None:
        images = _images(ways, size, info["channels"], index)
        labels = [f"class{c}" for c in range(ways)]
        valid_files = [("support", (f"s{c}.png", images[c], "image/png")) for c in range(ways)]
        valid_files.append(("query", ("q.png", images[-1], "image/png")))
        malformed = [
            {"content": b"this is not a form",
             "headers": {"content-type": "multipart/form-data; boundary=x"}},
            {"files": [*valid_files[:-1], ("query", ("q.txt", b"plain text", "text/plain"))],
             "data": {"labels": json.dumps(labels)}},
            {"files": valid_files, "data": {"labels": '["only one"]'}},
            {"files": valid_files[:-1], "data": {"labels": json.dumps(labels)}},
        ]  # fmt: skip
        with httpx.Client(timeout=timeout) as session:
            for r in range(requests):
                bad = malformed_every > 0 and (r + 1) % malformed_every == 0
                started = time.perf_counter()
                try:
                    if bad:
                        kind = malformed[(index + r) % len(malformed)]
                        response = session.post(f"{url}/api/predict", **kind)
                        ok = 400 <= response.status_code < 500 and "error" in response.json()
                    else:
                        response = session.post(f"{url}/api/predict", files=valid_files,
                                                data={"labels": json.dumps(labels)})  # fmt: skip
                        ok = response.status_code == 200 and response.json()["predictions"]
                except Exception:  # noqa: BLE001 - a dropped connection is a failure, counted
                    ok = False
                elapsed = 1000 * (time.perf_counter() - started)
                with guard:
                    if bad:
                        counts["malformed"] += 1
                        counts["mishandled"] += not ok
                    else:
                        counts["valid"] += 1
                        counts["valid_failed"] += not ok
                        latencies.append(elapsed)

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - started
    try:
        alive = httpx.get(f"{url}/api/info", timeout=timeout).status_code == 200
    except Exception:  # noqa: BLE001
        alive = False
    ordered = sorted(latencies) or [float("nan")]
    p99 = ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]
    return LoadReport(clients, requests, counts["valid"], counts["valid_failed"],
                      counts["malformed"], counts["mishandled"], statistics.median(ordered), p99,
                      ordered[-1], seconds, alive)  # fmt: skip
