"""Reference models by name: the registry matches the shipped folders, names resolve to a local
copy, and a missing copy is downloaded from the release URL and verified."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import hypermaml
from hypermaml.checkpoint import registry as reg
from hypermaml.cli import main
from hypermaml.errors import CheckpointError

SHIPPED = Path(__file__).resolve().parents[2] / "checkpoints"
NAME = "omniglot_5w1s_protonet"


def test_the_registry_lists_every_scored_shipped_model_with_its_files_digests():
    assert reg.rebuild(SHIPPED)["models"] == reg.registry()["models"], (
        "checkpoints/ changed: rewrite the registry with "
        "`python -m hypermaml.checkpoint.registry checkpoints`"
    )
    entry = reg.registry()["models"]["cross_char_1s_hypermaml"]
    assert (entry["method"], entry["n_way"], entry["n_shot"], entry["accuracy"]) == (
        "hypermaml", 5, 1, 82.66)  # fmt: skip


@pytest.fixture
def elsewhere(tmp_path, monkeypatch):
    """No source checkout and an empty model cache: only a download can give a model."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(reg, "SOURCE_CHECKOUT", tmp_path / "no-checkout")
    monkeypatch.setenv("HYPERMAML_MODELS", str(tmp_path / "cache"))
    monkeypatch.delenv("HYPERMAML_MODELS_URL", raising=False)
    return tmp_path


def test_a_name_loads_the_shipped_folder():
    model = hypermaml.load(NAME)
    assert model.path == SHIPPED / NAME and isinstance(model.method, hypermaml.ProtoNet)


def test_a_missing_model_is_downloaded_verified_and_then_found_in_the_cache(elsewhere, monkeypatch):
    mirror = elsewhere / "mirror"
    shutil.copytree(SHIPPED / NAME, mirror / NAME)
    with pytest.raises(CheckpointError, match=r"no release URL.*HYPERMAML_MODELS_URL"):
        hypermaml.load(NAME)
    monkeypatch.setenv("HYPERMAML_MODELS_URL", mirror.as_uri())
    model = hypermaml.load(NAME)
    assert model.path == elsewhere / "cache" / NAME
    shutil.rmtree(mirror)  # from now on the cache serves it
    assert hypermaml.load(NAME).path == elsewhere / "cache" / NAME


def test_a_download_that_fails_its_digest_is_refused_and_not_kept(elsewhere, monkeypatch):
    mirror = elsewhere / "mirror"
    shutil.copytree(SHIPPED / NAME, mirror / NAME)
    weights = mirror / NAME / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    monkeypatch.setenv("HYPERMAML_MODELS_URL", mirror.as_uri())
    with pytest.raises(CheckpointError, match=r"could not be fetched: .*sha256"):
        hypermaml.load(NAME)
    assert not (elsewhere / "cache" / NAME / "model.safetensors").exists()


def test_an_unknown_name_says_what_a_checkpoint_is(elsewhere):
    with pytest.raises(CheckpointError, match="is not a hypermaml checkpoint"):
        hypermaml.load("no_such_model")


def test_models_lists_the_registry_and_eval_takes_a_name(capsys, data_root, tmp_path):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "cross_char_1s_hypermaml" in out and "82.66 ± 0.77" in out
    assert main(["eval", NAME, "--tasks", "4", "--data-dir", str(data_root)]) == 0
    assert "protonet on omniglot/test 5-way 1-shot" in capsys.readouterr().out
