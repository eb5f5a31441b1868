"""Meta-training on real Omniglot: learning, exact resume, NaN handling, stored config."""

from __future__ import annotations

import json

import pytest
import safetensors.torch
import torch

from hypermaml.config import load_config
from hypermaml.data import TaskShape, load_split
from hypermaml.errors import TrainingError
from hypermaml.evaluation import evaluate
from hypermaml.methods import load_method
from hypermaml.training import train


def tiny_config(method: str = "hypermaml", **train_overrides):
    overrides = [
        f"method={{name: {method}}}",
        "data.dataset=omniglot",
        "train.epochs=2",
        "train.episodes_per_epoch=8",
        "train.meta_batch=4",
        "train.val_tasks=4",
        "train.device=cpu",
    ]
    overrides += [f"train.{k}={v}" for k, v in train_overrides.items()]
    cfg = load_config(None, overrides)
    if method == "hypermaml":
        cfg.method.warmup_epochs, cfg.method.switch_epochs = 1, 2
    return cfg


@pytest.mark.slow
def test_short_training_beats_chance_by_a_wide_margin(data_root, tmp_path):
    cfg = load_config(
        None,
        [
            "method={name: hypermaml, warmup_epochs: 0, switch_epochs: 0, hn_width: 256}",
            "train.epochs=3",
            "train.episodes_per_epoch=100",
            "train.meta_batch=4",
            "train.val_tasks=20",
            "train.device=cpu",
        ],
    )
    result = train(cfg, tmp_path / "run", data_root, progress=False, tensorboard=False)
    ckpt = load_method(tmp_path / "run" / "best")
    test = load_split("omniglot", "test", data_root)
    score = evaluate(ckpt.method, test, TaskShape(5, 1, 15), n_tasks=60, seed=0)
    assert result.best_val_accuracy > 60.0
    assert score.accuracy > 60.0, f"accuracy {score.accuracy:.1f}% is too close to chance (20%)"


