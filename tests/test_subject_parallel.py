"""The photos of a subject fitted side by side (icon_engine.subject._fit_photos, wave 32): the same fits, focal
lengths, warnings, statuses and first error as one photo at a time (stand-ins for the detection and the fit)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from icon_engine.errors import EngineError
from icon_engine.subject import FIRST_PHOTO_FRAMING, SubjectInput, _fit_photos
from icon_engine.threads import WORKERS_ENV

#: Per stand-in photo: EXIF focal (35 mm) or None, whether a person is found, keypoint error of its fit (px).
PHOTOS = {"a.png": (None, True, 80.0),  # fitted badly: dropped, so not the set's framing reference
          "b.png": (None, True, 2.0),  # the first good fit at its framing prior: the reference
          "c.png": (28.0, True, 3.0),  # EXIF: its own focal, started at once
          "d.png": (None, False, 0.0),  # nobody: skipped
          "e.png": (None, True, 4.0)}  # takes b's framing focal


def stand_ins(monkeypatch: pytest.MonkeyPatch, fail: dict[str, str] | None = None) -> dict[str, Any]:
    """Detection and fit stand-ins recording the fits' focal lengths and threads and the detections' threads."""
    import icon_engine.fit
    import icon_engine.image_io
    import icon_engine.person

    fail = fail or {}
    seen: dict[str, Any] = {"focal": {}, "fit_threads": set(), "detect_threads": set()}

    def load_photo(path: Path) -> Any:
        return SimpleNamespace(label=Path(path).name, size=(600, 900), focal_35mm=PHOTOS[Path(path).name][0])

    def detect_person(photo: Any, **_: Any) -> Any:
        seen["detect_threads"].add(threading.current_thread().name)
        if fail.get(photo.label) == "detect":
            raise EngineError("bad_image", f"{photo.label} cannot be read.", "")
        if not PHOTOS[photo.label][1]:
            raise EngineError("no_person", "No person was found in the photo.", "")
        return SimpleNamespace(label=photo.label, mask=np.zeros((900, 600), bool))

    def fit_body(observation: Any, body_model: Any, photo: Any, focal_px: float | None = None, **_: Any) -> Any:
        seen["fit_threads"].add(threading.current_thread().name)
        seen["focal"][photo.label] = focal_px
        time.sleep(0.05)  # long enough for the detections to go on beside it
        if fail.get(photo.label) == "fit":
            raise EngineError("no_person", f"{photo.label}: no usable body landmarks.", "")
        source = "given" if focal_px else "exif" if photo.focal_35mm else "framing prior"
        focal = focal_px or 700.0 + 10.0 * ord(photo.label[0])
        metrics = {"keypoint_error_px": PHOTOS[photo.label][2], "silhouette_iou": 0.8, "focal_source": source}
        return SimpleNamespace(metrics=metrics, camera=SimpleNamespace(K=np.diag([focal, focal, 1.0])),
                               warnings=[f"{photo.label} fitted"])

    monkeypatch.setattr(icon_engine.image_io, "load_photo", load_photo)
    monkeypatch.setattr(icon_engine.person, "detect_person", detect_person)
    monkeypatch.setattr(icon_engine.fit, "fit_body", fit_body)
    return seen


def run(monkeypatch: pytest.MonkeyPatch, workers: str, fail: dict[str, str] | None = None,
        device: str = "cpu") -> tuple[Any, ...]:
    monkeypatch.setenv(WORKERS_ENV, workers)
    seen = stand_ins(monkeypatch, fail)
    inputs = [SubjectInput(Path(name), name, Path(name)) for name in PHOTOS]
    messages: list[str] = []
    views, warnings, report = _fit_photos(inputs, None, "standard", device, 0,
                                          lambda i, n, text: messages.append(text), None)
    summary = [(v.input.label, v.weight, v.fit.metrics, v.warnings) for v in views]
    return summary, warnings, report, messages, seen


def test_photos_fitted_side_by_side_match_one_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    *serial, seen1 = run(monkeypatch, "1")
    *parallel, seen2 = run(monkeypatch, "2")
    assert parallel[:3] == serial[:3]
    assert seen2["focal"] == seen1["focal"]
    summary, warnings, report, messages = parallel
    # while the fits finish, the last message again (Cancel is checked): never back to an earlier photo
    assert serial[3] == [f"Fitting {name}" for name in PHOTOS]
    assert messages[:len(PHOTOS)] == serial[3] and set(messages[len(PHOTOS):]) <= {"Fitting e.png"}
    assert [label for label, *_ in summary] == ["b.png", "c.png", "e.png"]
    assert warnings[0].startswith("a.png: dropped") and warnings[1].startswith("d.png: skipped")
    assert [e["status"] for e in report["inputs"]] == ["poor_fit", "used", "used", "no_person", "used"]
    # a is no reference (dropped), b is its own (framing prior), c has EXIF, e takes b's framing focal
    assert seen2["focal"]["a.png"] is None and seen2["focal"]["b.png"] is None and seen2["focal"]["c.png"] is None
    assert seen2["focal"]["e.png"] == pytest.approx(700.0 + 10.0 * ord("b"))
    assert summary[2][2]["focal_source"] == FIRST_PHOTO_FRAMING
    assert seen1["fit_threads"] == {"MainThread"}  # one worker: inline, as before
    assert any(name.startswith("icon-fit") for name in seen2["fit_threads"])
    assert seen2["detect_threads"] == {"MainThread"}  # detections stay one at a time on the caller's thread
    *on_gpu, seen3 = run(monkeypatch, "2", device="cuda")  # an accelerator: one at a time, as before
    assert on_gpu == serial and seen3["fit_threads"] == {"MainThread"}


@pytest.mark.parametrize("workers", ["1", "2"])
def test_the_first_photos_failed_fit_is_the_error_raised(monkeypatch: pytest.MonkeyPatch, workers: str) -> None:
    """a's fit fails and c's detection fails: one photo at a time never reached c, so a's error is raised."""
    with pytest.raises(EngineError, match="a.png: no usable body landmarks"):
        run(monkeypatch, workers, {"a.png": "fit", "c.png": "detect"})
    with pytest.raises(EngineError, match="c.png cannot be read"):
        run(monkeypatch, workers, {"c.png": "detect", "e.png": "fit"})
    with pytest.raises(EngineError, match="b.png: no usable"):
        run(monkeypatch, workers, {"b.png": "fit", "e.png": "fit"})


