"""The body fit on any device without a GPU to test on: every tensor it makes names its device, and its
optimisation loops (the body stages and the hands) read nothing back from the device and upload nothing per step.

The recorder watches the real fit on the sample photo (real detection, real open body) through torch's two hooks:
a function mode sees factory calls (``torch.zeros`` …) and host reads (``.item()``, ``.numpy()``, ``.cpu()``,
``int(t)`` …) made from engine code; a dispatch mode sees every read of a value to the host
(``aten._local_scalar_dense``) and every tensor made from host data (``aten.lift_fresh``: ``torch.tensor(list)``,
indexing with a list), which on a GPU each wait for the device. Events between two steps of the same optimiser
are per-iteration. The silhouette's nearest-vertex search takes its device path (a distance matrix; on the CPU
it is a k-d tree on the host by design). The CUDA run itself is in tests/test_devices.py (skipped here).
"""

from __future__ import annotations

import dataclasses
import itertools
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from icon_engine.options import PRESETS, FitPreset

ENGINE = str(Path(__file__).resolve().parents[1] / "icon_engine")
TORCH = str(Path(torch.__file__).resolve().parent)

#: Host reads (function level; on the CPU ``.numpy()``/``.cpu()`` never reach the dispatcher).
READS = {torch.Tensor.item, torch.Tensor.tolist, torch.Tensor.numpy, torch.Tensor.cpu, torch.Tensor.__bool__,
         torch.Tensor.__int__, torch.Tensor.__float__, torch.Tensor.__index__}
#: Factories that land on torch's default device unless given one.
FACTORIES = {torch.tensor, torch.as_tensor, torch.zeros, torch.ones, torch.full, torch.empty, torch.eye, torch.arange,
             torch.linspace, torch.rand, torch.randn}
#: Dispatcher ops that cross between host and device.
CROSSING = {"aten._local_scalar_dense.default": "read", "aten.lift_fresh.default": "upload"}


def _engine_site() -> str | None:
    """``file:line`` of the innermost engine frame calling into torch (None when torch was not called from engine
    code, e.g. from this test)."""
    frame = sys._getframe(2)
    while frame is not None and (frame.f_code.co_filename.startswith(TORCH) or "torch" in frame.f_code.co_filename
                                 and "/site-packages/" in frame.f_code.co_filename):
        frame = frame.f_back
    if frame is None or not frame.f_code.co_filename.startswith(ENGINE):
        return None
    return f"{Path(frame.f_code.co_filename).relative_to(ENGINE)}:{frame.f_lineno}"


