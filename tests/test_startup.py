"""Start-up of a cold engine process (issue 16): the body model loads in the background while the photo is read
and the person detected; its errors still name the problem."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from icon_engine.errors import EngineError
from icon_engine.options import ReconstructOptions
from icon_engine.pipeline import load_body, preload_body


def test_preload_gives_the_body_model_from_another_thread():
    main = threading.get_ident()
    seen: list[int] = []
    import icon_engine.pipeline as pipeline

    original = pipeline.load_body

    def spy(options, device):
        seen.append(threading.get_ident())
        return original(options, device)

    pipeline.load_body = spy
    try:
        body = preload_body(ReconstructOptions(device="cpu")).result(timeout=300)
    finally:
        pipeline.load_body = original
    assert seen and seen[0] != main
    direct = load_body(ReconstructOptions(device="cpu"), "cpu")
    assert np.array_equal(np.asarray(body.faces), np.asarray(direct.faces))


def test_preload_hands_a_bad_model_file_error_to_the_caller(tmp_path: Path):
    bad = tmp_path / "SMPLX_NEUTRAL.npz"
    bad.write_bytes(b"not an npz")
    future = preload_body(ReconstructOptions(device="cpu", smplx_model=bad))
    with pytest.raises(EngineError) as err:
        future.result(timeout=300)
    assert err.value.code == "body_model"
