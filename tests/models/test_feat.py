"""FEAT's pre-trained encoders imported through the key table: a file with FEAT's names and
shapes (random values), saved as FEAT saves it, must give our network FEAT's function.

The reference networks below re-implement the forward passes of FEAT's
``model/networks/convnet.py`` (ConvNet) and ``model/networks/res12.py`` (ResNet-12, eval mode:
DropBlock inactive) in plain torch, reading FEAT's state dict by its own names.
"""

from __future__ import annotations

import math
import typing

import pytest
import torch
import torch.nn.functional as F

from hypermaml.classify.config import ClassifyConfig, ClassifyDataConfig
from hypermaml.config import ExperimentConfig, MAMLConfig
from hypermaml.errors import CheckpointError
from hypermaml.methods import build_method
from hypermaml.models.config import ModelConfig, NetworkConfig
from hypermaml.models.feat import (
    convert_feat_state,
    feat_network,
    import_feat,
    read_feat_file,
    write_feat_checkpoint,
)
from hypermaml.outputs import OutputError
from hypermaml.training.pretrained import load_pretrained_encoder

WIDTHS = (64, 160, 320, 640)
BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def _bn(params: dict, name: str, channels: int, g: torch.Generator) -> None:
    """Non-trivial BatchNorm tensors: affine parameters and running statistics."""
    params[f"{name}.weight"] = 0.25 + 0.5 * torch.rand(channels, generator=g)
    params[f"{name}.bias"] = 0.2 * torch.randn(channels, generator=g)
    params[f"{name}.running_mean"] = 0.3 * torch.randn(channels, generator=g)
    params[f"{name}.running_var"] = 0.5 + 1.5 * torch.rand(channels, generator=g)
    params[f"{name}.num_batches_tracked"] = torch.tensor(1234)


def _conv(c_out: int, c_in: int, k: int, g: torch.Generator) -> torch.Tensor:
    return torch.randn(c_out, c_in, k, k, generator=g) * math.sqrt(2.0 / (c_in * k * k))


def feat_convnet_params(seed: int = 0) -> dict[str, torch.Tensor]:
    """FEAT ConvNet's state dict (con-pre.pth: the ConvNet's own names)."""
    g, params, c_in = torch.Generator().manual_seed(seed), {}, 3
    for b in range(4):
        params[f"encoder.{b}.0.weight"] = _conv(64, c_in, 3, g)
        params[f"encoder.{b}.0.bias"] = 0.2 * torch.randn(64, generator=g)
        _bn(params, f"encoder.{b}.1", 64, g)
        c_in = 64
    return params


def feat_res12_params(seed: int = 0) -> dict[str, torch.Tensor]:
    """FEAT Classifier's state dict for Res12: the ResNet under ``encoder.``, the 64-way ``fc``."""
    g, params, c_in = torch.Generator().manual_seed(seed), {}, 3
    for s, width in enumerate(WIDTHS, 1):
        pre = f"encoder.layer{s}.0"
        for j, fan_in in ((1, c_in), (2, width), (3, width)):
            params[f"{pre}.conv{j}.weight"] = _conv(width, fan_in, 3, g)
            _bn(params, f"{pre}.bn{j}", width, g)
        params[f"{pre}.downsample.0.weight"] = _conv(width, c_in, 1, g)
        _bn(params, f"{pre}.downsample.1", width, g)
        c_in = width
    params["fc.weight"] = 0.01 * torch.randn(64, 640, generator=g)
    params["fc.bias"] = torch.zeros(64)
    return params


def _ref_bn(x: torch.Tensor, p: dict, name: str, batch_stats: bool) -> torch.Tensor:
    mean, var = (
        (None, None) if batch_stats else (p[f"{name}.running_mean"], p[f"{name}.running_var"])
    )
    return F.batch_norm(
        x, mean, var, p[f"{name}.weight"], p[f"{name}.bias"], batch_stats, 0.0, 1e-5
    )


def ref_convnet_map(p: dict, x: torch.Tensor, batch_stats: bool = False) -> torch.Tensor:
    """FEAT's ConvNet up to its last block: [B, 3, 84, 84] -> [B, 64, 5, 5]."""
    for b in range(4):
        x = F.conv2d(x, p[f"encoder.{b}.0.weight"], p[f"encoder.{b}.0.bias"], padding=1)
        x = F.max_pool2d(F.relu(_ref_bn(x, p, f"encoder.{b}.1", batch_stats)), 2)
    return x