class _Recorder:
    """Both modes, writing ``(kind, what, site)`` events and ``("step", optimiser id, "")`` markers to ``events``."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []
        recorder = self

        class Functions(TorchFunctionMode):
            def __torch_function__(self, func, types, args=(), kwargs=None):
                kwargs = kwargs or {}
                site = _engine_site()
                if site is not None:
                    if func in READS:
                        recorder.events.append(("read", func.__name__, site))
                    elif func in FACTORIES and kwargs.get("device") is None and not (
                            func is torch.as_tensor and isinstance(args[0], torch.Tensor)):
                        recorder.events.append(("no device", func.__name__, site))
                return func(*args, **kwargs)

        class Dispatch(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                kind = CROSSING.get(str(func))
                if kind is not None:
                    recorder.events.append((kind, str(func), _engine_site() or "?"))
                return func(*args, **(kwargs or {}))

        self.modes = (Functions(), Dispatch())

    def __enter__(self) -> _Recorder:
        for mode in self.modes:
            mode.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        for mode in reversed(self.modes):
            mode.__exit__(*exc)

    def per_iteration(self) -> list[tuple[str, str, str]]:
        """Events between two consecutive steps of the same optimiser (inside one loop)."""
        out, pending, last = [], [], None
        for event in self.events:
            if event[0] == "step":
                if event[1] == last:
                    out += pending
                pending, last = [], event[1]
            else:
                pending.append(event)
        return out


@pytest.fixture(scope="module")
def sample_case():
    from icon_engine.body_model import load_body_model
    from icon_engine.image_io import load_photo
    from icon_engine.person import detect_person
    from icon_engine.sample import sample_photo_path

    photo = load_photo(sample_photo_path())
    observation = detect_person(photo)
    assert observation.hands, "the sample's hands are detected (the hand loop is part of the check)"
    return photo, observation, load_body_model()


def _recorded_fit(monkeypatch, case, height_m=None) -> tuple[_Recorder, object]:
    from icon_engine.fit import core
    from icon_engine.geometry import device

    photo, observation, body = case
    monkeypatch.setattr(device, "searches_on_host", lambda _device: False)  # the distance matrix, as on a GPU
    monkeypatch.setitem(PRESETS, "tiny", dataclasses.replace(PRESETS["preview"], fit=FitPreset(3, 3, ((64, 3),), 300)))
    recorder = _Recorder()
    step = core._Adam.step

    serials = itertools.count()

    def marked(self, lr):
        # a serial, not id(self): a freed optimiser's address is reused by the next one, which would make the
        # setup between two loops look like one loop's iterations
        if not hasattr(self, "_recorder_serial"):
            self._recorder_serial = next(serials)
        recorder.events.append(("step", str(self._recorder_serial), ""))
        return step(self, lr)

    monkeypatch.setattr(core._Adam, "step", marked)
    with recorder:
        fit = core.fit_body(observation, body, photo, quality="tiny", device="cpu", height_m=height_m)
    return recorder, fit


@pytest.mark.parametrize("height_m", [None, 1.75])  # with a height the betas are projected at every step
def test_fit_loops_read_nothing_back_and_upload_nothing(monkeypatch, sample_case, height_m):
    recorder, fit = _recorded_fit(monkeypatch, sample_case, height_m)
    steps = sum(1 for e in recorder.events if e[0] == "step")
    assert steps >= 3 + 3 + 3 + 20, "the body stages and the hand loops ran under the recorder"
    assert fit.metrics.get("hand_keypoint_error_px"), "the hands were fitted (their loops are checked too)"
    assert np.isfinite(fit.vertices).all()
    assert recorder.per_iteration() == []


def test_fit_makes_every_tensor_on_its_device(monkeypatch, sample_case):
    """No factory call from the fit's code lands on torch's default device (what the removed ``torch.device``
    wrapper used to catch). Scope: the fit package and the torch skinning it runs on."""
    recorder, _ = _recorded_fit(monkeypatch, sample_case)
    fit_code = ("fit/", "geometry/torch_skinning.py", "geometry/device.py")
    stray = sorted({e[2] for e in recorder.events if e[0] == "no device" and e[2].startswith(fit_code)})
    assert stray == []


def test_the_recorder_sees_a_per_step_host_read(monkeypatch, sample_case):
    """The check can fail: the old stature gradient (``int(argmax)`` each step) is caught."""
    from icon_engine.fit import stature

    def old_gradient(self, betas):
        b = stature._pad(betas, self.top_dirs.shape[0]).detach()
        i = int(torch.argmax(self.top0 + b @ self.top_dirs))
        k = int(torch.argmin(self.bottom0 + b @ self.bottom_dirs))
        return self.top_dirs[:, i] - self.bottom_dirs[:, k]

    monkeypatch.setattr(stature.StatureModel, "gradient", old_gradient)
    recorder, _ = _recorded_fit(monkeypatch, sample_case, height_m=1.75)
    reads = [e for e in recorder.per_iteration() if e[0] == "read"]
    assert reads and any("test_device_fit.py" in e[2] or "fit/stature.py" in e[2] or e[2] == "?" for e in reads)


def test_stature_gradient_picks_the_same_vertices_as_argmax(sample_case):
    from icon_engine.fit.stature import StatureModel

    model = StatureModel.from_body_model(sample_case[2])
    rng = np.random.default_rng(0)
    for _ in range(20):
        betas = torch.tensor(rng.normal(0.0, 1.5, model.top_dirs.shape[0]), dtype=torch.float32)
        i = int(torch.argmax(model.top0 + betas @ model.top_dirs))
        k = int(torch.argmin(model.bottom0 + betas @ model.bottom_dirs))
        assert torch.equal(model.gradient(betas), model.top_dirs[:, i] - model.bottom_dirs[:, k])
