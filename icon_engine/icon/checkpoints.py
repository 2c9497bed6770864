"""Safe loading and validation of ICON's official checkpoints; locating them in the user's folder.

Files (from ``icon_data.zip`` after registering at https://icon.is.tue.mpg.de, unpacked to ``data/ckpt``):
``normal.ckpt`` (the two normal generators, ≈1.46 GB), ``icon-filter.ckpt`` (hourglass filter + MLP, ≈30 MB) and
``icon-nofilter.ckpt`` (MLP only, ≈0.7 MB). They are PyTorch Lightning checkpoints: a dict whose ``state_dict``
holds the tensors; a bare state_dict is accepted too.

Safety: files are read with ``torch.load(weights_only=True)``, which never runs code from the file. Lightning
stores hyper-parameters as pickled objects of foreign classes (e.g. a yacs config); those classes are replaced by
inert stand-ins of our own (:func:`_inert_globals`) so the tensors can be read without importing or running
anything from the file. Every key and shape is then checked against the official layout
(``checkpoint_layout.json``) and anything else is refused with ``EngineError("icon_data", ...)``.
"""

from __future__ import annotations

import json
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import EngineError
from .networks import ImplicitNet, NormalNet

LAYOUT_PATH = Path(__file__).with_name("checkpoint_layout.json")

#: Checkpoint kinds and their file names.
FILE_NAMES: dict[str, str] = {
    "normal": "normal.ckpt",
    "icon-filter": "icon-filter.ckpt",
    "icon-nofilter": "icon-nofilter.ckpt",
}
#: Implicit-network variants, preferred first (icon-filter is ICON's default config).
VARIANTS: tuple[str, ...] = ("icon-filter", "icon-nofilter")
#: Key prefixes a checkpoint may carry that the networks don't use (a GAN discriminator from training).
IGNORED_PREFIXES: tuple[str, ...] = ("netG.netD.",)
#: Sub-folders searched below the folder the user names, in order.
SEARCH_SUBDIRS: tuple[str, ...] = ("", "ckpt", "data/ckpt", "ICON/data/ckpt")

HINT = (
    "ICON's checkpoints come from icon_data.zip after registering at https://icon.is.tue.mpg.de "
    "(ICON's fetch_data.sh); point --icon-data at the folder holding icon-filter.ckpt (or icon-nofilter.ckpt) "
    "and normal.ckpt (ICON's data/ckpt)."
)


def _error(message: str) -> EngineError:
    return EngineError("icon_data", message, HINT)


# ----------------------------------------------------------------------------------------------------------------
# Layout
# ----------------------------------------------------------------------------------------------------------------


def expected_layout(kind: str, ngf: int = 64) -> dict[str, list[int]]:
    """Key → shape of the official checkpoint ``kind`` ("normal", "icon-filter", "icon-nofilter").

    ``ngf`` != 64 (tests only) derives the normal layout from the network built on the meta device."""
    if kind not in FILE_NAMES:
        raise ValueError(f"unknown checkpoint kind {kind!r}")
    if kind == "normal" and ngf != 64:
        with torch.device("meta"):
            net = build_network(kind, ngf)
        return {"netG." + k: list(v.shape) for k, v in net.state_dict().items()}
    return json.loads(LAYOUT_PATH.read_text())[kind]


def build_network(kind: str, ngf: int = 64) -> torch.nn.Module:
    """A fresh network for checkpoint ``kind`` (random weights). ``ngf`` < 64 only for tests."""
    if kind == "normal":
        return NormalNet(ngf=ngf)
    if kind in VARIANTS:
        return ImplicitNet(use_filter=kind == "icon-filter")
    raise ValueError(f"unknown checkpoint kind {kind!r}")


# ----------------------------------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------------------------------


def _inert_class(qualified: str) -> type:
    """A stand-in for a foreign class named in a checkpoint: stores what it is given, runs nothing."""
    module, _, name = qualified.rpartition(".")

    def init(self: dict, *args: Any, **kwargs: Any) -> None:
        dict.__init__(self)

    def setstate(self: dict, state: Any) -> None:
        self.__dict__["_state"] = state

    return type(name, (dict,), {"__module__": module, "__qualname__": name, "__init__": init,
                                "__setstate__": setstate})


def _inert_globals(path: Path) -> list[type]:
    """Stand-ins for every non-allowlisted global the (zip) checkpoint names; [] for legacy files."""
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    except Exception:  # legacy (non-zip) format or unreadable: let torch.load report it
        return []
    return [_inert_class(n) for n in names if "." in n]


def load_failure(path: Path, exc: BaseException, is_zip: bool) -> EngineError:
    """Say in plain words why ``torch.load(weights_only=True)`` refused ``path``.

    PyTorch's own text is not shown: it suggests ``weights_only=False``, which would run code from the file."""
    text = str(exc)
    blocked = re.search(r"GLOBAL ([\w.]+)", text) or re.search(r"global ['`]?([\w.]+)", text, re.I)
    if blocked and "Unsupported" in text:
        return _error(f"{path} was refused: it asks to load the Python object '{blocked.group(1)}', which a file of "
                      "network weights never needs (loading it could run code from the file).")
    if is_zip or isinstance(exc, EOFError) or any(w in text for w in ("central directory", "zip archive", "EOF",
                                                                        "truncated")):
        return _error(f"{path} is not a readable PyTorch checkpoint: the file is truncated or corrupt.")
    return _error(f"{path} is not a PyTorch checkpoint (it does not hold saved network weights).")


