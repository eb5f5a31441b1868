"""keep_freed_memory: large tensors reuse freed memory instead of faulting in fresh pages."""

from __future__ import annotations

import subprocess
import sys

import pytest

_PROGRAM = """
import resource, sys, torch
from hypermaml.engine.process import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "1" else False
for _ in range(10):
    torch.zeros(16 << 20)  # the first allocations fault in their pages, either way
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    torch.zeros(16 << 20)  # 64 MB, allocated, zero-filled and freed
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(keep: bool) -> tuple[str, int]:
    out = subprocess.run(
        [sys.executable, "-c", _PROGRAM, "1" if keep else "0"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    return out[0], int(out[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc only")
def test_freed_tensors_are_reused_without_page_faults():
    applied, kept = _faults(True)
    _, default = _faults(False)
    assert applied == "True"
    assert default > 10 * 16_000 // 2  # about one fault per 4 KB page per allocation
    assert kept < default / 20
