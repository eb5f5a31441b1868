"""Deterministic mode: conv3x3 gives the same bits in every process with the same threads."""

from __future__ import annotations

import json
import subprocess
import sys

_PROGRAM = """
import hashlib, json, torch
from hypermaml.engine import kernels

kernels.set_deterministic(True)
SHAPES = [(12, 64, 14), (12, 64, 7), (5, 64, 3), (4, 3, 20), (12, 1, 28)]


def digest(threads, nnpack_favoured):
    torch.set_num_threads(threads)
    kernels._NNPACK_FAVOURED = nnpack_favoured  # the rule's other branch on any machine
    kernels._pinned.clear()
    h = hashlib.sha256()
    for n, c, size in SHAPES:
        g = torch.Generator().manual_seed(n * size + c)
        x = torch.randn(n, c, size, size, generator=g).contiguous(memory_format=torch.channels_last)
        w = torch.randn(64, c, 3, 3, generator=g).requires_grad_()
        b = torch.randn(64, generator=g).requires_grad_()
        x.requires_grad_(c > 1)
        y = kernels.conv3x3(x, w, b, torch.channels_last)
        grads = torch.autograd.grad(y.square().sum(), [t for t in (x, w, b) if t.requires_grad])
        for t in (y, *grads):
            h.update(t.detach().contiguous().numpy().tobytes())
    return h.hexdigest()


out = {f"t{t} {f}": [digest(t, f), digest(t, f)] for t in (1, 2) for f in (False, True)}
out["nnpack"] = "nnpack" in kernels._KERNELS["forward"]
out["kernels"] = sorted(set(kernels.chosen_kernels().values()))  # the last branch's
print(json.dumps(out))
"""


def _run_twice() -> list[dict]:
    """The program's output in two processes run at once."""
    runs = [subprocess.Popen([sys.executable, "-c", _PROGRAM], stdout=subprocess.PIPE, text=True)
            for _ in range(2)]  # fmt: skip
    outputs = [run.communicate()[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0]
    return [json.loads(out) for out in outputs]


def test_two_processes_compute_the_same_bits():
    first, second = _run_twice()
    assert first == second
    for name, (once, again) in ((k, v) for k, v in first.items() if k.startswith("t")):
        assert once == again, f"{name}: repeated calls differ"
    assert "timed" not in " ".join(first["kernels"])
    assert {"onednn", "gemm"} <= set(first["kernels"])  # and NNPACK where the build has it
    if first["nnpack"]:
        assert first["t1 False"] != first["t1 True"]  # oneDNN, then NNPACK