@pytest.mark.parametrize("workers", ["1", "2"])
def test_clothed_surfaces_in_order_and_the_first_error(monkeypatch: pytest.MonkeyPatch, workers: str) -> None:
    """The surfaces come back in the views' order whatever finishes first, the progress names every photo in order,
    the first failed one's error is raised; ICON's surface (``icon_data``) is built one at a time."""
    import icon_engine.pipeline
    from icon_engine.subject import clothed_surfaces

    monkeypatch.setenv(WORKERS_ENV, workers)
    threads: set[str] = set()

    def build(fit: Any, observation: Any, photo: Any, *_: Any) -> Any:
        threads.add(threading.current_thread().name)
        time.sleep(0.05 * (4 - fit))  # the first photos take longest
        if photo == "bad":
            raise EngineError("internal", f"surface {fit} failed", "")
        return fit

    monkeypatch.setattr(icon_engine.pipeline, "build_clothed_surface", build)
    messages: list[str] = []
    reporter = SimpleNamespace(update=lambda fraction, text: messages.append(text))

    def views(bad: tuple[int, ...] = ()) -> list[Any]:
        return [SimpleNamespace(fit=k, observation=None, photo="bad" if k in bad else "ok",
                                input=SimpleNamespace(label=f"p{k}")) for k in range(4)]

    options = SimpleNamespace(icon_data=None)
    assert clothed_surfaces(views(), options, "cpu", reporter, None) == [0, 1, 2, 3]
    assert messages == [f"Clothed surface of p{k} ({k + 1}/4)" for k in range(4)]
    assert (threads == {"MainThread"}) == (workers == "1")
    with pytest.raises(EngineError, match="surface 1 failed"):
        clothed_surfaces(views((1, 2)), options, "cpu", reporter, None)
    for one_at_a_time, device in ((SimpleNamespace(icon_data="icon"), "cpu"), (options, "cuda")):
        threads.clear()
        assert clothed_surfaces(views(), one_at_a_time, device, reporter, None) == [0, 1, 2, 3]
        assert threads == {"MainThread"}


def test_a_cancel_while_the_fits_finish_stops_them(monkeypatch: pytest.MonkeyPatch) -> None:
    """A cancel (the progress callback raising) while the fits run side by side propagates once the running fits
    have ended; no fit thread is left behind."""
    monkeypatch.setenv(WORKERS_ENV, "2")
    stand_ins(monkeypatch)
    inputs = [SubjectInput(Path(name), name, Path(name)) for name in PHOTOS]
    calls: list[str] = []

    def progress(i: int, n: int, text: str) -> None:
        calls.append(text)
        if len(calls) > len(PHOTOS):
            raise RuntimeError("cancelled")

    with pytest.raises(RuntimeError, match="cancelled"):
        _fit_photos(inputs, None, "standard", "cpu", 0, progress, None)
    assert not [t for t in threading.enumerate() if t.name.startswith("icon-fit")]