def read_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint file (Lightning ``state_dict`` or a bare state_dict), read safely on the CPU.

    Raises ``EngineError("icon_data")`` for a missing, truncated or non-PyTorch file, or one without tensors."""
    path = Path(path)
    if not path.is_file():
        raise _error(f"ICON checkpoint {path} does not exist.")
    is_zip = zipfile.is_zipfile(path)
    inert = _inert_globals(path)
    obj = None
    for mmap in ((True, False) if is_zip else (False,)):  # files from old torch versions may refuse mmap
        try:
            with torch.serialization.safe_globals(inert):
                obj = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
            break
        except Exception as exc:  # noqa: BLE001 - every failure here is a bad file
            if mmap:
                continue
            raise load_failure(path, exc, is_zip) from exc
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not any(isinstance(v, torch.Tensor) for v in obj.values()):
        raise _error(f"{path} holds no network weights (no state_dict of tensors).")
    return {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def _identify(state: dict[str, torch.Tensor]) -> str | None:
    """A readable name for what a wrong file probably is, judged by its keys and shapes."""
    keys = set(state)
    if {"v_template", "shapedirs"} <= keys or "J_regressor" in keys:
        verts = state.get("v_template")
        n = int(verts.shape[0]) if verts is not None and verts.dim() == 2 else -1
        model = {6890: "an SMPL body model", 10475: "an SMPL-X body model"}.get(n, "a body model")
        return f"{model}, not an ICON network checkpoint"
    conv1 = state.get("netG.F_filter.conv1.weight")
    if conv1 is not None and conv1.dim() == 4 and conv1.shape[1] == 9:
        return "PIFu/PaMIR's checkpoint (pifu.ckpt or pamir.ckpt: a filter over image + normals)"
    if any(k.startswith("netG.netF.") for k in keys):
        return "the normal networks (normal.ckpt)"
    if any(k.startswith("netG.F_filter.") for k in keys):
        return "icon-filter.ckpt"
    first = state.get("netG.if_regressor.filters.0.weight")
    if first is not None and first.dim() == 3:
        return {10: "icon-nofilter.ckpt", 13: "an implicit MLP with 13 inputs"}.get(
            int(first.shape[1]), f"an implicit MLP with {int(first.shape[1])} inputs")
    if any(k.startswith("netG.") for k in keys):
        return "a different ICON/ECON network"
    return None


def check_state(state: dict[str, torch.Tensor], kind: str, path: str | Path, ngf: int = 64) -> dict[str, torch.Tensor]:
    """Check ``state`` against the official layout of ``kind``; returns it with ignorable keys dropped.

    Refuses a missing key, an unexpected key, a wrong shape, a non-float tensor or one holding NaN or infinity,
    naming the file."""
    expected = expected_layout(kind, ngf)
    state = {k: v for k, v in state.items() if not k.startswith(IGNORED_PREFIXES)}
    missing = [k for k in expected if k not in state]
    extra = [k for k in state if k not in expected]
    wrong = [(k, list(state[k].shape), s) for k, s in expected.items() if k in state and list(state[k].shape) != s]
    if missing or extra or wrong:
        what = _identify(state)
        looks = f" It looks like {what}." if what and what != FILE_NAMES[kind] else ""
        detail = []
        if missing:
            detail.append(f"{len(missing)} key(s) missing (first: {missing[0]})")
        if extra:
            detail.append(f"{len(extra)} unexpected key(s) (first: {extra[0]})")
        if wrong:
            k, got, want = wrong[0]
            detail.append(f"{len(wrong)} shape mismatch(es) (first: {k} is {got}, expected {want})")
        raise _error(f"{path} does not match ICON's {FILE_NAMES[kind]}: {'; '.join(detail)}.{looks}")
    for k, v in state.items():
        if k.endswith("num_batches_tracked"):
            continue
        if not v.is_floating_point():
            raise _error(f"{path} does not match ICON's {FILE_NAMES[kind]}: {k} has dtype {v.dtype}, not float.")
        if not bool(torch.isfinite(v).all()):  # a damaged download: NaN weights would make every mesh empty
            raise _error(f"{path} is damaged: {k} holds NaN or infinite values. Download {FILE_NAMES[kind]} again.")
    return state


def _strip(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k[len("netG."):]: v for k, v in state.items()}


def load_network(path: str | Path, kind: str, device: str | torch.device = "cpu", ngf: int = 64) -> torch.nn.Module:
    """Read, validate and strictly load checkpoint ``kind`` from ``path``; the network in eval mode on ``device``."""
    state = check_state(read_checkpoint(path), kind, path, ngf)
    net = build_network(kind, ngf)
    net.load_state_dict(_strip(state), strict=True)  # copy_ converts fp16/fp64 files to our fp32
    return net.eval().to(device)


def save_checkpoint(net: torch.nn.Module, path: str | Path, lightning: bool = True) -> Path:
    """Write ``net``'s weights in the official layout (``netG.`` keys, optionally Lightning-wrapped). For tests
    and tools; the engine never writes ICON files."""
    path = Path(path)
    state = {"netG." + k: v.detach().cpu() for k, v in net.state_dict().items()}
    torch.save({"state_dict": state, "epoch": 0} if lightning else state, path)
    return path


# ----------------------------------------------------------------------------------------------------------------
# Locating the files
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IconData:
    """The checkpoint files one ICON run uses. ``variant`` is "icon-filter" or "icon-nofilter"."""

    folder: Path
    normal: Path
    implicit: Path
    variant: str


def _candidates(path: Path) -> list[Path]:
    return [path / sub if sub else path for sub in SEARCH_SUBDIRS]


def find_icon_data(path: str | Path | None, variant: str | None = None) -> IconData | None:
    """Locate ``normal.ckpt`` and an implicit checkpoint in ``path`` (or its ``ckpt``/``data/ckpt`` sub-folders).

    ``variant`` picks "icon-filter" / "icon-nofilter"; by default icon-filter when present. Returns ``None`` when
    the folder doesn't hold a complete set. Nothing is loaded."""
    if path is None:
        return None
    path = Path(path).expanduser()
    if path.is_file():
        path = path.parent
    variants = (variant,) if variant else VARIANTS
    for folder in _candidates(path):
        normal = folder / FILE_NAMES["normal"]
        if not normal.is_file():
            continue
        for v in variants:
            implicit = folder / FILE_NAMES[v]
            if implicit.is_file():
                return IconData(folder, normal, implicit, v)
    return None


