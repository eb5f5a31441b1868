"""Build the API reference from the public API's docstrings (pdoc): ``make docs``.

python docs/build_api.py OUT   writes OUT/index.html and a page per module; exits 1 and prints
                               pdoc's warnings (a broken docstring, an unresolved name) if any.
"""

from __future__ import annotations

import pkgutil
import sys
import warnings
from pathlib import Path

import pdoc
import pdoc.render

import hypermaml


def modules() -> list[str]:
    """``hypermaml`` and its public modules and packages (pdoc walks the packages itself)."""
    children = pkgutil.iter_modules(hypermaml.__path__, "hypermaml.")
    return ["hypermaml", *(m.name for m in children if not m.name.split(".")[-1].startswith("_"))]


def build(out: Path) -> list[str]:
    """Write the reference to ``out``; returns pdoc's warnings."""
    pdoc.render.configure(docformat="restructuredtext", search=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pdoc.pdoc(*modules(), output_directory=out)
    return [f"{w.filename}:{w.lineno}: {w.message}" for w in caught]


if __name__ == "__main__":
    problems = build(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/api"))
    print("\n".join(problems) or "API reference built without warnings")
    sys.exit(1 if problems else 0)
