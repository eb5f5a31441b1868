"""Portable adapters: the ONNX graphs of a whole adaptation and of an adapted classifier give
PyTorch's logits on real EMNIST tasks, for any support and query counts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import hypermaml
from hypermaml.cli import main
from hypermaml.data import EpisodeSampler, TaskShape, load_split
from hypermaml.engine.kernels import portable
from hypermaml.inference.onnx_export import export_adapter

ort = pytest.importorskip("onnxruntime", reason="needs hypermaml[onnx] (onnxruntime)")
onnx = pytest.importorskip("onnx", reason="needs hypermaml[onnx] (onnx)")
TOL = 1e-4


@pytest.fixture(scope="module")
def emnist(data_root):
    return load_split("cross_char", "test", data_root)


def run(path: Path, **inputs: torch.Tensor) -> torch.Tensor:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {k: v.numpy() for k, v in inputs.items()})[0])


@pytest.mark.parametrize("name", ["cross_char_1s_hypermaml", "omniglot_5w1s_protonet"])
def test_the_adapter_graph_gives_pytorchs_logits_for_any_support_and_query_count(
    name, emnist, tmp_path
):
    model = hypermaml.load(name)
    path = export_adapter(model, tmp_path / "adapter.onnx")
    meta = {p.key: json.loads(p.value) for p in onnx.load(str(path)).metadata_props}
    assert meta["hypermaml.n_way"] == 5 and meta["hypermaml.statistics"] == "support"
    assert meta["hypermaml.preprocess"] == model.preprocess.to_dict()
    for shot, queries in ((1, 75), (3, 1)):  # the graph was traced with 2 shots and 3 queries
        batch = EpisodeSampler(emnist, TaskShape(5, shot, 15), seed=shot).sample(1)
        support, labels = batch.support_x[0], batch.support_y[0]
        query = batch.query_x[0][:queries]
        got = run(path, support_images=support, support_labels=labels, query_images=query)
        with portable():
            expected = model.adapt(support, labels.tolist()).logits(query)
        fast = model.adapt(support, labels.tolist()).logits(query)
        assert got.shape == (queries, 5)
        assert (got - expected).abs().max() <= TOL
        assert torch.equal(got.argmax(-1), fast.argmax(-1))


@pytest.mark.parametrize(("name", "statistics"), [
    ("cross_char_1s_hypermaml", "support"), ("cross_char_1s_maml_frame", "queries"),
    ("cross_char_1s_maml_frame", "support"), ("omniglot_5w1s_protonet", "queries"),
])  # fmt: skip
def test_an_adapted_classifier_exports_for_every_method(name, statistics, emnist, tmp_path):
    batch = EpisodeSampler(emnist, TaskShape(5, 1, 15), seed=7).sample(1)
    model = hypermaml.load(name)
    with portable():
        task = model.adapt(batch.support_x[0], [f"c{i}" for i in batch.support_y[0].tolist()])
        expected = task.logits(batch.query_x[0], statistics=statistics)
    path = task.export_onnx(tmp_path / "task.onnx", statistics)
    got = run(path, query_images=batch.query_x[0])
    assert (got - expected).abs().max() <= TOL
    meta = {p.key: json.loads(p.value) for p in onnx.load(str(path)).metadata_props}
    assert meta["hypermaml.classes"] == task.classes
    if statistics == "support":  # each query alone: one image gives the same row
        one = run(path, query_images=batch.query_x[0][:1])
        assert (one[0] - got[0]).abs().max() <= TOL


def test_maml_has_no_adapter_graph_and_says_what_to_do_instead(tmp_path):
    with pytest.raises(ValueError, match=r"gradient steps.*task\.export_onnx"):
        export_adapter(hypermaml.load("cross_char_1s_maml_frame"), tmp_path / "a.onnx")


def test_a_protonet_adapter_takes_another_number_of_classes(emnist, tmp_path):
    model = hypermaml.load("omniglot_5w1s_protonet")
    path = export_adapter(model, tmp_path / "three.onnx", n_way=3)
    batch = EpisodeSampler(emnist, TaskShape(3, 1, 15), seed=0).sample(1)
    got = run(path, support_images=batch.support_x[0], support_labels=batch.support_y[0],
              query_images=batch.query_x[0])  # fmt: skip
    with portable():
        expected = model.adapt(batch.support_x[0], batch.support_y[0].tolist()).logits(
            batch.query_x[0])  # fmt: skip
    assert got.shape == (45, 3) and (got - expected).abs().max() <= TOL
    with pytest.raises(ValueError, match="classifies 5 classes"):
        export_adapter(hypermaml.load("cross_char_1s_hypermaml"), tmp_path / "x.onnx", n_way=3)


def test_export_onnx_command_checks_the_graph_against_pytorch(data_root, tmp_path, capsys):
    out = tmp_path / "report.json"
    args = ["export-onnx", "cross_char_1s_hypermaml", "--out", str(tmp_path / "a.onnx"),
            "--check", "--tasks", "3", "--data-dir", str(data_root),
            "--json", str(out)]  # fmt: skip
    assert main(args) == 0
    report = json.loads(out.read_text())
    assert report["tasks"] == 3 and report["max_abs_diff"] <= TOL
    assert report["same_prediction"] == 1.0 and report["onnx_ms"] > 0
    assert "onnxruntime" in capsys.readouterr().out


def test_export_of_a_classifier_adapted_to_a_folder(tmp_path, emnist):
    from PIL import Image

    for c in range(5):
        (tmp_path / "support" / f"k{c}").mkdir(parents=True)
        Image.fromarray(emnist.class_images(c)[0, 0].numpy()).save(
            tmp_path / "support" / f"k{c}" / "0.png"
        )
    path = hypermaml.api.export_onnx("cross_char_1s_maml_frame", tmp_path / "m.onnx",
                                     support=tmp_path / "support")  # fmt: skip
    meta = {p.key: json.loads(p.value) for p in onnx.load(str(path)).metadata_props}
    assert meta["hypermaml.classes"] == [f"k{c}" for c in range(5)]
    assert run(path, query_images=torch.rand(4, 1, 28, 28)).shape == (4, 5)


def test_an_encoder_whose_graph_keeps_a_traced_size_is_refused_at_export(tmp_path):
    from hypermaml.methods.checkpoint import FewShotCheckpoint

    cfg = hypermaml.load_config("mini_imagenet_1s_hypermaml_resnet12", [])
    method = hypermaml.build_method(cfg, (3, 32, 32)).eval()
    model = FewShotCheckpoint(method, cfg, {"image_shape": [3, 32, 32]}, tmp_path / "untrained")
    with pytest.raises(ValueError, match="does not take other numbers of images"):
        export_adapter(model, tmp_path / "resnet.onnx")
    assert not (tmp_path / "resnet.onnx").exists()
