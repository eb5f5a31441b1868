"""A real ``hypermaml serve`` on a free local port, in a thread, for the page's tests."""

from __future__ import annotations

import socket
import threading
import time

import pytest

import hypermaml

uvicorn = pytest.importorskip("uvicorn", reason="needs hypermaml[serve] (uvicorn)")
from hypermaml.serve.app import Limits, create_app  # noqa: E402

MODEL = "cross_char_1s_hypermaml"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def model():
    return hypermaml.load(MODEL)


@pytest.fixture(scope="module")
def server(model):
    """The URL of a server of ``MODEL``, stopped after the module's tests."""
    port = free_port()
    config = uvicorn.Config(create_app(model, MODEL, Limits()), host="127.0.0.1", port=port,
                            log_level="warning")  # fmt: skip
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not srv.started and time.time() < deadline:
        time.sleep(0.05)
    assert srv.started, "the server did not start"
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)