def ref_convnet(p: dict, x: torch.Tensor) -> torch.Tensor:
    """FEAT's ConvNet.forward: the last map max-pooled 5x5 -> [B, 64]."""
    return F.max_pool2d(ref_convnet_map(p, x), 5).flatten(1)


def ref_res12(p: dict, x: torch.Tensor, batch_stats: bool = False) -> torch.Tensor:
    """FEAT's ResNet (res12.py) in eval mode, average-pooled: [B, 3, 84, 84] -> [B, 640]."""
    for s in range(1, 5):
        pre = f"encoder.layer{s}.0"
        out = x
        for j in (1, 2, 3):
            out = F.conv2d(out, p[f"{pre}.conv{j}.weight"], padding=1)
            out = _ref_bn(out, p, f"{pre}.bn{j}", batch_stats)
            out = F.leaky_relu(out, 0.1) if j < 3 else out
        residual = _ref_bn(F.conv2d(x, p[f"{pre}.downsample.0.weight"]), p,
                           f"{pre}.downsample.1", batch_stats)  # fmt: skip
        x = F.max_pool2d(F.leaky_relu(out + residual, 0.1), 2)
    return F.avg_pool2d(x, 5, stride=1).flatten(1)


def save_as_feat(params: dict, path) -> None:
    torch.save({"params": params}, path)


def images(n: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, 3, 84, 84, generator=torch.Generator().manual_seed(seed))


def converted(arch: str, path) -> torch.nn.Module:
    state, _ = import_feat(path, arch)
    network = feat_network(arch)
    network.load_state_dict(state)
    return network.eval()


@torch.no_grad()
def test_conv4_import_computes_feats_convnet(tmp_path):
    params = feat_convnet_params()
    save_as_feat(params, tmp_path / "con-pre.pth")
    network = converted("conv4", tmp_path / "con-pre.pth")
    x = images(4)
    body = network.body(x)  # [B, 64, 5, 5]
    assert (body - ref_convnet_map(params, x)).abs().max() < 1e-5
    # FEAT's 5x5 max-pool head over our map is FEAT's feature
    assert (F.max_pool2d(body, 5).flatten(1) - ref_convnet(params, x)).abs().max() < 1e-5
    assert ref_convnet(params, x).abs().max() > 0.1  # a real signal, not zeros


@torch.no_grad()
def test_resnet12_import_computes_feats_resnet12(tmp_path):
    params = feat_res12_params()
    save_as_feat(params, tmp_path / "Res12-pre.pth")
    network = converted("resnet12", tmp_path / "Res12-pre.pth")
    x = images(2)
    reference = ref_res12(params, x)
    assert reference.abs().max() > 0.1
    assert (network.features(x) - reference).abs().max() < 1e-5


@torch.no_grad()
def test_the_weights_fit_the_variants_of_each_network():
    """conv4pool averages FEAT's final map; resnet12_dropblock is FEAT's ResNet-12 in eval."""
    params, x = feat_convnet_params(), images(2)
    network = feat_network("conv4pool")
    network.load_state_dict(convert_feat_state(params, "conv4pool")[0])
    expected = ref_convnet_map(params, x).mean(dim=(2, 3))
    assert (network.eval().features(x) - expected).abs().max() < 1e-5
    params = feat_res12_params()
    network = feat_network("resnet12_dropblock")
    network.load_state_dict(convert_feat_state(params, "resnet12_dropblock")[0])
    assert (network.eval().features(x) - ref_res12(params, x)).abs().max() < 1e-5


def test_report_names_what_was_done(tmp_path):
    save_as_feat(feat_res12_params(), tmp_path / "Res12-pre.pth")
    state, report = import_feat(tmp_path / "Res12-pre.pth", "resnet12")
    assert report.dropped == ["fc.weight", "fc.bias"]
    assert report.prefix == "encoder." and report.filled == [] and report.folded == []
    assert report.tensors == len(state) == len(feat_network("resnet12").state_dict())
    save_as_feat(feat_convnet_params(), tmp_path / "con-pre.pth")
    _, report = import_feat(tmp_path / "con-pre.pth", "conv4")
    assert report.folded == [f"encoder.{b}.0.bias" for b in range(4)]
    assert len(report.sha256) == 64