def test_resume_continues_exactly(data_root, tmp_path):
    straight = tmp_path / "straight"
    train(tiny_config(), straight, data_root, progress=False, tensorboard=False)

    split = tmp_path / "split"
    train(tiny_config(epochs=1), split, data_root, progress=False, tensorboard=False)
    second = train(
        tiny_config(epochs=2), split, data_root, resume=True, progress=False, tensorboard=False
    )
    assert (second.epochs_run, second.total_epochs) == (1, 2)
    assert second.total_seconds > second.seconds > 0

    a = safetensors.torch.load_file(str(straight / "last" / "model.safetensors"))
    b = safetensors.torch.load_file(str(split / "last" / "model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    rows = (split / "metrics.csv").read_text().strip().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["0", "1"]
    header = rows[0].split(",")
    seconds = [float(r.split(",")[header.index("seconds")]) for r in rows[1:]]
    assert seconds[1] > seconds[0], "wall time must accumulate across resumed sessions"


def test_validation_every_n_epochs_and_after_the_last(data_root, tmp_path):
    cfg = tiny_config(epochs=5, val_every=2, episodes_per_epoch=4)
    result = train(cfg, tmp_path / "run", data_root, progress=False, tensorboard=False)
    rows = (tmp_path / "run" / "metrics.csv").read_text().strip().splitlines()
    header = rows[0].split(",")
    validated = [r.split(",")[0] for r in rows[1:] if r.split(",")[header.index("val_accuracy")]]
    assert validated == ["1", "3", "4"]
    assert result.best_epoch in (1, 3, 4)
    assert load_method(tmp_path / "run" / "best").meta["epoch"] == result.best_epoch
    last = json.loads((tmp_path / "run" / "last" / "checkpoint.json").read_text())
    assert last["epoch"] == 4


def test_existing_run_is_not_overwritten(data_root, tmp_path):
    train(tiny_config(epochs=1), tmp_path / "run", data_root, progress=False, tensorboard=False)
    with pytest.raises(TrainingError, match="--resume"):
        train(tiny_config(epochs=1), tmp_path / "run", data_root, progress=False)


def test_resume_with_another_config_is_refused(data_root, tmp_path):
    train(tiny_config(epochs=1), tmp_path / "run", data_root, progress=False, tensorboard=False)
    with pytest.raises(Exception, match="another config"):
        train(tiny_config(epochs=2, lr=0.5), tmp_path / "run", data_root, resume=True)


def test_nan_loss_stops_with_a_clear_error_and_keeps_the_checkpoint(
    data_root, tmp_path, monkeypatch
):
    run = tmp_path / "run"
    train(tiny_config(epochs=1), run, data_root, progress=False, tensorboard=False)
    before = (run / "last" / "model.safetensors").read_bytes()

    from hypermaml.methods import HyperMAML

    real = HyperMAML.meta_loss

    def poisoned(self, batch):
        loss, logits = real(self, batch)
        return loss * float("nan"), logits

    monkeypatch.setattr(HyperMAML, "meta_loss", poisoned)
    with pytest.raises(TrainingError, match=r"(?s)nan.*train\.lr.*--resume"):
        train(tiny_config(epochs=2), run, data_root, resume=True, progress=False)
    assert (run / "last" / "model.safetensors").read_bytes() == before


def test_checkpoint_stores_full_config_and_versions(data_root, tmp_path):
    cfg = tiny_config("protonet", epochs=1)
    train(cfg, tmp_path / "run", data_root, progress=False, tensorboard=False)
    meta = json.loads((tmp_path / "run" / "best" / "checkpoint.json").read_text())
    assert meta["config"] == cfg.to_dict()
    assert meta["method"] == "protonet"
    assert {"torch", "hypermaml", "python"} <= set(meta["versions"])
    assert "val_accuracy" in meta["metrics"]


def test_one_thread_trains_single_threaded_and_restores_the_count(data_root, tmp_path,
                                                                  monkeypatch):  # fmt: skip
    import hypermaml.training.loop as trainer

    seen = []
    real = trainer.meta_step

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(trainer, "meta_step", spy)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        train(tiny_config(epochs=1, threads=1), tmp_path / "run", data_root, progress=False,
              tensorboard=False)  # fmt: skip
        assert seen and set(seen) == {1}  # no idle intra-op threads beside the one worker
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_a_run_started_from_a_checkpoint_records_every_stage_and_keeps_it_on_resume(
    data_root, tmp_path
):
    first, second, third = (tmp_path / n for n in ("first", "second", "third"))
    train(tiny_config("protonet", epochs=1), first, data_root, progress=False, tensorboard=False)
    assert "started_from" not in json.loads((first / "best" / "checkpoint.json").read_text())
    train(tiny_config("protonet", epochs=1, lr=0.5), second, data_root, init=first / "best",
          progress=False, tensorboard=False)  # fmt: skip
    train(tiny_config("protonet", epochs=1), third, data_root, init=second / "best",
          progress=False, tensorboard=False)  # fmt: skip
    train(tiny_config("protonet", epochs=2), third, data_root, resume=True, progress=False,
          tensorboard=False)  # fmt: skip
    meta = json.loads((third / "last" / "checkpoint.json").read_text())
    assert meta["epoch"] == 1
    stage2 = meta["started_from"]
    assert stage2["path"] == str(second / "best") and stage2["config"]["train"]["lr"] == 0.5
    stage1 = stage2["started_from"]
    assert stage1["path"] == str(first / "best") and stage1["epoch"] == 0
    assert "started_from" not in stage1


def test_a_resume_never_shortens_a_run_nor_changes_its_start(data_root, tmp_path):
    run, other = tmp_path / "run", tmp_path / "other"
    train(tiny_config("protonet", epochs=2), run, data_root, progress=False, tensorboard=False)
    with pytest.raises(TrainingError, match="already trained 2 epochs and the config asks for 1"):
        train(tiny_config("protonet", epochs=1), run, data_root, resume=True, progress=False)
    done = train(tiny_config("protonet", epochs=2), run, data_root, resume=None, progress=False,
                 tensorboard=False)  # fmt: skip
    assert (done.epochs_run, done.total_epochs) == (0, 2)  # finished: nothing left to do
    with pytest.raises(TrainingError, match="started with no --init"):
        train(tiny_config("protonet", epochs=3), run, data_root, resume=True,
              init=run / "best", progress=False)  # fmt: skip
    with pytest.raises(TrainingError, match="holds no run to resume"):
        train(tiny_config("protonet"), other, data_root, resume=True, progress=False)
    assert not (other / "last").exists()


def test_resume_if_exists_starts_a_new_run_then_continues_it(data_root, tmp_path):
    run = tmp_path / "run"
    first = train(tiny_config("protonet", epochs=1), run, data_root, resume=None,
                  progress=False, tensorboard=False)  # fmt: skip
    second = train(tiny_config("protonet", epochs=2), run, data_root, resume=None,
                   progress=False, tensorboard=False)  # fmt: skip
    assert (first.total_epochs, second.epochs_run, second.total_epochs) == (1, 1, 2)


def test_protonet_trains_on_more_ways_than_it_is_validated_on(data_root, tmp_path):
    from hypermaml.training.loop import VAL_SEED, training_sampler

    cfg = tiny_config("protonet", epochs=1)
    cfg.data.train_n_way = 20
    batch = training_sampler(cfg, load_split("omniglot", "train", data_root)).sample(2)
    assert batch.n_way == 20 and batch.support_y.amax().item() == 19
    result = train(cfg, tmp_path / "run", data_root, progress=False, tensorboard=False)
    loaded = load_method(tmp_path / "run" / "best")
    assert loaded.config.data.train_n_way == 20
    five = evaluate(loaded.method, load_split("omniglot", "val", data_root), TaskShape(5, 1, 15),
                    n_tasks=4, seed=VAL_SEED)  # fmt: skip
    assert five.accuracy == pytest.approx(result.best_val_accuracy)  # validation is 5-way
