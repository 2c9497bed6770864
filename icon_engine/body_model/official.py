"""The user's official SMPL-X files: find, validate (without unpickling), convert ``.pkl``.

The official SMPL-X model (smpl-x.is.tue.mpg.de, registration required) may not be redistributed: the user
points the engine at their own ``SMPLX_NEUTRAL.npz`` (or a folder holding ``SMPLX_{GENDER}.npz``). The arrays are
read with ``allow_pickle=False`` (object arrays are never unpickled) and only the numeric keys the body model
needs are kept. Torch-free.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from ..errors import EngineError

SMPLX_SITE = "https://smpl-x.is.tue.mpg.de"
NUM_JOINTS = 55
NUM_POSE_BASIS = (NUM_JOINTS - 1) * 9
GENDERS = ("neutral", "male", "female")

#: Keys smplx.SMPLX reads, with their expected shapes (V = vertices, F = faces, S = shape+expression columns).
REQUIRED_KEYS: dict[str, tuple] = {
    "v_template": ("V", 3),
    "f": ("F", 3),
    "shapedirs": ("V", 3, "S"),
    "posedirs": ("V", 3, NUM_POSE_BASIS),
    "J_regressor": (NUM_JOINTS, "V"),
    "weights": ("V", NUM_JOINTS),
    "kintree_table": (2, NUM_JOINTS),
    "hands_meanl": (45,),
    "hands_meanr": (45,),
    "hands_componentsl": ("H", 45),
    "hands_componentsr": ("H", 45),
    "lmk_faces_idx": ("L",),
    "lmk_bary_coords": ("L", 3),
}
#: Optional numeric keys carried over to the sanitised copy when present.
OPTIONAL_KEYS = ("vt", "ft", "dynamic_lmk_faces_idx", "dynamic_lmk_bary_coords", "keypoint_vertex_ids", "shape_std")

_CONVERT_HINT = "python -m icon_engine body convert-pkl FILE --i-trust-this-file"


def _fail(message: str, hint: str | None = None) -> EngineError:
    return EngineError(
        "body_model",
        message,
        hint
        or f"Download the SMPL-X model (.npz) from {SMPLX_SITE} (free registration) and pass the file or its "
        "folder with --smplx-model; leave --smplx-model out to use the built-in open body.",
    )


def resolve_model_file(smplx_model: str | Path, gender: str = "neutral") -> Path:
    """A file or folder given by the user → the SMPL-X ``.npz`` to load (not yet validated).

    A folder may hold ``SMPLX_{GENDER}.npz`` (or ``SMPLX_{GENDER}_<suffix>.npz``, e.g. ``SMPLX_NEUTRAL_2020.npz``)
    directly or in ``smplx/`` (the smplx package's layout).
    ``.pkl`` files are refused with the conversion command.
    """
    gender = gender.lower()
    if gender not in GENDERS:
        raise EngineError("bad_option", f"Unknown gender {gender!r}.", f"Use one of {', '.join(GENDERS)}.")
    path = Path(smplx_model).expanduser()
    if path.is_dir():
        name = f"SMPLX_{gender.upper()}"
        for folder in (path, path / "smplx"):
            if (folder / f"{name}.npz").is_file():
                return folder / f"{name}.npz"
        for folder in (path, path / "smplx"):  # e.g. SMPLX_NEUTRAL_2020.npz (SMPL-X v1.1's neutral model)
            variants = sorted(folder.glob(f"{name}_*.npz")) if folder.is_dir() else []
            if variants:
                return variants[-1]
        for folder in (path, path / "smplx"):
            if (folder / f"{name}.pkl").is_file():
                raise _refuse_pkl(folder / f"{name}.pkl")
        raise _fail(f"No {name}.npz in the folder {path}.")
    if not path.exists():
        raise _fail(f"The SMPL-X model file {path} does not exist.")
    if path.suffix.lower() == ".pkl":
        raise _refuse_pkl(path)
    return path


def _refuse_pkl(path: Path) -> EngineError:
    return _fail(
        f"{path.name} is a pickle (.pkl) model file; the engine never unpickles files implicitly.",
        f"Use the official .npz from {SMPLX_SITE}, or convert your own official .pkl once with "
        f"'{_CONVERT_HINT.replace('FILE', str(path))}' (it unpickles that file, so only run it on the file you "
        "downloaded yourself).",
    )


def load_npz_arrays(path: Path) -> dict[str, np.ndarray]:
    """Read and validate an SMPL-X ``.npz`` with ``allow_pickle=False``; returns the required + optional arrays.

    Raises EngineError("body_model") naming the problem: not a zip / truncated, missing key, object array,
    wrong shape or dtype, inconsistent vertex counts, non-finite values.
    """
    if not zipfile.is_zipfile(path):
        with open(path, "rb") as f:
            head = f.read(2)
        if head[:1] == b"\x80":
            raise _refuse_pkl(path)
        raise _fail(f"{path} is not an SMPL-X .npz file (not a zip archive, or truncated).")
    try:
        with np.load(path, allow_pickle=False) as data:
            names = set(data.files)
            missing = [k for k in REQUIRED_KEYS if k not in names]
            if missing:
                raise _fail(f"{path.name} is not an SMPL-X model: missing {', '.join(missing)}.")
            arrays = {}
            for key in list(REQUIRED_KEYS) + [k for k in OPTIONAL_KEYS if k in names]:
                try:
                    arrays[key] = data[key]
                except ValueError as exc:  # object arrays need pickle: refuse
                    raise _fail(f"{path.name}: the array {key!r} is not numeric ({exc}).") from None
    except EngineError:
        raise
    except Exception as exc:  # noqa: BLE001 - a damaged archive fails in zipfile, zlib or numpy with any error
        raise _fail(f"{path} is damaged or truncated ({type(exc).__name__}: {exc}).") from None
    _check_shapes(path.name, arrays)
    return arrays


def _check_shapes(name: str, arrays: dict[str, np.ndarray]) -> None:
    sizes: dict[str, int] = {}
    for key, spec in REQUIRED_KEYS.items():
        a = arrays[key]
        if a.dtype.kind not in "iuf":
            raise _fail(f"{name}: {key} has dtype {a.dtype}, expected numbers.")
        if a.ndim != len(spec):
            raise _fail(f"{name}: {key} has shape {a.shape}, expected {len(spec)} dimensions {spec}.")
        for dim, want in zip(a.shape, spec, strict=True):
            if isinstance(want, str):
                if sizes.setdefault(want, dim) != dim:
                    raise _fail(f"{name}: {key} has shape {a.shape}: {want} = {dim} but elsewhere {sizes[want]}.")
            elif dim != want:
                raise _fail(f"{name}: {key} has shape {a.shape}, expected {spec}.")
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            raise _fail(f"{name}: {key} contains NaN or infinite values.")
    if sizes["S"] < 10:
        raise _fail(f"{name}: shapedirs has only {sizes['S']} components (at least 10 needed).")
    if sizes["H"] < 1:
        raise _fail(f"{name}: hands_components are empty.")
    faces = arrays["f"]
    if faces.size and (faces.min() < 0 or faces.max() >= sizes["V"]):
        raise _fail(f"{name}: faces index vertices outside 0..{sizes['V'] - 1}.")


def _save_npz_atomic(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    """Write ``arrays`` to ``path`` (.npz) through a temporary file beside it, so readers never see half a file."""
    fd, tmp = tempfile.mkstemp(prefix=path.stem + ".", suffix=".tmp.npz", dir=path.parent)
    os.close(fd)
    try:
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def convert_pkl(src: Path, dst: Path | None = None) -> Path:
    """Convert the user's own official SMPL-X ``.pkl`` to ``.npz``. THIS UNPICKLES ``src``.

    Only numeric arrays are kept (scipy sparse matrices densified, chumpy arrays read through ``.r``);
    the result is validated like any ``.npz``. Returns the written path (default: ``src`` with ``.npz``).
    """
    import pickle

    src = Path(src).expanduser()
    if not src.is_file():
        raise _fail(f"The file {src} does not exist.")
    dst = Path(dst).expanduser() if dst is not None else src.with_suffix(".npz")
    try:
        with open(src, "rb") as f:
            data = pickle.load(f, encoding="latin1")  # noqa: S301 - explicit, user-requested conversion
    except ModuleNotFoundError as exc:
        raise _fail(
            f"{src.name} needs the Python package {exc.name!r} to be read.",
            f"pip install {exc.name} into the engine's environment, or download the .npz from {SMPLX_SITE}.",
        ) from None
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad file
        raise _fail(f"{src} could not be read as a pickle ({type(exc).__name__}: {exc}).") from None
    if not isinstance(data, dict):
        raise _fail(f"{src.name} does not hold an SMPL-X model (a {type(data).__name__}, not a dict).")
    arrays: dict[str, np.ndarray] = {}
    for key, value in data.items():
        if hasattr(value, "toarray"):
            value = value.toarray()
        elif hasattr(value, "r") and not isinstance(value, np.ndarray):
            value = value.r
        try:
            a = np.asarray(value)
        except Exception:  # noqa: BLE001 - non-array entries are dropped
            continue
        if a.dtype.kind in "iuf":
            arrays[str(key)] = a
    _check_shapes(src.name, {k: arrays[k] for k in REQUIRED_KEYS if k in arrays} | _require(src.name, arrays))
    dst.parent.mkdir(parents=True, exist_ok=True)
    return _save_npz_atomic(dst, arrays)


def _require(name: str, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    missing = [k for k in REQUIRED_KEYS if k not in arrays]
    if missing:
        raise _fail(f"{name} is not an SMPL-X model: missing {', '.join(missing)}.")
    return {}


def npz_keys(path: Path) -> list[str] | None:
    """The array names inside an ``.npz`` (cheap: reads the zip directory only), or None if unreadable."""
    try:
        with zipfile.ZipFile(path) as z:
            return [n[:-4] if n.endswith(".npy") else n for n in z.namelist()]
    except (OSError, zipfile.BadZipFile):
        return None
