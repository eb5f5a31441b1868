"""The documentation: the API reference builds without warnings, pages open with their answer,
and every link between them and every file they name exists."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted([ROOT / "README.md", ROOT / "checkpoints" / "README.md", *DOCS.rglob("*.md")])


def test_api_reference_builds_without_warnings(tmp_path):
    out = subprocess.run([sys.executable, str(DOCS / "build_api.py"), str(tmp_path)],
                         capture_output=True, text=True)  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert "without warnings" in out.stdout
    index = (tmp_path / "hypermaml.html").read_text()
    for name in ("evaluate_checkpoint", "load", "train", "TaskShape"):
        assert f'id="{name}"' in index, name


def test_results_open_with_the_summary_table():
    text = (DOCS / "results.md").read_text()
    head = text[: text.index("\n## ")]  # the first screen: before the first section
    rows = [line for line in head.splitlines() if line.startswith("|")]
    assert len(rows) >= 10
    for benchmark in ("Omniglot", "EMNIST", "Fashion-MNIST"):
        assert benchmark in head
    for method in ("HyperMAML", "MAML", "ProtoNet"):
        assert any(method in row for row in rows)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_between_pages_resolve(page):
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
        if target.startswith(("http://", "https://")):
            continue
        assert (page.parent / target).exists(), f"{page.name} links to {target}"


def test_docstrings_point_to_files_of_the_repository():
    source = ROOT / "src" / "hypermaml"
    for path in source.rglob("*.py"):
        text = path.read_text()
        assert not re.search(r"SPEC\s*§?\d", text), path
        for named in re.findall(r"\b((?:docs|tests)/[\w/.-]+\.(?:md|py))", text):
            assert (ROOT / named).exists(), f"{path.name} names {named}"
