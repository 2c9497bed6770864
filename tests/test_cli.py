"""The engine's command line: refusals with clear messages and exit codes, doctor, the JSON protocol."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from icon_engine.errors import EXIT_BAD_INPUT, EXIT_MODEL_FILES, EXIT_OUTPUT, EXIT_USAGE

ROOT = Path(__file__).resolve().parents[1]


def run_engine(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "icon_engine", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=ROOT)


@pytest.fixture()
def small_image(tmp_path: Path) -> Path:
    path = tmp_path / "plain.png"
    Image.fromarray(np.full((128, 96, 3), 200, np.uint8)).save(path)
    return path


def test_no_command_is_a_usage_error() -> None:
    result = run_engine()
    assert result.returncode == EXIT_USAGE
    assert "COMMAND" in result.stderr or "required" in result.stderr


def test_unknown_option_value_names_the_choices(tmp_path: Path, small_image: Path) -> None:
    result = run_engine("reconstruct", str(small_image), "--out", str(tmp_path / "o"), "--quality", "ultra")
    assert result.returncode == EXIT_USAGE
    assert "invalid choice: 'ultra'" in result.stderr and "preview" in result.stderr
    assert not (tmp_path / "o").exists()


def test_missing_photo(tmp_path: Path) -> None:
    result = run_engine("reconstruct", str(tmp_path / "nope.jpg"), "--out", str(tmp_path / "o"))
    assert result.returncode == EXIT_BAD_INPUT
    assert "nope.jpg" in result.stderr and "hint:" in result.stderr
    assert not (tmp_path / "o").exists()


def test_not_an_image_is_refused_before_any_work(tmp_path: Path) -> None:
    fake = tmp_path / "notes.jpg"
    fake.write_text("this is not a photo")
    result = run_engine("reconstruct", str(fake), "--out", str(tmp_path / "o"), "--progress", "json")
    assert result.returncode == EXIT_BAD_INPUT
    line = json.loads(result.stdout.strip().splitlines()[-1])
    assert line["event"] == "error" and line["code"] == "bad_image" and line["hint"]
    assert not (tmp_path / "o").exists()


def test_unwritable_output_folder(tmp_path: Path, small_image: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    result = run_engine("reconstruct", str(small_image), "--out", str(blocker / "sub"))
    assert result.returncode == EXIT_OUTPUT
    assert "is a file" in result.stderr
    if os.geteuid() != 0:  # root can write anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        result = run_engine("reconstruct", str(small_image), "--out", str(locked / "o"))
        assert result.returncode == EXIT_OUTPUT


def test_missing_model_files_are_named(tmp_path: Path, small_image: Path) -> None:
    result = run_engine("reconstruct", str(small_image), "--out", str(tmp_path / "o"), "--smplx-model",
                        str(tmp_path / "SMPLX_NEUTRAL.npz"))
    assert result.returncode == EXIT_MODEL_FILES
    assert "SMPLX_NEUTRAL.npz" in result.stderr


def test_cuda_request_without_cuda(tmp_path: Path, small_image: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = run_engine("reconstruct", str(small_image), "--out", str(tmp_path / "o"), "--device", "cuda")
    assert result.returncode == EXIT_MODEL_FILES
    assert "--device cpu" in result.stderr


def test_doctor_reports_packages_device_and_optional_files() -> None:
    result = run_engine("doctor", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["packages"]["torch"].startswith("2.13.0")
    assert report["device"]["cuda"] in (True, False)
    assert "icon.is.tue.mpg.de" in report["icon_data"]["how_to_enable"]
    assert report["body_model"]["active"] == "open"
    assert "smpl-x.is.tue.mpg.de" in report["body_model"]["how_to_use_official"]
    text = run_engine("doctor").stdout
    assert "Body model:" in text and "ICON networks:" in text


def test_validate_refuses_a_non_bundle(tmp_path: Path) -> None:
    result = run_engine("validate", str(tmp_path))
    assert result.returncode == EXIT_BAD_INPUT
    assert "bundle.json is missing" in result.stderr
