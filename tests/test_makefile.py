"""The Makefile's experiment targets run every config they name, from the pre-trained start its
config's header gives."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NATURAL_PREFIXES = ("cub_", "mini_imagenet_", "mini_to_cub_", "fc100_to_mini_")
needs_make = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def dry_run(target: str) -> tuple[str, dict[str, str]]:
    """What ``make -n -B TARGET`` would run, and each trained config's ``--init`` ("" for none)."""
    dry = subprocess.run(["make", "-n", "-B", target], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    train = r"hypermaml train configs/(\S+)\.yaml\s*((?:--init \S+)?)\s+--out"
    return dry, dict(re.findall(train, dry))


@needs_make(shutil.which("make") is None, reason="make is not installed")
def test_natural_images_runs_every_natural_row_from_its_configs_start():
    dry, trains = dry_run("natural-images")
    configs = sorted((ROOT / "configs").glob("*.yaml"))
    natural = [c for c in configs if c.name.startswith(NATURAL_PREFIXES)]
    assert len(natural) == 34 and sorted(trains) == sorted(c.stem for c in natural)
    for config in natural:
        header = re.search(r"^# hypermaml train .*$", config.read_text(), re.M)
        assert header, f"{config.name} has no command line in its header"
        wanted = re.search(r" --init \S+", header.group(0))
        assert trains[config.stem] == (wanted.group(0).strip() if wanted else ""), config.name
        if wanted:  # the pre-training it starts from is made first
            pretrain = wanted.group(0).split("/")[1].removeprefix("pretrain_")
            assert f"classify configs/classify_pretrain_{pretrain}.yaml" in dry
    assert dry.count("hypermaml eval runs/") == 34


@needs_make
def test_like_with_like_runs_every_second_stage_from_its_methods_paper_recipe():
    dry, trains = dry_run("like-with-like")
    stages = sorted(
        c.stem
        for c in (ROOT / "configs").glob("cross_char_*s_*_*.yaml")
        if c.stem.endswith(("_frame", "_control")) and "_stroke" not in c.stem
    )
    assert len(stages) == 12 and set(stages) <= set(trains)
    for stage in stages:
        header = re.search(r" --init (\S+)", (ROOT / "configs" / f"{stage}.yaml").read_text())
        assert header and trains[stage] == f"--init {header.group(1)}", stage
    # ProtoNet's paper-recipe runs are trained first, from scratch
    assert trains["cross_char_1s_protonet"] == trains["cross_char_5s_protonet"] == ""
    assert dry.index("configs/cross_char_1s_protonet.yaml") < dry.index(
        "configs/cross_char_1s_protonet_frame.yaml")  # fmt: skip


def test_omniglot_baselines_train_the_published_recipes_and_score_20_way_too():
    dry, trains = dry_run("omniglot-baselines")
    assert sorted(trains) == [
        "omniglot_1s_protonet_snell", "omniglot_20w1s_hypermaml", "omniglot_20w1s_maml_finn",
        "omniglot_5s_protonet_snell", "omniglot_5w1s_maml_finn",
    ]  # fmt: skip
    assert all(init == "" for init in trains.values())
    for run in ("omniglot_1s_protonet_snell", "omniglot_5s_protonet_snell"):
        assert f"eval runs/{run}/best --n-way 20 --tasks 600 --seed 0" in dry
