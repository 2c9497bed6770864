"""Untrusted files, damaged at random: every reader ends in its own error class (a clear message, exit status 3),
never in another exception. Short runs of the bench's mutation scripts (bench/bundle_mutations.py,
bench/motion_mutations.py, bench/media_mutations.py; longer runs and what they found: docs/bundle.md,
docs/addon.md). Each found at least one bug at these sizes before wave 18's fixes."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def test_damaged_bundles_end_in_a_bundle_error(tmp_path: Path) -> None:
    from test_bundle import _content

    from bench.bundle_mutations import run
    from icon_engine.bundle import write_bundle

    bundle = write_bundle(tmp_path / "person", _content(np.random.default_rng(0)))
    assert run([bundle], reads=600, seed=1) == {}


def test_damaged_motion_files_end_in_a_motion_error() -> None:
    from bench.motion_mutations import run

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # an overflowing value let through counts too
        assert run(reads=1500, seed=5) == {}


def test_damaged_photos_and_videos_end_in_an_engine_error() -> None:
    from bench.media_mutations import run

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow warns about the corrupt EXIF it skips
        assert run(reads=3000, seed=0) == {}


def test_a_damaged_smplx_model_file_ends_in_an_engine_error(tmp_path: Path) -> None:
    """The user's official SMPL-X ``.npz`` (a compressed archive: zlib errors were not caught before wave 18)."""
    from test_body_model_official import write_standin

    from bench.lib.mutations import collect, damage
    from icon_engine.body_model import official
    from icon_engine.errors import EngineError

    valid = write_standin(tmp_path / "valid.npz").read_bytes()

    def one_read(rng):  # noqa: ANN001, ANN202
        data, done = damage(valid, rng)
        path = tmp_path / "SMPLX_NEUTRAL.npz"
        path.write_bytes(data)
        return done, lambda: official.load_npz_arrays(path)

    assert collect(400, 1, one_read, EngineError) == {}


def test_damaged_bundles_the_reader_accepts_import_into_blender(tmp_path: Path) -> None:
    """The add-on's importer on every mutated bundle the reader lets through (a zero focal length, a ``rig``
    that is not an object and renamed SMPL-X joints crashed it before wave 18)."""
    import pytest

    pytest.importorskip("bpy")
    from test_bundle import _content

    from bench.bundle_mutations import run
    from icon_engine.bundle import write_bundle

    bundle = write_bundle(tmp_path / "person", _content(np.random.default_rng(0)))
    assert run([bundle], reads=300, seed=2, addon=True) == {}
