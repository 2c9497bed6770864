"""``python -m icon_engine doctor``: what is installed and found, what is missing and where to get it."""

from __future__ import annotations

import importlib.metadata as md
import platform
import sys
from pathlib import Path
from typing import Any

from . import __version__
from .paths import cache_dir

_PACKAGES = ("torch", "numpy", "mediapipe", "smplx", "trimesh", "anny", "scikit-image", "xatlas", "pi-heif")


def _version(name: str) -> str | None:
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None


def _device() -> dict[str, Any]:
    try:
        import torch
    except ImportError:
        return {"torch": None, "cuda": False, "note": "PyTorch is missing: run the engine set-up again."}
    info: dict[str, Any] = {"torch": torch.__version__, "cuda": bool(torch.cuda.is_available()),
                            "threads": torch.get_num_threads()}
    if info["cuda"]:
        info["gpu"] = torch.cuda.get_device_name(0)
    else:
        info["note"] = "No CUDA device: the engine runs on the CPU (fine, slower at high quality)."
    return info


def _body(smplx_model: Path | None) -> dict[str, Any]:
    try:
        from .body_model import describe_body_model
    except ImportError as exc:  # pragma: no cover
        return {"active": None, "problem": f"body model package unavailable: {exc}"}
    official = ("The official SMPL-X model comes from https://smpl-x.is.tue.mpg.de after registration; pass "
                "SMPLX_NEUTRAL.npz (or its folder) with --smplx-model. A .pkl file needs 'python -m icon_engine body "
                "convert-pkl FILE --i-trust-this-file' first.")
    try:
        info = describe_body_model(smplx_model)
    except Exception as exc:  # doctor never fails: it reports
        return {"active": None, "problem": str(exc), "how_to_use_official": official}
    if info.get("active") != "smplx":
        info["how_to_use_official"] = official
    return info


def _icon(icon_data: Path | None) -> dict[str, Any]:
    where = ("ICON's checkpoints (icon-filter.ckpt or icon-nofilter.ckpt, and normal.ckpt) come from "
             "https://icon.is.tue.mpg.de after registration; pass their folder with --icon-data.")
    if icon_data is None:
        return {"active": False, "surface": "checkpoint-free body-guided surface (built in)", "how_to_enable": where}
    try:
        from .icon import describe_icon_data
    except ImportError as exc:  # pragma: no cover
        return {"active": False, "problem": f"ICON network package unavailable: {exc}", "how_to_enable": where}
    try:
        return describe_icon_data(icon_data)
    except Exception as exc:
        return {"active": False, "problem": str(exc), "how_to_enable": where}


def collect_report(smplx_model: Path | None = None, icon_data: Path | None = None) -> dict[str, Any]:
    """Everything doctor reports, as a JSON-serialisable dict."""
    return {
        "engine": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": {name: _version(name) for name in _PACKAGES},
        "device": _device(),
        "cache_dir": str(cache_dir()),
        "body_model": _body(smplx_model),
        "icon_data": _icon(icon_data),
    }


def configured_problems(report: dict[str, Any], smplx_model: Path | None, icon_data: Path | None) -> list[str]:
    """What is wrong with the model files the user configured (empty when all usable); doctor then exits 5."""
    problems = []
    body = report["body_model"]
    if smplx_model is not None and (not body.get("ok") or body.get("problem")):
        problems.append(f"--smplx-model {smplx_model} is not usable: {body.get('problem') or 'unknown problem'}")
    icon = report["icon_data"]
    if icon_data is not None and not icon.get("usable"):
        detail = icon.get("problem") or icon.get("message") or "unknown problem"
        bad = [f"{f['file']}: {f.get('error') or f['status']}" for f in (icon.get("files") or {}).values()
               if f.get("status") == "invalid"]
        problems.append(f"--icon-data {icon_data} is not usable: {detail}" + (f" ({'; '.join(bad)})" if bad else ""))
    return problems


def format_report(report: dict[str, Any]) -> str:
    """A readable multi-line rendering of :func:`collect_report`'s dict."""
    lines = [f"ICON for Blender engine {report['engine']} — Python {report['python']} on {report['platform']}"]
    lines.append("Packages:")
    for name, version in report["packages"].items():
        lines.append(f"  {name:<14} {version or 'MISSING — run the set-up command in README.md'}")
    dev = report["device"]
    lines.append(f"Device: torch {dev.get('torch')}, CUDA {'yes: ' + dev['gpu'] if dev.get('cuda') else 'no'}")
    if dev.get("note"):
        lines.append(f"  {dev['note']}")
    lines.append(f"Cache folder: {report['cache_dir']}")
    lines.append("Body model:")
    lines += [f"  {k}: {v}" for k, v in report["body_model"].items()]
    lines.append("ICON networks:")
    lines += [f"  {k}: {v}" for k, v in report["icon_data"].items()]
    return "\n".join(lines)
