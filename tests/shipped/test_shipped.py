"""The shipped reference checkpoints reproduce their documented test accuracy.

These are the figures of docs/results.md, every shipped checkpoint's: the documented command,
``hypermaml eval checkpoints/NAME`` (600 test tasks of seed 0 for a few-shot checkpoint, the
held-out or test images for a classifier), is run again on the committed weights, so a change to
the model code, the data pipeline or the task sampler that moves them fails here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hypermaml.cli import main

SHIPPED = Path(__file__).parents[2] / "checkpoints"
pytestmark = pytest.mark.shipped

#: folder -> the test accuracy (%) that docs/results.md and the README give for it
DOCUMENTED = {
    "omniglot_5w1s_hypermaml": 97.55,
    "omniglot_5w1s_maml": 91.81,
    "omniglot_5w1s_protonet": 95.94,
    "omniglot_1s_protonet_snell": 98.88,
    "omniglot_20w1s_hypermaml": 94.39,
    "omniglot_5s_protonet_snell": 99.63,
    "omniglot_5w1s_maml_finn": 96.61,
    "omniglot_5w1s_maml_pretrained": 94.59,
    "omniglot_5w1s_maml_hyperconv4": 95.38,
    "cross_char_1s_hypermaml": 82.66,
    "cross_char_1s_hypermaml_stroke": 81.14,
    "cross_char_1s_hypermaml_control": 77.44,
    "cross_char_1s_hypermaml_paper": 78.21,
    "cross_char_1s_hypermaml_stage1": 78.31,
    "cross_char_5s_hypermaml": 91.50,
    "cross_char_5s_hypermaml_stroke": 91.04,
    "cross_char_5s_hypermaml_paper": 87.30,
    "cross_char_1s_maml": 75.37,
    "cross_char_5s_maml": 87.72,
    "cross_char_1s_maml_frame": 83.26,
    "cross_char_5s_maml_frame": 92.30,
    "cross_char_1s_protonet": 76.35,
    "cross_char_1s_protonet_frame": 81.87,
    "cross_char_5s_protonet": 89.65,
    "cross_char_5s_protonet_frame": 91.78,
    "cross_char_1s_maml_pretrained": 70.39,
    "cross_char_1s_maml_hyperconv4": 73.92,
    "cross_char_1s_ablation_both": 75.43,
    "cross_char_1s_ablation_switch": 72.03,
    "cross_char_1s_ablation_enhancement": 71.59,
    "cross_char_1s_ablation_neither": 69.40,
}


def evaluate(name: str, data_root: Path, tmp_path: Path) -> dict:
    """The JSON report of ``hypermaml eval checkpoints/NAME``."""
    out = tmp_path / "result.json"
    args = ["eval", str(SHIPPED / name), "--data-dir", str(data_root), "--json", str(out)]
    assert main(args) == 0
    return json.loads(out.read_text())


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_reference_checkpoint_reproduces_its_documented_accuracy(
    name: str, data_root: Path, tmp_path: Path
) -> None:
    recorded = json.loads((SHIPPED / name / "test_seed0.json").read_text())
    result = evaluate(name, data_root, tmp_path)
    assert result["n_tasks"] == 600
    # the figure is rounded to 0.01; another CPU's convolution kernels may flip a near-tied
    # prediction, each flip moving the mean by 100 / (600 tasks x 75 queries) = 0.002
    assert result["accuracy"] == pytest.approx(DOCUMENTED[name], abs=0.01)
    assert result["accuracy"] == pytest.approx(recorded["accuracy"], abs=0.005)


#: checkpoint scored on 20-way tasks too -> its documented 20-way 1-shot accuracy (%)
DOCUMENTED_20_WAY = {"omniglot_1s_protonet_snell": 95.83}


@pytest.mark.parametrize("name", sorted(DOCUMENTED_20_WAY))
def test_reference_checkpoint_reproduces_its_documented_20_way_accuracy(
    name: str, data_root: Path, tmp_path: Path
) -> None:
    recorded = json.loads((SHIPPED / name / "test_20way_seed0.json").read_text())
    out = tmp_path / "result.json"
    args = ["eval", str(SHIPPED / name), "--n-way", "20", "--data-dir", str(data_root)]
    assert main([*args, "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert (result["n_tasks"], result["n_way"]) == (600, 20)
    assert result["accuracy"] == pytest.approx(DOCUMENTED_20_WAY[name], abs=0.01)
    assert result["accuracy"] == pytest.approx(recorded["accuracy"], abs=0.005)


#: classifier folder -> its documented accuracy (%) on its held-out or test images
DOCUMENTED_CLASSIFIERS = {
    "pretrain_cross_char_conv4_plain": 82.40,
    "pretrain_cross_char_conv4_hyper1": 83.59,
    "pretrain_omniglot_conv4_plain": 76.80,
    "pretrain_omniglot_conv4_hyper1": 76.76,
    "classify_fmnist_wrn_16_2_compressed": 90.07,
}


@pytest.mark.parametrize("name", sorted(DOCUMENTED_CLASSIFIERS))
def test_reference_classifier_reproduces_its_documented_accuracy(
    name: str, data_root: Path, tmp_path: Path
) -> None:
    result = evaluate(name, data_root, tmp_path)
    # each image flipped by another CPU's kernels moves the figure by 100 / n_images < 0.01
    assert result["accuracy"] == pytest.approx(DOCUMENTED_CLASSIFIERS[name], abs=0.01)


def test_every_shipped_checkpoint_has_its_documented_figure() -> None:
    """A checkpoint added to checkpoints/ without a reproduction test here fails."""
    folders = {p.name for p in SHIPPED.iterdir() if (p / "checkpoint.json").is_file()}
    assert folders == set(DOCUMENTED) | set(DOCUMENTED_CLASSIFIERS)
