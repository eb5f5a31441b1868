"""Typed configs: YAML, --set overrides, clear errors, method dispatch, round trips."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hypermaml.config import (
    ConfigError,
    DataConfig,
    ExperimentConfig,
    HyperMAMLConfig,
    MAMLConfig,
    ProtoNetConfig,
    apply_overrides,
    load_config,
)

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def write_yaml(path: Path, raw: dict) -> Path:
    path.write_text(yaml.safe_dump(raw))
    return path


def test_yaml_file_is_loaded_into_typed_sections(tmp_path):
    path = write_yaml(
        tmp_path / "c.yaml",
        {
            "data": {"dataset": "cross_char", "n_way": 3, "n_shot": 5},
            "model": {"backbone": "conv4pool", "bn": "eval"},
            "method": {"name": "maml", "inner_steps": 2, "inner_lr": 0.05, "adapt": "head"},
            "train": {"epochs": 7, "lr": 0.02, "milestones": [3, 5]},
        },
    )
    cfg = load_config(path)
    assert cfg.data == DataConfig(dataset="cross_char", n_way=3, n_shot=5)
    assert (cfg.model.backbone, cfg.model.bn) == ("conv4pool", "eval")
    assert cfg.method == MAMLConfig(inner_steps=2, inner_lr=0.05, adapt="head")
    assert (cfg.train.epochs, cfg.train.lr, cfg.train.milestones) == (7, 0.02, [3, 5])
    # keys absent from the file keep their defaults
    assert cfg.train.gamma == 0.3 and cfg.data.n_query == 16


def test_shipped_yaml_with_comments_loads():
    cfg = load_config(CONFIGS / "cross_char_1s_hypermaml.yaml")
    assert isinstance(cfg.method, HyperMAMLConfig)
    assert cfg.method.hn_width == 512 and cfg.train.milestones == [51, 550]
    assert cfg.data.dataset == "cross_char"


def test_no_file_gives_the_defaults():
    assert load_config(None) == ExperimentConfig()


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="neither a file nor a shipped config"):
        load_config(tmp_path / "nope.yaml")


def test_overrides_set_nested_values_parsed_as_yaml(tmp_path):
    path = write_yaml(tmp_path / "c.yaml", {"method": {"name": "hypermaml"}})
    cfg = load_config(
        path,
        [
            "method.hn_width=256",
            "method.enhancement=false",
            "train.lr=1e-3",
            "train.milestones=[4, 9]",
            "data.dataset=cross_char",
        ],
    )
    assert cfg.method.hn_width == 256 and cfg.method.enhancement is False
    assert isinstance(cfg.train.lr, float) and cfg.train.lr == pytest.approx(1e-3)
    assert cfg.train.milestones == [4, 9]
    assert cfg.data.dataset == "cross_char"


def test_override_creates_missing_section_and_later_override_wins():
    raw = apply_overrides({}, ["data.n_way=7", "data.n_way=9"])
    assert raw == {"data": {"n_way": 9}}
    assert ExperimentConfig.from_dict(raw).data.n_way == 9


def test_apply_overrides_does_not_mutate_its_input():
    raw = {"data": {"n_way": 5}}
    out = apply_overrides(raw, ["data.n_way=3"])
    assert raw == {"data": {"n_way": 5}} and out["data"]["n_way"] == 3


def test_override_without_equals_sign_is_an_error():
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        apply_overrides({}, ["data.n_way"])


def test_override_below_a_plain_value_is_an_error():
    with pytest.raises(ConfigError, match="n_way"):
        apply_overrides({"data": {"n_way": 5}}, ["data.n_way.x=1"])


@pytest.mark.parametrize(
    ("override", "key", "expected"),
    [
        ("data.n_way=five", "data.n_way", "int"),
        ("data.n_way=true", "data.n_way", "int"),
        ("data.n_way=2.5", "data.n_way", "int"),
        ("train.lr=fast", "train.lr", "float"),
        ("train.milestones=3", "train.milestones", "list"),
        ("train.milestones=[1, x]", "train.milestones[1]", "int"),
        ("method.enhancement=1", "method.enhancement", "bool"),
        ("model.bn=batch", "model.bn", "transductive"),
        ("model.backbone=resnet", "model.backbone", "conv4pool"),
    ],
)
def test_type_errors_name_the_key_and_what_is_expected(override, key, expected):
    with pytest.raises(ConfigError) as info:
        load_config(None, [override])
    message = str(info.value)
    assert key in message and expected in message


def test_optional_int_accepts_null_and_int_but_not_text():
    base = {"method": {"name": "maml"}}
    assert (
        ExperimentConfig.from_dict(
            apply_overrides(base, ["method.inner_steps_test=null"])
        ).method.inner_steps_test
        is None
    )
    assert (
        ExperimentConfig.from_dict(
            apply_overrides(base, ["method.inner_steps_test=10"])
        ).method.inner_steps_test
        == 10
    )
    assert ExperimentConfig.from_dict(base).method.inner_steps_test is None
    with pytest.raises(ConfigError, match="method.inner_steps_test"):
        ExperimentConfig.from_dict(apply_overrides(base, ["method.inner_steps_test=many"]))


def test_int_is_accepted_for_a_float_field():
    cfg = load_config(None, ["train.lr=1"])
    assert isinstance(cfg.train.lr, float) and cfg.train.lr == 1.0


@pytest.mark.parametrize(
    ("raw", "bad", "valid"),
    [
        ({"data": {"n_ways": 5}}, "n_ways", ["n_way", "n_shot", "n_query", "dataset"]),
        ({"trian": {}}, "trian", ["data", "model", "method", "train"]),
        ({"method": {"name": "hypermaml", "hn_widht": 3}}, "hn_widht", ["hn_width", "hn_depth"]),
        ({"method": {"name": "maml", "hn_width": 3}}, "hn_width", ["inner_steps", "inner_lr"]),
    ],
)
def test_unknown_keys_are_named_with_the_valid_ones(raw, bad, valid):
    with pytest.raises(ConfigError) as info:
        ExperimentConfig.from_dict(raw)
    message = str(info.value)
    assert repr(bad) in message
    for key in valid:
        assert repr(key) in message


def test_unknown_key_from_an_override_is_named():
    with pytest.raises(ConfigError, match="n_shots"):
        load_config(None, ["data.n_shots=5"])


@pytest.mark.parametrize(
    ("name", "cls"),
    [("protonet", ProtoNetConfig), ("maml", MAMLConfig), ("hypermaml", HyperMAMLConfig)],
)
def test_method_section_is_dispatched_by_name(name, cls):
    cfg = ExperimentConfig.from_dict({"method": {"name": name}})
    assert type(cfg.method) is cls and cfg.method == cls()


@pytest.mark.parametrize("method", [{"name": "reptile"}, {"inner_steps": 3}, "maml"])
def test_unknown_or_missing_method_name_lists_the_choices(method):
    with pytest.raises(ConfigError) as info:
        ExperimentConfig.from_dict({"method": method})
    message = str(info.value)
    assert "method.name" in message
    for name in ("hypermaml", "maml", "protonet"):
        assert repr(name) in message


def test_method_default_is_hypermaml():
    assert isinstance(ExperimentConfig.from_dict({}).method, HyperMAMLConfig)


@pytest.mark.parametrize(
    "method",
    [
        ProtoNetConfig(),
        MAMLConfig(
            inner_steps=3, inner_lr=0.1, inner_steps_test=10, first_order=True, adapt="head"
        ),
        HyperMAMLConfig(
            hn_depth=2,
            hn_width=64,
            enhancement=False,
            warmup_epochs=0,
            switch_epochs=7,
            warmup_inner_lr=0.2,
            warmup_inner_steps=2,
        ),
    ],
)
def test_round_trip_to_dict_from_dict(method):
    cfg = ExperimentConfig(method=method)
    cfg.data.dataset, cfg.data.n_way, cfg.data.n_query_test = "cross_char", 20, 5
    cfg.model.bn = "eval"
    cfg.train.milestones, cfg.train.lr, cfg.train.device = [2, 8], 0.05, "cpu"
    raw = cfg.to_dict()
    back = ExperimentConfig.from_dict(raw)
    assert back == cfg and type(back.method) is type(method)
    # and through YAML text, as stored in a file
    assert ExperimentConfig.from_dict(yaml.safe_load(yaml.safe_dump(raw))) == cfg


def test_set_method_name_switches_the_method_and_keeps_later_overrides():
    path = Path(__file__).parents[1] / "configs/omniglot_5w1s_hypermaml.yaml"
    cfg = load_config(path, ["method.name=maml", "method.inner_steps=3", "train.lr=0.01"])
    assert isinstance(cfg.method, MAMLConfig)
    assert cfg.method.inner_steps == 3
    assert cfg.method.inner_lr == MAMLConfig().inner_lr  # MAML's default, not HyperMAML's fields
    assert cfg.train.lr == 0.01 and cfg.data.dataset == "omniglot"
    same = load_config(path, ["method.name=hypermaml"])
    assert same.method.warmup_epochs == 10  # the same name keeps the file's fields


@pytest.mark.parametrize("path", sorted(p.name for p in CONFIGS.glob("*.yaml")
                                        if not p.name.startswith("classify_")))  # fmt: skip
def test_every_shipped_few_shot_config_fits_its_dataset(path):
    from hypermaml.data.datasets import MIN_IMAGES_PER_CLASS, N_CLASSES

    cfg = load_config(CONFIGS / path)
    d = cfg.data
    assert d.n_shot + d.n_query <= MIN_IMAGES_PER_CLASS[(d.dataset, "train")], "training tasks"
    assert d.n_shot + d.n_query_test <= MIN_IMAGES_PER_CLASS[(d.dataset, "test")], "test tasks"
    assert d.n_way <= N_CLASSES[(d.dataset, "test")], "test classes"


@pytest.mark.parametrize("path", sorted(p.name for p in CONFIGS.glob("classify_*.yaml")))
def test_every_shipped_classifier_config_builds_its_network(path):
    from hypermaml.classify import load_classify_config
    from hypermaml.models.build import build_network

    cfg = load_classify_config(CONFIGS / path)
    assert build_network(cfg.model, 3, 10, 32) is not None


def test_images_per_class_table_matches_the_data(data_root):
    from hypermaml.data import load_split
    from hypermaml.data.datasets import IMAGES_PER_CLASS

    for (name, split), count in IMAGES_PER_CLASS.items():
        assert load_split(name, split, data_root).n_per_class == count, (name, split)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.val_every=0", "train.val_every=0 is out of range: it must be >= 1"),
        ("train.meta_batch=0", "train.meta_batch=0 is out of range: it must be >= 1"),
        ("train.meta_batch=-1", "train.meta_batch=-1 is out of range: it must be >= 1"),
        ("train.epochs=0", "train.epochs=0 is out of range: it must be >= 1 (the default is 100)"),
        ("train.epochs=-3", "train.epochs=-3 is out of range: it must be >= 1"),
        ("train.threads=0", "train.threads=0 is out of range: it must be >= 1 (or null"),
        ("train.lr=0", "train.lr=0.0 is out of range: it must be > 0"),
        ("train.gamma=0", "train.gamma=0.0 is out of range: it must be > 0"),
        ("train.milestones=[3, -1]", "train.milestones[1]=-1 is out of range: each item"),
        ("data.n_query=0", "data.n_query=0 is out of range"),
        ("data.train_stroke=-1", "data.train_stroke=-1.0 is out of range: it must be >= 0"),
        ("method.hn_width=0", "method.hn_width=0 is out of range"),
        ("method.switch_epochs=-1", "method.switch_epochs=-1 is out of range: it must be >= 0"),
        ("method.warmup_inner_steps=0", "method.warmup_inner_steps=0 is out of range"),
    ],
)
def test_counts_and_rates_out_of_range_name_the_field_the_value_and_the_range(override, message):
    with pytest.raises(ConfigError) as info:
        load_config(None, [override])
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optim.epochs=0", "optim.epochs=0 is out of range: it must be >= 1"),
        ("optim.batch_size=-8", "optim.batch_size=-8 is out of range"),
        ("optim.lr=0", "optim.lr=0.0 is out of range: it must be > 0"),
        ("optim.gamma=-0.2", "optim.gamma=-0.2 is out of range: it must be > 0"),
        ("optim.weight_decay=-1e-4", "optim.weight_decay=-0.0001 is out of range"),
        ("swa.lr=0", "swa.lr=0.0 is out of range"),
        ("swa.start_epoch=-1", "swa.start_epoch=-1 is out of range: it must be >= 0"),
        ("run.eval_every=0", "run.eval_every=0 is out of range: it must be >= 1"),
        ("run.threads=0", "run.threads=0 is out of range"),
        ("data.train_subset=0", "data.train_subset=0 is out of range"),
        ("run.device=gpu", "run.device='gpu': not a device hypermaml runs on"),
    ],
)
def test_classify_counts_and_rates_out_of_range_are_refused(override, message):
    from hypermaml.classify.config import load_classify_config

    with pytest.raises(ConfigError) as info:
        load_classify_config(None, [override])
    assert message in str(info.value)


def test_the_lowest_legal_values_are_accepted():
    cfg = load_config(None, ["method.name=maml", "method.inner_steps=1",
                             "method.inner_steps_test=0", "train.threads=null", "train.epochs=1",
                             "data.train_stroke=0", "data.train_zoom=1"])  # fmt: skip
    assert (cfg.method.inner_steps, cfg.method.inner_steps_test, cfg.train.threads) == (1, 0, None)
    hyper = load_config(None, ["method.warmup_epochs=0", "method.switch_epochs=0"]).method
    assert (hyper.warmup_epochs, hyper.switch_epochs) == (0, 0)


def test_deterministic_is_on_by_default_and_can_be_turned_off():
    from hypermaml.classify.config import ClassifyConfig, load_classify_config

    assert ExperimentConfig().train.deterministic and ClassifyConfig().run.deterministic
    assert load_config(None, ["train.deterministic=false"]).train.deterministic is False
    assert load_classify_config(None, ["run.deterministic=false"]).run.deterministic is False


def test_a_stored_config_lacking_fields_loads_with_defaults_unless_complete():
    from hypermaml.config import missing_keys

    raw = ExperimentConfig().to_dict()
    del raw["data"]["dataset"], raw["train"]["deterministic"]
    assert missing_keys(ExperimentConfig, raw) == ["data.dataset", "train.deterministic"]
    assert ExperimentConfig.from_dict(raw) == ExperimentConfig()
    with pytest.raises(ConfigError, match="missing data.dataset, train.deterministic"):
        ExperimentConfig.from_dict(raw, complete=True)


@pytest.mark.parametrize(
    ("method", "delete", "missing"),
    [
        (HyperMAMLConfig(), ("model",), ["model"]),
        (HyperMAMLConfig(), ("method", "hn_width"), ["method.hn_width"]),
        (HyperMAMLConfig(), ("method", "name"), ["method.name"]),
        (MAMLConfig(), ("method", "inner_steps_test"), ["method.inner_steps_test"]),
        (ProtoNetConfig(), ("train", "val_every"), ["train.val_every"]),
    ],
)
def test_missing_keys_searches_every_section_the_method_one_by_its_name(method, delete, missing):
    from hypermaml.config import missing_keys

    raw = ExperimentConfig(method=method).to_dict()
    section = raw
    for key in delete[:-1]:
        section = section[key]
    del section[delete[-1]]
    assert missing_keys(ExperimentConfig, raw) == missing
    assert missing_keys(ExperimentConfig, {}) == ["data", "model", "method", "train"]


@pytest.mark.parametrize("method", [ProtoNetConfig(), MAMLConfig(), HyperMAMLConfig()])
def test_a_whole_config_is_complete(method):
    from hypermaml.classify.config import ClassifyConfig
    from hypermaml.config import missing_keys

    cfg = ExperimentConfig(method=method)
    assert missing_keys(ExperimentConfig, cfg.to_dict()) == []
    assert ExperimentConfig.from_dict(cfg.to_dict(), complete=True) == cfg
    raw = ClassifyConfig().to_dict()
    assert ClassifyConfig.from_dict(raw, complete=True) == ClassifyConfig()
    del raw["swa"]["lr"], raw["run"]
    with pytest.raises(ConfigError, match="missing swa.lr, run;"):
        ClassifyConfig.from_dict(raw, complete=True)


def test_train_n_way_sets_the_training_tasks_ways_for_protonet_only():
    cfg = load_config(None, ["method={name: protonet}", "data.train_n_way=60"])
    assert cfg.data.train_shape.n_way == 60 and cfg.data.test_shape.n_way == 5
    assert load_config(None, ["data.train_n_way=5"]).data.train_shape.n_way == 5
    assert load_config(None, []).data.train_shape.n_way == 5  # null: data.n_way
    for method in ("maml", "hypermaml"):
        with pytest.raises(ConfigError, match=r"data\.train_n_way=20 differs .* only protonet"):
            load_config(None, [f"method={{name: {method}}}", "data.train_n_way=20"])
    with pytest.raises(ConfigError, match=r"data\.train_n_way=1 is out of range"):
        load_config(None, ["method={name: protonet}", "data.train_n_way=1"])
