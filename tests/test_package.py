"""The package works outside this repository: the wheel carries the configs and split files, the
command has a version, and optional dependencies fail with the extra to install."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import sysconfig
import warnings
from pathlib import Path

import pytest

import hypermaml
from hypermaml.cli import main
from hypermaml.errors import MissingExtraError

ROOT = Path(__file__).resolve().parents[1]


def test_licence_file_matches_the_declared_licence():
    assert importlib.metadata.metadata("hypermaml")["License-Expression"] == "MIT"
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")


def test_version_flag(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"hypermaml {hypermaml.__version__}"


def test_core_install_leaves_plots_and_tensorboard_to_extras():
    requires = importlib.metadata.requires("hypermaml")
    core = [r for r in requires if "extra ==" not in r]
    assert not [r for r in core if r.startswith(("matplotlib", "tensorboard"))]
    assert 'matplotlib>=3.6; extra == "plots"' in requires
    assert 'tensorboard>=2.12; extra == "tensorboard"' in requires


def test_a_missing_plotting_library_names_the_extra(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now fails
    from hypermaml.experiments.plotting import pyplot

    with pytest.raises(MissingExtraError, match=r"pip install 'hypermaml\[plots\]'"):
        pyplot("the figure")
    assert main(["demo", "--out", str(tmp_path)]) == 2
    assert "hypermaml[plots]" in capsys.readouterr().err


def test_missing_tensorboard_leaves_the_csv_log_and_names_the_extra(monkeypatch, tmp_path):
    from hypermaml.runs.logs import MetricLog

    monkeypatch.setitem(sys.modules, "tensorboard", None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        log = MetricLog(tmp_path, tensorboard=True)
    assert log.writer is None
    assert any("hypermaml[tensorboard]" in str(w.message) for w in caught)
    log.write(0, {"train_loss": 1.0})
    assert (tmp_path / "metrics.csv").read_text().startswith("epoch,")


@pytest.mark.slow
def test_the_wheel_installed_elsewhere_evaluates_a_shipped_checkpoint(data_root, tmp_path):
    """Build the wheel, install it (without dependencies: this environment's serve) into a new
    virtual environment outside the repository, and run the installed command from there."""
    dist, env = tmp_path / "dist", tmp_path / "env"
    build = [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist)]
    subprocess.run([*build, str(ROOT)], check=True, capture_output=True, cwd=tmp_path)
    (wheel,) = dist.glob("hypermaml-*.whl")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    site = Path(sysconfig.get_path("purelib", vars={"base": str(env), "platbase": str(env)}))
    # the dependencies come from this environment's site-packages, which holds no hypermaml
    # (an editable install there is a .pth file, and .pth files of a path entry are not read)
    (site / "deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    pip = [sys.executable, "-m", "pip", "--python", str(env / "bin" / "python"), "install"]
    subprocess.run([*pip, "--no-deps", "--quiet", str(wheel)], check=True, capture_output=True)
    python, command = env / "bin" / "python", str(env / "bin" / "hypermaml")
    environ = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "HYPERMAML_DATA")}

    def run(*args: str) -> str:
        out = subprocess.run(args, cwd=tmp_path, env=environ, text=True, capture_output=True)
        assert out.returncode == 0, out.stderr
        return out.stdout

    where = run(str(python), "-c", "import hypermaml; print(hypermaml.__file__)")
    assert where.startswith(str(site))
    assert run(command, "--version").strip() == f"hypermaml {hypermaml.__version__}"
    assert "omniglot_5w1s_hypermaml" in run(str(python), "-m", "hypermaml", "configs")
    checkpoint = ROOT / "checkpoints" / "omniglot_5w1s_protonet"
    report = run(command, "eval", str(checkpoint), "--tasks", "20", "--data-dir", str(data_root))
    assert "protonet on omniglot/test 5-way 1-shot" in report