def require_icon_data(path: str | Path, variant: str | None = None) -> IconData:
    """:func:`find_icon_data` that raises ``EngineError("icon_data")`` naming what is missing."""
    found = find_icon_data(path, variant)
    if found is not None:
        return found
    p = Path(path).expanduser()
    if not p.exists():
        raise _error(f"ICON data folder {p} does not exist.")
    wanted = [FILE_NAMES["normal"], " or ".join(FILE_NAMES[v] for v in ((variant,) if variant else VARIANTS))]
    raise _error(f"{p} does not hold ICON's checkpoints: need {wanted[0]} and {wanted[1]} "
                 f"(searched {p} and its ckpt, data/ckpt sub-folders).")


def _describe_file(path: Path, kind: str) -> dict[str, Any]:
    info: dict[str, Any] = {"file": str(path), "exists": path.is_file()}
    if not path.is_file():
        info["status"] = "missing"
        return info
    info["size_bytes"] = path.stat().st_size
    if not zipfile.is_zipfile(path):
        info["status"] = "unverified (not a zip-format PyTorch file; checked when loaded)"
        return info
    try:  # memory-mapped: reads the key table and shapes, not the 1.46 GB of weights
        check_state(read_checkpoint(path), kind, path)
        info["status"] = "ok"
    except EngineError as exc:
        info["status"] = "invalid"
        info["error"] = exc.message
    return info


def describe_icon_data(path: str | Path | None) -> dict[str, Any]:
    """What ``path`` offers for ICON, for ``doctor``: per-file existence, size and layout status.

    Cheap: zip-format checkpoints are memory-mapped, so only key names and shapes are read."""
    if path is None:
        return {"configured": False, "active": False, "usable": False,
                "message": "No ICON data folder given (--icon-data)."}
    p = Path(path).expanduser()
    found = find_icon_data(p)
    folder = found.folder if found else p
    files = {kind: _describe_file(folder / name, kind) for kind, name in FILE_NAMES.items()}
    usable = bool(found) and files["normal"]["status"] != "invalid" and files[found.variant]["status"] != "invalid"
    out: dict[str, Any] = {"configured": True, "active": usable, "folder": str(folder), "usable": usable,
                           "files": files,
                           "variant": found.variant if found else None}
    if not usable:
        out["message"] = (f"{p} has no usable ICON checkpoints." if found is None
                          else f"{folder}: a checkpoint does not match ICON's layout.")
        out["hint"] = HINT
    return out


@dataclass
class IconNetworks:
    """ICON's loaded networks (eval mode): the normal predictor and the implicit network of ``variant``."""

    normal: NormalNet
    implicit: ImplicitNet
    variant: str


def load_icon_networks(data: IconData, device: str | torch.device = "cpu") -> IconNetworks:
    """Load and validate both checkpoints of ``data`` strictly onto ``device``."""
    normal = load_network(data.normal, "normal", device)
    implicit = load_network(data.implicit, data.variant, device)
    assert isinstance(normal, NormalNet) and isinstance(implicit, ImplicitNet)
    return IconNetworks(normal, implicit, data.variant)