def test_conv4_reads_the_state_of_a_feat_model_too():
    """A ConvNet inside a FEAT model (``encoder.encoder.*``, with its ``fc``) converts alike."""
    params = feat_convnet_params()
    model_state = {f"encoder.{k}": v for k, v in params.items()}
    model_state |= {"fc.weight": torch.zeros(64, 64), "fc.bias": torch.zeros(64)}
    own, _ = convert_feat_state(params, "conv4")
    nested, done = convert_feat_state(model_state, "conv4")
    assert done["prefix"] == "encoder." and done["dropped"] == ["fc.weight", "fc.bias"]
    assert own.keys() == nested.keys()
    assert all(torch.equal(own[k], nested[k]) for k in own)


def test_an_unknown_key_is_named():
    params = feat_res12_params()
    params["encoder.layer5.0.conv1.weight"] = torch.zeros(1)
    params["module.encoder.layer1.0.conv1.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match="unknown keys") as err:
        convert_feat_state(params, "resnet12")
    assert "encoder.layer5.0.conv1.weight" in str(err.value)
    assert "module.encoder.layer1.0.conv1.weight" in str(err.value)


def test_a_missing_key_is_named():
    params = feat_convnet_params()
    del params["encoder.2.1.running_var"], params["encoder.3.0.bias"]
    with pytest.raises(CheckpointError, match="missing keys") as err:
        convert_feat_state(params, "conv4")
    assert "encoder.2.1.running_var" in str(err.value) and "encoder.3.0.bias" in str(err.value)


def test_shape_mismatches_and_other_problems_are_listed_together():
    params = feat_res12_params()
    params["encoder.layer2.0.conv2.weight"] = torch.zeros(160, 160, 5, 5)
    params["encoder.extra"] = torch.zeros(1)
    del params["encoder.layer4.0.bn3.bias"]
    with pytest.raises(CheckpointError) as err:
        convert_feat_state(params, "resnet12")
    text = str(err.value)
    assert "shape mismatches: encoder.layer2.0.conv2.weight is (160, 160, 5, 5)" in text
    assert "unknown keys: encoder.extra" in text and "encoder.layer4.0.bn3.bias" in text


def test_the_wrong_arch_is_refused():
    with pytest.raises(CheckpointError, match="Res12-pre.pth resnet12"):
        convert_feat_state(feat_convnet_params(), "resnet12")
    with pytest.raises(CheckpointError, match="fit conv4, conv4pool, resnet12"):
        convert_feat_state(feat_convnet_params(), "resnet18")


def test_missing_num_batches_tracked_is_filled():
    """Files saved before PyTorch 0.4.1 have no num_batches_tracked; it does not matter."""
    params = {k: v for k, v in feat_convnet_params().items() if "num_batches" not in k}
    state, done = convert_feat_state(params, "conv4")
    assert done["filled"] == [f"norms.{b}.num_batches_tracked" for b in range(4)]
    assert int(state["norms.0.num_batches_tracked"]) == 0


class _Payload:
    """Unpickling this runs a call: what a weights-only load must refuse."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_pickle_with_a_payload_is_refused(tmp_path):
    marker = tmp_path / "ran"
    torch.save({"params": {"encoder.0.0.weight": _Payload(str(marker))}}, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match="refused"):
        read_feat_file(tmp_path / "bad.pth")
    assert not marker.exists()


def test_a_file_of_another_layout_is_refused(tmp_path):
    torch.save({"state_dict": {}}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="FEAT stores"):
        read_feat_file(tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="cannot be read"):
        read_feat_file(tmp_path / "absent.pth")


def feat_config(arch: str) -> ClassifyConfig:
    """The config an imported encoder is stored with."""
    cfg = ClassifyConfig(model=NetworkConfig(arch=arch))
    cfg.data.dataset = "mini_imagenet"  # type: ignore[assignment]
    return cfg


def test_the_checkpoint_holds_the_encoder_and_its_origin(tmp_path):
    from hypermaml.checkpoint import read_meta, read_weights

    save_as_feat(feat_convnet_params(), tmp_path / "con-pre.pth")
    report = write_feat_checkpoint(tmp_path / "con-pre.pth", "conv4", tmp_path / "out",
                                   feat_config("conv4"))  # fmt: skip
    path, meta = read_meta(tmp_path / "out", expect="classifier")
    assert meta["config"]["data"]["dataset"] == "mini_imagenet"
    assert meta["config"]["model"]["arch"] == "conv4" and meta["num_classes"] == 0
    assert meta["image_shape"] == [3, 84, 84]
    assert meta["imported_from"]["sha256"] == report.sha256
    assert meta["imported_from"]["pretrained_classes"] == 64
    assert meta["normalisation"]["mean"] == pytest.approx([0.485, 0.456, 0.406])
    state, _ = import_feat(tmp_path / "con-pre.pth", "conv4")
    weights = read_weights(path, meta)
    assert all(torch.equal(weights[k], state[k]) for k in state)


def test_an_import_replaces_only_an_earlier_import(tmp_path):
    save_as_feat(feat_convnet_params(), tmp_path / "con-pre.pth")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.csv").write_text("epoch\n")
    with pytest.raises(OutputError, match="choose another --out"):
        write_feat_checkpoint(tmp_path / "con-pre.pth", "conv4", tmp_path / "run",
                              feat_config("conv4"))  # fmt: skip
    args = (tmp_path / "con-pre.pth", "conv4", tmp_path / "out", feat_config("conv4"))
    write_feat_checkpoint(*args)
    with pytest.raises(OutputError, match="--force"):
        write_feat_checkpoint(*args)
    write_feat_checkpoint(*args, force=True)


def test_a_config_of_another_network_is_refused(tmp_path):
    save_as_feat(feat_convnet_params(), tmp_path / "con-pre.pth")
    with pytest.raises(CheckpointError, match="model.arch=conv4"):
        write_feat_checkpoint(tmp_path / "con-pre.pth", "conv4", tmp_path / "out",
                              feat_config("resnet12"))  # fmt: skip
    assert not (tmp_path / "out").exists()


def _accepts_mini_imagenet() -> bool:
    hint = typing.get_type_hints(ClassifyDataConfig)["dataset"]
    return "mini_imagenet" in typing.get_args(hint)


@pytest.mark.skipif(not _accepts_mini_imagenet(), reason="classify data.dataset has no "
                    "mini_imagenet yet: the stored config cannot be read back")  # fmt: skip
@pytest.mark.parametrize("arch", ["conv4", "resnet12"])
@torch.no_grad()
def test_train_init_starts_a_method_encoder_from_the_checkpoint(tmp_path, arch):
    """The path of ``hypermaml train --init``: the method's encoder (batch statistics, the
    transductive policy) computes FEAT's network with batch statistics."""
    if arch == "conv4":
        params, reference = feat_convnet_params(), lambda p, x: ref_convnet_map(p, x, True)
    else:
        params, reference = feat_res12_params(), lambda p, x: ref_res12(p, x, True)
    save_as_feat(params, tmp_path / "feat.pth")
    write_feat_checkpoint(tmp_path / "feat.pth", arch, tmp_path / "out", feat_config(arch))
    cfg = ExperimentConfig(model=ModelConfig(backbone=arch), method=MAMLConfig())
    method = build_method(cfg, (3, 84, 84)).eval()
    assert load_pretrained_encoder(method, tmp_path / "out", cfg.model) > 0
    x = images(3)
    expected = reference(params, x).flatten(1)
    # batch statistics, summed in another order by the fast encoder's fused blocks
    assert (method.encoder(x[None])[0] - expected).abs().max() < 1e-4


def test_eval_refuses_an_imported_encoder_and_names_the_next_step(tmp_path):
    from hypermaml.api import evaluate_checkpoint
    from hypermaml.errors import ConfigError

    save_as_feat(feat_convnet_params(), tmp_path / "con-pre.pth")
    write_feat_checkpoint(tmp_path / "con-pre.pth", "conv4", tmp_path / "out",
                          feat_config("conv4"))  # fmt: skip
    with pytest.raises(ConfigError, match=r"without a classification head.*--init"):
        evaluate_checkpoint(tmp_path / "out")
