"""Checkpoints: exact round trip, and clear CheckpointErrors for everything else."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from hypermaml.config import (
    DataConfig,
    ExperimentConfig,
    HyperMAMLConfig,
    MAMLConfig,
    ModelConfig,
    ProtoNetConfig,
)
from hypermaml.data import EpisodeSampler, TaskShape
from hypermaml.errors import CheckpointError
from hypermaml.evaluation import evaluate
from hypermaml.methods import build_method, load_method, save_method
from tests.conftest import make_class_images

pytestmark = pytest.mark.usefixtures("single_thread")

SHAPE = (1, 16, 16)
N_WAY = 3


def make_config(method, bn="transductive") -> ExperimentConfig:
    return ExperimentConfig(
        data=DataConfig(n_way=N_WAY, n_shot=1, n_query=2, n_query_test=3),
        model=ModelConfig(backbone="conv4", bn=bn),
        method=method,
    )


CONFIGS = {
    "protonet": lambda: make_config(ProtoNetConfig()),
    "maml": lambda: make_config(MAMLConfig(inner_steps=1, inner_lr=0.1), bn="eval"),
    "hypermaml": lambda: make_config(
        HyperMAMLConfig(hn_width=16, warmup_epochs=0, switch_epochs=0)
    ),  # fmt: skip
}


def trained_method(cfg: ExperimentConfig, seed: int = 0):
    """A method whose weights differ from any fresh initialisation (and, with the "eval" BN
    policy, whose running statistics are not the initial ones)."""
    torch.manual_seed(seed)
    method = build_method(cfg, SHAPE)
    with torch.no_grad():
        for p in method.parameters():
            p.add_(0.05 * torch.randn_like(p))
    method.train()
    if cfg.model.bn == "eval":
        encoder = method.encoder if hasattr(method, "net") else method.encoder
        with torch.no_grad():
            encoder(torch.rand(2, 5, *SHAPE))
    return method


def save(path, method, cfg, epoch=3, metrics=None):
    save_method(path, method, cfg, SHAPE, epoch, metrics or {"val_accuracy": 51.5})


@pytest.fixture
def data():
    return make_class_images(n_classes=5, n_per_class=6, size=16)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_round_trip_gives_identical_weights_and_evaluation(name, tmp_path, data):
    cfg = CONFIGS[name]()
    method = trained_method(cfg)
    save(tmp_path / "ckpt", method, cfg, epoch=7, metrics={"val_accuracy": 61.25})
    torch.manual_seed(1234)  # a rebuilt model must get its weights from the file, not the seed
    ckpt = load_method(tmp_path / "ckpt", expect_method=name)
    assert type(ckpt.method) is type(method)
    assert ckpt.config == cfg
    assert ckpt.meta["epoch"] == 7 and ckpt.meta["metrics"] == {"val_accuracy": 61.25}
    assert ckpt.meta["image_shape"] == list(SHAPE)
    before, after = method.state_dict(), ckpt.method.state_dict()
    assert before.keys() == after.keys()
    for key in before:
        assert torch.equal(before[key], after[key]), key
    kwargs = dict(shape=TaskShape(N_WAY, 1, 3), n_tasks=10, seed=5, batch_size=4)
    original = evaluate(method, data, **kwargs)
    loaded = evaluate(ckpt.method, data, **kwargs)
    assert loaded.task_accuracies == original.task_accuracies
    assert loaded.n_tasks == 10
    # and the evaluation is sensitive to the weights: a fresh model scores other logits
    fresh = build_method(cfg, SHAPE).eval()
    batch = EpisodeSampler(data, TaskShape(N_WAY, 1, 3), seed=5).sample(2)
    ckpt.method.eval()
    with torch.no_grad():
        assert not torch.allclose(fresh(batch), ckpt.method(batch))


def test_run_folder_resolves_to_best(tmp_path):
    cfg = CONFIGS["protonet"]()
    save(tmp_path / "run" / "best", trained_method(cfg), cfg)
    assert load_method(tmp_path / "run").path == tmp_path / "run" / "best"


def test_saving_over_a_checkpoint_replaces_it_and_leaves_no_tmp_or_old(tmp_path):
    cfg = CONFIGS["hypermaml"]()
    path = tmp_path / "last"
    save(path, trained_method(cfg, seed=0), cfg, epoch=1)
    second = trained_method(cfg, seed=1)
    save(path, second, cfg, epoch=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]
    ckpt = load_method(path)
    assert ckpt.meta["epoch"] == 2
    assert torch.equal(ckpt.method.head.weight, second.head.weight)


def test_stale_tmp_folder_from_an_interrupted_save_is_replaced(tmp_path):
    cfg = CONFIGS["protonet"]()
    (tmp_path / "best.tmp-41-0a0b0c").mkdir()
    (tmp_path / "best.tmp-41-0a0b0c" / "junk").write_text("half written")
    (tmp_path / "best.old-version").mkdir()  # a person's folder: not one a write leaves
    save(tmp_path / "best", trained_method(cfg), cfg)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best", "best.old-version"]
    assert sorted(p.name for p in (tmp_path / "best").iterdir()) == [
        "checkpoint.json",
        "model.safetensors",
    ]


def test_checkpoint_left_as_old_by_an_interrupted_save_is_still_found(tmp_path):
    cfg = CONFIGS["protonet"]()
    save(tmp_path / "best", trained_method(cfg), cfg)
    (tmp_path / "best").rename(tmp_path / "best.old")  # crash between the two renames
    assert load_method(tmp_path / "best").path == tmp_path / "best.old"


@pytest.fixture
def saved(tmp_path):
    cfg = CONFIGS["protonet"]()
    path = tmp_path / "ckpt"
    save(path, trained_method(cfg), cfg)
    return path


def test_folder_without_checkpoint_json_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    for path in (tmp_path / "empty", tmp_path / "does-not-exist"):
        with pytest.raises(CheckpointError) as info:
            load_method(path)
        assert str(path) in str(info.value) and "checkpoint.json" in str(info.value)


@pytest.mark.parametrize("content", [b"{not json", b"", b"\x00" * 64, b'{"format": "hyperm'])
def test_unparsable_checkpoint_json_is_refused(saved, content):
    (saved / "checkpoint.json").write_bytes(content)
    with pytest.raises(CheckpointError) as info:
        load_method(saved)
    assert str(saved / "checkpoint.json") in str(info.value) and "corrupt" in str(info.value)


def test_checkpoint_json_that_is_not_an_object_is_refused(saved):
    for content in ("[]", "null", '"text"', "42"):
        (saved / "checkpoint.json").write_text(content)
        with pytest.raises(CheckpointError, match="checkpoint.json"):
            load_method(saved)


def edit_meta(path, **changes):
    meta = json.loads((path / "checkpoint.json").read_text())
    for key, value in changes.items():
        if value is None:
            meta.pop(key)
        else:
            meta[key] = value
    (path / "checkpoint.json").write_text(json.dumps(meta))


def test_json_of_another_program_is_refused(saved):
    edit_meta(saved, format="something-else")
    with pytest.raises(CheckpointError, match="not a hypermaml checkpoint"):
        load_method(saved)


def test_newer_format_is_refused_with_upgrade_hint(saved):
    edit_meta(saved, format_version=99)
    with pytest.raises(CheckpointError, match="upgrade"):
        load_method(saved)


def test_invalid_stored_config_is_refused(saved):
    meta = json.loads((saved / "checkpoint.json").read_text())
    meta["config"]["data"]["n_way"] = "three"
    (saved / "checkpoint.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="config is invalid"):
        load_method(saved)


@pytest.mark.parametrize("field", ["config", "image_shape", "method"])
def test_checkpoint_json_missing_a_field_is_refused(saved, field):
    edit_meta(saved, **{field: None})
    with pytest.raises(CheckpointError, match="checkpoint.json|config"):
        load_method(saved, expect_method="protonet")


@pytest.mark.parametrize("content", [b"garbage" * 10, b""])
def test_corrupt_safetensors_is_refused(saved, content):
    (saved / "model.safetensors").write_bytes(content)
    with pytest.raises(CheckpointError) as info:
        load_method(saved)
    assert str(saved / "model.safetensors") in str(info.value) and "corrupt" in str(info.value)


def test_missing_safetensors_is_refused(saved):
    (saved / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_method(saved)


def test_weights_of_another_model_are_refused(saved):
    other = CONFIGS["hypermaml"]()
    edit_meta(saved, method="hypermaml", config=other.to_dict())
    with pytest.raises(CheckpointError) as info:
        load_method(saved)
    message = str(info.value)
    assert "another model" in message and "hypermaml" in message and "missing" in message


def test_weights_of_another_shape_are_refused(tmp_path):
    cfg = CONFIGS["hypermaml"]()
    save(tmp_path / "ckpt", trained_method(cfg), cfg)
    meta = json.loads((tmp_path / "ckpt" / "checkpoint.json").read_text())
    meta["config"]["data"]["n_way"] = 5
    (tmp_path / "ckpt" / "checkpoint.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="does not fit"):
        load_method(tmp_path / "ckpt")


def test_expect_method_mismatch_is_refused(saved):
    with pytest.raises(CheckpointError) as info:
        load_method(saved, expect_method="hypermaml")
    message = str(info.value)
    assert "protonet" in message and "hypermaml" in message and str(saved) in message


def test_checkpoint_survives_a_copy_elsewhere(saved, tmp_path):
    target = tmp_path / "elsewhere" / "copy"
    shutil.copytree(saved, target)
    assert load_method(target).path == target
