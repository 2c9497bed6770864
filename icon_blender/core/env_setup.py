"""Engine environment set-up: a virtual environment with the engine's pinned requirements. stdlib only.

Where it lives (:func:`default_env_dir`): a short per-user data folder outside Blender's folders, so it is shared
by every Blender version, survives uninstalling/reinstalling the add-on, and keeps Windows' 260-character path
limit away from torch's deep include paths (``%LOCALAPPDATA%\\ICONBlender\\engine``). A stamp file written when the
last step succeeds (:func:`write_stamp`) says the set-up finished: an environment without it was interrupted and
:func:`env_status` reports it ("incomplete") so the set-up runs again and repairs it. The engine source is shipped
in the add-on and reached through PYTHONPATH of the engine process, so the set-up installs only third-party
packages. torch comes from PyTorch's own index: the CPU build (small, no CUDA libraries) or the CUDA build the
user chose (never offered on macOS, where PyTorch has no CUDA builds); the other pins come from the engine's
``requirements.txt``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

TORCH_INDEX = {
    "cpu": "https://download.pytorch.org/whl/cpu",
    "cuda": "https://download.pytorch.org/whl/cu126",
}
#: Python versions the engine's pins support (mediapipe 0.10.21 has no Python 3.13 wheels).
ENGINE_PYTHONS = ((3, 11), (3, 12))
#: File in the environment that says the set-up finished (JSON: requirements hash, build, Python, time).
STAMP_NAME = "icon-engine-ready.json"
#: Longest environment folder path accepted on Windows: torch's deepest installed file adds ~150 characters.
MAX_WINDOWS_ENV_PATH = 100


def compute_choices(platform: str | None = None) -> tuple[str, ...]:
    """PyTorch builds the set-up offers on ``platform`` (``sys.platform``): no CUDA on macOS."""
    platform = sys.platform if platform is None else platform
    return ("cpu",) if platform == "darwin" else ("cpu", "cuda")


def default_env_dir(platform: str | None = None, environ: dict[str, str] | None = None,
                    home: str | Path | None = None) -> Path:
    """The engine environment's folder: per user, outside Blender's folders, short (see the module docstring).

    Windows ``%LOCALAPPDATA%\\ICONBlender\\engine``; macOS ``~/Library/Application Support/ICONBlender/engine``;
    others ``$XDG_DATA_HOME/icon-blender/engine`` (default ``~/.local/share``).
    """
    platform = sys.platform if platform is None else platform
    environ = os.environ if environ is None else environ
    home = Path(home) if home is not None else Path.home()
    if platform == "win32":
        base = environ.get("LOCALAPPDATA") or str(home / "AppData" / "Local")
        return Path(base) / "ICONBlender" / "engine"
    if platform == "darwin":
        return home / "Library" / "Application Support" / "ICONBlender" / "engine"
    return Path(environ.get("XDG_DATA_HOME") or home / ".local" / "share") / "icon-blender" / "engine"


def check_env_dir(env_dir: str | Path, windows: bool | None = None) -> None:
    """Raise ValueError with a fix when ``env_dir`` is too long for torch's files under Windows' path limit."""
    windows = sys.platform == "win32" if windows is None else windows
    if windows and len(str(env_dir)) > MAX_WINDOWS_ENV_PATH:
        raise ValueError(f"The engine folder {env_dir} is {len(str(env_dir))} characters long; PyTorch's files would "
                         f"pass Windows' 260-character path limit. Choose a folder of at most "
                         f"{MAX_WINDOWS_ENV_PATH} characters (e.g. C:\\ICONBlender) in the add-on preferences.")


def requirements_hash(requirements: str | Path) -> str:
    """sha256 of the requirements file (the stamp names the pins it was set up with)."""
    return hashlib.sha256(Path(requirements).read_bytes()).hexdigest()


def stamp_path(venv_dir: str | Path) -> Path:
    return Path(venv_dir) / STAMP_NAME


def write_stamp(venv_dir: str | Path, requirements: str | Path, compute: str) -> Path:
    """Mark the environment as set up (written atomically after the last step succeeded)."""
    path = stamp_path(venv_dir)
    data = {"requirements_sha256": requirements_hash(requirements), "compute": compute,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
    tmp.replace(path)
    return path


def read_stamp(venv_dir: str | Path) -> dict | None:
    """The stamp's content, or None when it is missing or unreadable."""
    try:
        data = json.loads(stamp_path(venv_dir).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


#: :func:`env_status` results.
ENV_MISSING, ENV_INCOMPLETE, ENV_OUTDATED, ENV_READY = "missing", "incomplete", "outdated", "ready"


def env_status(venv_dir: str | Path, requirements: str | Path | None = None, windows: bool | None = None) -> str:
    """State of the engine environment: missing (never set up), incomplete (a set-up was interrupted or the
    interpreter is gone), outdated (set up with other pins than ``requirements``), or ready."""
    venv_dir = Path(venv_dir)
    python = venv_python(venv_dir, windows)
    if not venv_dir.exists():
        return ENV_MISSING
    stamp = read_stamp(venv_dir)
    if stamp is None or not python.is_file():
        return ENV_INCOMPLETE
    if requirements is not None and stamp.get("requirements_sha256") != requirements_hash(requirements):
        return ENV_OUTDATED
    return ENV_READY


def setup_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment of the set-up's processes: no user site-packages, UTF-8, none of Blender's Python variables."""
    env = dict(os.environ if base is None else base)
    for key in ("PYTHONHOME", "PYTHONPATH", "PYTHONSTARTUP"):
        env.pop(key, None)
    env["PYTHONNOUSERSITE"] = "1"
    env["PYTHONUTF8"] = "1"
    return env


def venv_python(venv_dir: str | Path, windows: bool | None = None) -> Path:
    """Path of the interpreter inside a virtual environment."""
    windows = sys.platform == "win32" if windows is None else windows
    venv_dir = Path(venv_dir)
    return venv_dir / "Scripts" / "python.exe" if windows else venv_dir / "bin" / "python"


def read_pins(requirements: str | Path) -> dict[str, str]:
    """``name → version`` for every ``name==version`` line of a requirements file (comments ignored)."""
    pins: dict[str, str] = {}
    for raw in Path(requirements).read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)\s*==\s*([A-Za-z0-9_.+\-]+)", line)
        if m:
            pins[m.group(1).lower()] = m.group(2)
    return pins


@dataclass
class SetupStep:
    """One command of the set-up with a label for the progress display."""

    label: str
    argv: list[str]


def setup_steps(base_python: str, venv_dir: str | Path, requirements: str | Path, compute: str = "cpu",
                windows: bool | None = None, platform: str | None = None) -> list[SetupStep]:
    """Commands that create the engine environment and install the pinned requirements.

    Args:
        base_python: an interpreter of a supported version (:data:`ENGINE_PYTHONS`) used to create the venv.
        venv_dir: where the environment goes (under the extension's user folder).
        requirements: the engine's requirements.txt (exact pins).
        compute: "cpu" or "cuda" — which torch build to install (:func:`compute_choices` of ``platform``).
        windows: venv layout (``Scripts\\python.exe``); default: this machine's.
    """
    if compute not in TORCH_INDEX:
        raise ValueError(f"compute must be 'cpu' or 'cuda', got {compute!r}")
    if compute not in compute_choices(platform):
        raise ValueError("PyTorch has no CUDA build for macOS: choose the CPU build (it uses Apple's GPU via MPS).")
    pins = read_pins(requirements)
    if "torch" not in pins:
        raise ValueError(f"{requirements} pins no torch version")
    python = venv_python(venv_dir, windows)
    py = str(python)
    pip = [py, "-m", "pip", "install", "--disable-pip-version-check", "--no-input"]
    # an interrupted creation leaves a folder without a working interpreter: start that one afresh
    create = [str(base_python), "-m", "venv"] + (["--clear"] if Path(venv_dir).exists() and not python.is_file()
                                                 else []) + [str(venv_dir)]
    return [
        SetupStep("Creating the environment", create),
        SetupStep(f"Installing torch {pins['torch']} ({compute.upper()})",
                  pip + [f"torch=={pins['torch']}", "--index-url", TORCH_INDEX[compute]]),
        SetupStep("Installing the engine's requirements", pip + ["-r", str(requirements)]),
    ]


def python_version_command(python: str) -> list[str]:
    return [str(python), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"]


def check_base_python(python: str, timeout: float = 30.0) -> tuple[int, int]:
    """The (major, minor) version of ``python``; raises ValueError with a fix when it cannot host the engine."""
    try:
        out = subprocess.run(python_version_command(python), capture_output=True, text=True, timeout=timeout,
                             check=True).stdout.strip()
        major, minor = (int(x) for x in out.split("."))
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        raise ValueError(f"Could not run {python} ({exc}). Point the preferences to a Python 3.11 executable.") \
            from exc
    if (major, minor) not in ENGINE_PYTHONS:
        raise ValueError(
            f"{python} is Python {major}.{minor}; the engine needs Python 3.11 or 3.12 (mediapipe has no wheels "
            "for newer versions). Install Python 3.11 and set it as the base Python in the preferences."
        )
    return major, minor


@dataclass
class SetupRunner:
    """Runs :class:`SetupStep` commands one after another, output appended to ``log_path``; poll from a timer."""

    steps: list[SetupStep]
    log_path: Path
    env: dict[str, str] | None = None
    #: (venv folder, requirements, compute): the stamp is removed at the start and written when all steps pass.
    stamp: tuple[Path, Path, str] | None = None
    index: int = 0
    state: str = "queued"  # queued | running | done | failed | cancelled
    error: str = ""
    history: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._proc: subprocess.Popen | None = None
        self._log = None

    @property
    def fraction(self) -> float:
        return 1.0 if self.state == "done" else self.index / max(1, len(self.steps))

    @property
    def label(self) -> str:
        return self.steps[self.index].label if self.index < len(self.steps) else ""

    def status_line(self, max_bytes: int = 8192) -> str:
        """The latest pip activity in the log ("Downloading torch-…", "Installing collected packages: …")."""
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(0, 2)
                fh.seek(max(0, fh.tell() - max_bytes))
                tail = fh.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return ""
        for line in reversed(tail):
            text = line.strip()
            if text.startswith(("Collecting", "Downloading", "Installing", "Building", "Successfully", "Using cached")):
                return text[:120]
        return ""

    def start(self) -> None:
        if self.stamp is not None:
            stamp_path(self.stamp[0]).unlink(missing_ok=True)  # an interrupted run stays detectable
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "a", encoding="utf-8", errors="replace")  # noqa: SIM115
        self.state = "running"
        self._launch()

    def _launch(self) -> None:
        step = self.steps[self.index]
        assert self._log is not None
        self._log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {step.label}: {' '.join(step.argv)}\n")
        self._log.flush()
        try:
            self._proc = subprocess.Popen(step.argv, stdout=self._log, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, env=self.env)
        except OSError as exc:
            self._end("failed", f"{step.label}: could not run {step.argv[0]} ({exc})")

    def poll(self) -> str:
        """Advance; returns the state."""
        if self.state != "running" or self._proc is None:
            return self.state
        rc = self._proc.poll()
        if rc is None:
            return self.state
        step = self.steps[self.index]
        self.history.append(f"{step.label}: exit {rc}")
        if rc != 0:
            self._end("failed", f"{step.label} failed (exit status {rc}); see the log {self.log_path}")
        elif self.index + 1 < len(self.steps):
            self.index += 1
            self._launch()
        else:
            if self.stamp is not None:
                try:
                    write_stamp(*self.stamp)
                except OSError as exc:
                    self._end("failed", f"could not write the set-up stamp ({exc})")
                    return self.state
            self._end("done", "")
        return self.state

    def cancel(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(timeout=10)
        self._end("cancelled", "cancelled")

    def wait(self, timeout: float = 600.0) -> str:
        end = time.monotonic() + timeout
        while self.poll() == "running":
            if time.monotonic() > end:
                raise TimeoutError("set-up still running")
            time.sleep(0.05)
        return self.state

    def _end(self, state: str, error: str) -> None:
        self.state, self.error = state, error
        if self._log is not None:
            self._log.write(f"=== {state} {error}\n")
            self._log.close()
            self._log = None
