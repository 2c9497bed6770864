"""The engine check (**Check** in the preferences) in the background, and how its report reads. stdlib only.

``python -m icon_engine doctor --json`` can take many seconds (it imports torch); :class:`DoctorRun` runs it on a
helper thread so Blender never freezes, and a timer polls it. :func:`report_lines` turns the report into
(label, text, ok) lines where a missing required package (torch, mediapipe, ...) is an error, not a version "None".
"""

from __future__ import annotations

import threading

from . import engine_proc as ep

#: Packages the engine cannot run without (all pinned in the engine's requirements.txt).
REQUIRED_PACKAGES = ("torch", "numpy", "mediapipe", "smplx", "trimesh", "anny", "scikit-image", "xatlas")


def missing_packages(report: dict) -> list[str]:
    """Required packages the report lists as not installed (doctor reports them with version None)."""
    packages = report.get("packages")
    if not isinstance(packages, dict):
        return []
    return [name for name in REQUIRED_PACKAGES if name in packages and not packages[name]]


def report_lines(report: dict) -> list[tuple[str, str, bool]]:
    """(label, text, ok) lines for the preferences: missing required packages first, as errors."""
    lines: list[tuple[str, str, bool]] = []
    missing = missing_packages(report)
    if missing:
        lines.append(("Missing", f"{', '.join(missing)} not installed: click 'Set up engine' again (repairs the "
                                 "environment), or install the engine's requirements.txt into the chosen Python",
                      False))
    device = report.get("device")
    for label, text, ok in ep.doctor_lines(report):
        if label == "Packages":
            installed = report.get("packages") or {}
            text = ", ".join(f"{k} {v}" for k, v in installed.items() if v)
        elif label == "Device" and isinstance(device, dict) and "torch" in device and not device["torch"]:
            text, ok = "PyTorch is missing: the engine cannot run", False
        lines.append((label, text, ok))
    return lines


class DoctorRun:
    """Runs the engine's doctor on a helper thread; :meth:`poll` (main thread) gives the lines when it ends."""

    def __init__(self, python: str, env: dict[str, str] | None = None, timeout: float = 180.0) -> None:
        self.report: dict | None = None
        self._thread = threading.Thread(target=self._run, args=(python, env, timeout), daemon=True)
        self._thread.start()

    def _run(self, python: str, env: dict[str, str] | None, timeout: float) -> None:
        try:
            self.report = ep.run_doctor(python, env, timeout)
        except Exception as exc:  # the thread must always leave a report
            self.report = {"problem": f"The engine check failed ({exc}).", "hint": "Run 'Set up engine' again."}

    @property
    def running(self) -> bool:
        return self._thread.is_alive() or self.report is None

    def poll(self) -> list[tuple[str, str, bool]] | None:
        """The report's lines once the doctor has finished, else None."""
        if self._thread.is_alive() or self.report is None:
            return None
        return report_lines(self.report)

    def wait(self, timeout: float = 200.0) -> list[tuple[str, str, bool]]:
        self._thread.join(timeout)
        lines = self.poll()
        if lines is None:
            raise TimeoutError("the engine check is still running")
        return lines
