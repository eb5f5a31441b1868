"""``hypermaml predict``: a support folder of class folders, query files and folders, the table,
CSV and JSON, and errors on a bad support folder."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from PIL import Image

import hypermaml
from hypermaml.cli import main
from hypermaml.data import load_split

NAME = "cross_char_1s_hypermaml"


@pytest.fixture(scope="module")
def folders(data_root, tmp_path_factory):
    """support/<class>/0.png (one EMNIST image, as EMNIST stores it: white on black, enlarged)
    and query/<class>_<i>.png (two more of each class), for 5 test classes."""
    root = tmp_path_factory.mktemp("predict")
    data = load_split("cross_char", "test", data_root)
    for c in range(5):
        images = data.class_images(c)[:, 0].numpy()
        name = f"letter{c}"
        (root / "support" / name).mkdir(parents=True)
        Image.fromarray(255 - images[0]).resize((56, 56)).save(root / "support" / name / "0.png")
        (root / "query").mkdir(exist_ok=True)
        for i in (1, 2):
            Image.fromarray(images[i]).save(root / "query" / f"{name}_{i}.png")
    return root


def test_predict_prints_the_table_and_writes_csv_and_json(folders, capsys, tmp_path):
    queries = folders / "query"
    assert main(["predict", NAME, "--support", str(folders / "support"), "--query",
                 str(queries), "--out", str(tmp_path / "p.csv"), "--top-k", "2"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "adapted to 5 classes in" in out and "10 queries in" in out
    rows = list(csv.DictReader((tmp_path / "p.csv").open()))
    assert len(rows) == 10 and all(len(r["top"].split(";")) == 2 for r in rows)
    task = hypermaml.load(NAME).adapt(sorted((folders / "support").glob("*/*.png")),
                                      [f"letter{c}" for c in range(5)])  # fmt: skip
    files = sorted(queries.glob("*.png"))
    assert [r["predicted"] for r in rows] == task.predict(files)
    correct = sum(r["predicted"] == Path(r["file"]).name.split("_")[0] for r in rows)
    assert correct >= 6  # chance: 2 of 10
    assert main(["predict", NAME, "--support", str(folders / "support"), "--query",
                 str(files[0]), str(files[1]), "--out", str(tmp_path / "p.json")]) == 0  # fmt: skip
    report = json.loads((tmp_path / "p.json").read_text())
    assert report["classes"] == [f"letter{c}" for c in range(5)] and report["shots"] == [1] * 5
    assert len(report["rows"]) == 2 and report["adapt_seconds"] > 0


def test_a_bad_support_folder_is_refused_by_name(folders, tmp_path, capsys):
    empty = tmp_path / "support"
    for c in ("a", "b"):
        (empty / c).mkdir(parents=True)
    (empty / "a" / "x.png").write_bytes((folders / "query" / "letter0_1.png").read_bytes())
    query = str(folders / "query")
    assert main(["predict", NAME, "--support", str(empty), "--query", query]) == 2
    err = capsys.readouterr().err
    assert f"class folder {empty / 'b'} holds no images" in err
    assert main(["predict", NAME, "--support", str(tmp_path / "none"), "--query", query]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert main(["predict", NAME, "--support", str(empty / "a"), "--query", query]) == 2
    assert "a task needs at least two" in capsys.readouterr().err
