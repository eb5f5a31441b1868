"""The command line: train, eval (text and JSON), and its errors on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hypermaml.cli import main

CONFIGS = Path(__file__).resolve().parents[1] / "configs"

TINY = [
    "--set", "train.epochs=1",
    "--set", "train.episodes_per_epoch=4",
    "--set", "train.meta_batch=2",
    "--set", "train.val_tasks=2",
    "--quiet",
]  # fmt: skip


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, data_root):
    run = tmp_path_factory.mktemp("cli") / "run"
    code = main(
        ["train", str(CONFIGS / "omniglot_5w1s_protonet.yaml"), "--out", str(run),
         "--data-dir", str(data_root), *TINY]
    )  # fmt: skip
    assert code == 0
    return run


def test_eval_prints_and_writes_json(trained_run, data_root, tmp_path, capsys):
    out = tmp_path / "result.json"
    code = main(
        ["eval", str(trained_run / "best"), "--tasks", "6", "--seed", "3",
         "--json", str(out), "--data-dir", str(data_root)]
    )  # fmt: skip
    assert code == 0
    report = json.loads(out.read_text())
    for key in ("accuracy", "ci95", "n_tasks", "seconds_per_task", "method", "dataset",
                "n_way", "n_shot"):  # fmt: skip
        assert key in report
    assert report["n_tasks"] == 6 and report["method"] == "protonet"
    assert (report["dataset"], report["n_way"], report["n_shot"]) == ("omniglot", 5, 1)
    assert f"{report['accuracy']:.2f}" in capsys.readouterr().out


def test_eval_is_reproducible_from_the_seed(trained_run, data_root, tmp_path):
    results = []
    for name in ("a", "b"):
        out = tmp_path / f"{name}.json"
        main(["eval", str(trained_run), "--tasks", "4", "--json", str(out),
              "--data-dir", str(data_root)])  # fmt: skip
        results.append(json.loads(out.read_text())["accuracy"])
    assert results[0] == results[1]


def test_eval_of_impossible_shot_count_names_the_numbers(trained_run, data_root, capsys):
    code = main(["eval", str(trained_run), "--n-shot", "10", "--n-query", "15",
                 "--data-dir", str(data_root)])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert "25 images per class" in err and "20" in err


def test_eval_of_a_folder_that_is_no_checkpoint(tmp_path, capsys):
    assert main(["eval", str(tmp_path)]) == 2
    assert "not a hypermaml checkpoint" in capsys.readouterr().err


def test_unknown_config_key_is_named(tmp_path, capsys):
    config = str(CONFIGS / "omniglot_5w1s_hypermaml.yaml")
    code = main(["train", config, "--out", str(tmp_path / "r"), "--set", "method.hn_widht=3"])
    assert code == 2
    err = capsys.readouterr().err
    assert "hn_widht" in err and "hn_width" in err


def test_missing_data_names_the_file_to_put_in_place(tmp_path, capsys, monkeypatch):
    import hypermaml.download as files

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(files.urllib.request, "urlopen", offline)
    config = str(CONFIGS / "omniglot_5w1s_protonet.yaml")
    code = main(["train", config, "--out", str(tmp_path / "r"),
                 "--data-dir", str(tmp_path / "empty"), *TINY])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "empty" / "omniglot" / "images_background.zip") in err


def test_every_shipped_config_loads():
    """Few-shot configs and classification ones (``classify_*.yaml``), whose networks build."""
    import torch

    from hypermaml.classify.config import load_classify_config
    from hypermaml.config import load_config
    from hypermaml.models import build_network

    configs = sorted(CONFIGS.glob("*.yaml"))
    classify = [p for p in configs if p.name.startswith("classify_")]
    assert len(configs) - len(classify) >= 15 and len(classify) >= 10
    for path in configs:
        if path in classify:
            m = load_classify_config(path).model
            with torch.device("meta"):
                build_network(m, 3, 10)
        else:
            load_config(path)


def test_analyze_updates_on_the_reference_checkpoints(data_root, tmp_path, capsys):
    shipped = Path(__file__).resolve().parents[1] / "checkpoints"
    out = tmp_path / "updates.json"
    code = main(
        ["analyze", "updates", str(shipped / "omniglot_5w1s_hypermaml"),
         str(shipped / "omniglot_5w1s_maml"), "--maml-steps", "1", "--tasks", "4",
         "--json", str(out), "--data-dir", str(data_root)]
    )  # fmt: skip
    assert code == 0
    hyper, maml = json.loads(out.read_text())
    assert (hyper["method"], maml["method"], maml["maml_steps"]) == ("hypermaml", "maml", 1)
    assert hyper["n_tasks"] == maml["n_tasks"] == 4
    # the hypernetwork's update is an order of magnitude larger than one gradient step
    assert hyper["weight_mean"] > 5 * maml["weight_mean"] > 0
    assert "113.28" in capsys.readouterr().out  # the paper's figure beside ours


def test_analyze_updates_refuses_protonet(trained_run, data_root, capsys):
    code = main(["analyze", "updates", str(trained_run / "best"), "--tasks", "2",
                 "--data-dir", str(data_root)])  # fmt: skip
    assert code == 2
    assert "no classifier" in capsys.readouterr().err


def test_bench_adapt_times_and_scores_every_step_count(data_root, tmp_path, capsys):
    shipped = Path(__file__).resolve().parents[1] / "checkpoints"
    out, plot = tmp_path / "adapt.json", tmp_path / "adapt.png"
    code = main(
        ["bench", "adapt", "--maml", str(shipped / "omniglot_5w1s_maml"),
         "--hypermaml", str(shipped / "omniglot_5w1s_hypermaml"), "--steps", "0,1",
         "--tasks", "4", "--json", str(out), "--plot", str(plot),
         "--data-dir", str(data_root)]
    )  # fmt: skip
    assert code == 0
    report = json.loads(out.read_text())
    rows = [(r["method"], r["steps"]) for r in report["rows"]]
    assert rows == [("maml", 0), ("maml", 1), ("hypermaml", None)]
    for r in report["rows"]:
        assert r["seconds"] > 0 and r["n_tasks"] == 4 and 0 <= r["accuracy"] <= 100
    by_steps = {r["steps"]: r["accuracy"] for r in report["rows"]}
    assert by_steps[1] > by_steps[0]  # one step adapts; zero steps are the universal weights
    assert plot.stat().st_size > 0
    assert "212.62" not in capsys.readouterr().out  # the paper's rows only for steps timed


def test_bench_adapt_needs_a_checkpoint(capsys):
    assert main(["bench", "adapt"]) == 2
    assert "--maml" in capsys.readouterr().err


def test_bench_adapt_times_untrained_methods_built_from_configs(tmp_path, capsys):
    """The paper's Table 8 without data: the mini-ImageNet configs' methods at 84x84, timed on
    synthetic tasks, the published seconds alongside, no accuracy claimed."""
    out = tmp_path / "adapt.json"
    code = main(["bench", "adapt", "--untrained", "--maml", "mini_imagenet_1s_maml",
                 "--hypermaml", "mini_imagenet_1s_hypermaml", "--steps", "0,2", "--tasks", "3",
                 "--threads", "1", "--json", str(out)])  # fmt: skip
    assert code == 0
    report = json.loads(out.read_text())
    assert report["untrained"] and report["split"] == "synthetic"
    rows = [(r["method"], r["steps"]) for r in report["rows"]]
    assert rows == [("maml", 0), ("maml", 2), ("hypermaml", None)]
    assert all(r["seconds"] > 0 and r["accuracy"] is None for r in report["rows"])
    printed = capsys.readouterr().out
    assert "untrained" in printed and "10.5 / 48.71" in printed and "11.11 / 53.41" in printed


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--maml", "mini_imagenet_1s_hypermaml"], "trains hypermaml, not maml"),
        (["--maml", "mini_imagenet_1s_maml", "--plot", "x.png"], "needs trained checkpoints"),
        (["--hypermaml", "no_such_config"], "neither a file nor a shipped config"),
    ],
)
def test_bench_adapt_untrained_refuses_what_it_cannot_time(args, message, capsys):
    assert main(["bench", "adapt", "--untrained", *args, "--tasks", "1"]) == 2
    assert message in capsys.readouterr().err


def test_params_prints_the_paper_counts(capsys):
    code = main(["params", "--archs", "resnet18,wrn_28_4", "--hyper", "none,stage,layer",
                 "--compressed"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert "resnet18 (layer)" in out and "21,385,290" in out  # the paper: 21.4M
    assert "6,623,194" in out and "1,204,186" in out  # Hyper-WRN-28-4 (1): 6.6M; (C): 1.22M


def test_configs_lists_every_shipped_config_with_its_description(capsys):
    assert main(["configs"]) == 0
    out = capsys.readouterr().out
    assert len(out.splitlines()) == len(list(CONFIGS.glob("*.yaml")))
    assert "omniglot_5w1s_hypermaml" in out and "Omniglot (Vinyals split" in out


def test_train_takes_a_shipped_config_by_name(data_root, tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", "omniglot_5w1s_protonet", "--out", str(run), "--data-dir"]
    assert main([*args, str(data_root), *TINY]) == 0
    assert "best validation accuracy" in capsys.readouterr().out
    assert (run / "best" / "checkpoint.json").is_file()
    assert main(["train", "omniglot_5w1s_protonett", "--out", str(tmp_path / "r")]) == 2
    assert "hypermaml configs" in capsys.readouterr().err
