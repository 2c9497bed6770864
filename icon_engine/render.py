"""Software renderer in torch (CPU-fast, no pytorch3d/kaolin): rasterization, normals, shading, visibility and a
differentiable soft silhouette.

Frames and units follow ``docs/architecture.md``: vertices are given in the **OpenCV camera frame** (x right,
y down, z forward, metres; use :func:`to_camera` or ``Camera.to_camera`` for bundle-world points), ``K`` is a 3×3
pinhole intrinsic matrix in pixels, and pixel (i, j) — column i, row j — covers [i, i+1) × [j, j+1) with its
centre at (i + 0.5, j + 0.5). Images are indexed ``[row, column]`` = ``[j, i]``.

The hard rasterizer works on candidate (pixel, face) pairs: every face's pixel bounding box is expanded into the
pixel centres it may cover, a 2-D edge-function test keeps the covered ones, and a single ``scatter_reduce(amin)``
over a packed (depth, face) key resolves visibility — the nearest surface wins (``farthest=True``: the farthest).
Barycentrics are perspective-correct. Faces with a corner at z ≤ ``NEAR`` are skipped (no clipping).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

#: Faces with any corner at or in front of this depth (camera units, metres) are not drawn.
NEAR = 1e-4

#: Upper bound on candidate (pixel, face) pairs processed at once (memory ≈ 60 bytes per pair).
CHUNK_PAIRS = 1 << 22

ArrayLike = np.ndarray | torch.Tensor


def _as_tensor(x: ArrayLike, dtype: torch.dtype, device: torch.device | None = None) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.to(dtype=dtype, device=device if device is not None else x.device)
    return torch.as_tensor(np.asarray(x), dtype=dtype, device=device)


def _to_numpy(x: torch.Tensor) -> np.ndarray:
    return x.detach().cpu().numpy()


@dataclass
class Raster:
    """Result of :func:`rasterize` (numpy arrays, shape (H, W) = (height, width)).

    ``face_index`` int64, −1 = background; ``bary`` float32 (H, W, 3) perspective-correct barycentric weights of
    the face's three corners (0 on background); ``depth`` float32 camera-frame z (metres), ``inf`` on background.
    """

    face_index: np.ndarray
    bary: np.ndarray
    depth: np.ndarray
    faces: np.ndarray

    @property
    def mask(self) -> np.ndarray:
        """(H, W) bool: pixels covered by the mesh."""
        return self.face_index >= 0

    def interpolate(self, attributes: ArrayLike, background: float = 0.0) -> np.ndarray:
        """Interpolate per-vertex ``attributes`` (V, C) over the image → (H, W, C) float32."""
        attr = np.asarray(attributes.detach().cpu() if isinstance(attributes, torch.Tensor) else attributes)
        attr = attr.astype(np.float32).reshape(attr.shape[0], -1)
        h, w = self.face_index.shape
        out = np.full((h, w, attr.shape[1]), background, dtype=np.float32)
        m = self.mask
        corners = self.faces[self.face_index[m]]  # (P, 3)
        out[m] = np.einsum("pk,pkc->pc", self.bary[m], attr[corners])
        return out


def project(vertices_cam: torch.Tensor, K: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Camera-frame points (..., 3) → (pixels (..., 2), depth (...,)). Differentiable."""
    z = vertices_cam[..., 2]
    zs = torch.where(z > NEAR, z, torch.full_like(z, NEAR))
    u = K[0, 0] * vertices_cam[..., 0] / zs + K[0, 1] * vertices_cam[..., 1] / zs + K[0, 2]
    v = K[1, 1] * vertices_cam[..., 1] / zs + K[1, 2]
    return torch.stack([u, v], dim=-1), z


def to_camera(vertices_world: ArrayLike, R: ArrayLike, t: ArrayLike) -> np.ndarray | torch.Tensor:
    """Bundle-world points (..., 3) → OpenCV camera frame: ``x R^T + t`` (keeps torch/numpy type)."""
    if isinstance(vertices_world, torch.Tensor):
        Rt = _as_tensor(R, vertices_world.dtype, vertices_world.device)
        tt = _as_tensor(t, vertices_world.dtype, vertices_world.device)
        return vertices_world @ Rt.T + tt
    return np.asarray(vertices_world, dtype=np.float64) @ np.asarray(R, dtype=np.float64).T + np.asarray(t)


def _face_pixel_boxes(tri: torch.Tensor, width: int, height: int, margin: float = 0.0) -> tuple[torch.Tensor, ...]:
    """Pixel index ranges whose centres lie in each face's 2-D bounding box (± ``margin`` px).

    ``tri`` (F, 3, 2) pixels → (x0, y0, bw, bh) int64; bw/bh are 0 for boxes outside the image.
    """
    lo = tri.min(dim=1).values - margin
    hi = tri.max(dim=1).values + margin
    x0 = torch.ceil(lo[:, 0] - 0.5).clamp(min=0)
    y0 = torch.ceil(lo[:, 1] - 0.5).clamp(min=0)
    x1 = torch.floor(hi[:, 0] - 0.5).clamp(max=width - 1)
    y1 = torch.floor(hi[:, 1] - 0.5).clamp(max=height - 1)
    bw = (x1 - x0 + 1).clamp(min=0)
    bh = (y1 - y0 + 1).clamp(min=0)
    bad = ~torch.isfinite(lo).all(dim=1) | ~torch.isfinite(hi).all(dim=1)
    bw[bad] = 0
    bh[bad] = 0
    return x0.long(), y0.long(), bw.long(), bh.long()


def _chunks(counts: torch.Tensor, budget: int) -> list[tuple[int, int]]:
    """Split faces into consecutive ranges whose pair counts sum to ≤ ``budget`` (a single big face stays alone)."""
    n = counts.shape[0]
    if n == 0:
        return []
    csum = torch.cumsum(counts, 0)
    ranges = []
    start = 0
    base = 0
    while start < n:
        end = int(torch.searchsorted(csum, base + budget, right=True))
        end = max(end, start + 1)
        ranges.append((start, end))
        base = int(csum[end - 1])
        start = end
    return ranges


def _expand_pairs(x0: torch.Tensor, y0: torch.Tensor, bw: torch.Tensor, bh: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """(pair → local face index, pixel x, pixel y) for all pixels of every face box."""
    counts = bw * bh
    total = int(counts.sum())
    face = torch.repeat_interleave(torch.arange(counts.shape[0], device=counts.device), counts, output_size=total)
    offsets = torch.cumsum(counts, 0) - counts
    k = torch.arange(total, device=counts.device) - offsets[face]
    w = bw[face]
    return face, x0[face] + k % w, y0[face] + k // w


def _edge_weights(tri: torch.Tensor, px: torch.Tensor, py: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Screen-space barycentrics (P, 3) of points (px, py) in triangles ``tri`` (P, 3, 2), and signed area (P,)."""
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    w0 = (b[:, 0] - px) * (c[:, 1] - py) - (b[:, 1] - py) * (c[:, 0] - px)
    w1 = (c[:, 0] - px) * (a[:, 1] - py) - (c[:, 1] - py) * (a[:, 0] - px)
    w2 = (a[:, 0] - px) * (b[:, 1] - py) - (a[:, 1] - py) * (b[:, 0] - px)
    return torch.stack([w0, w1, w2], dim=1) / area[:, None], area


def _plane_coefficients(tri: torch.Tensor, inv_z: torch.Tensor) -> torch.Tensor:
    """Screen-space linear functions of each face → (F, 4, 3): rows w0, w1, w2 (screen barycentrics) and 1/z,
    each as (A, B, C) with value ``A·x + B·y + C`` at pixel position (x, y). ``tri`` (F, 3, 2), ``inv_z`` (F, 3).

    The edge rows of two faces sharing an edge are exact negatives of each other, so shared edges leave no
    cracks.
    """
    rows = []
    area = None
    for k in range(3):
        b, c = tri[:, (k + 1) % 3], tri[:, (k + 2) % 3]
        A = b[:, 1] - c[:, 1]
        B = c[:, 0] - b[:, 0]
        C = b[:, 0] * c[:, 1] - b[:, 1] * c[:, 0]
        rows.append(torch.stack([A, B, C], dim=1))
    w = torch.stack(rows, dim=1)  # (F, 3, 3) unnormalised edge functions
    a = tri[:, 0]
    area = (w[:, 0, 0] * a[:, 0] + w[:, 0, 1] * a[:, 1] + w[:, 0, 2])  # w0 at vertex a = twice the signed area
    w = w / area[:, None, None]
    iz = (w * inv_z[:, :, None]).sum(dim=1, keepdim=True)  # (F, 1, 3)
    return torch.cat([w, iz], dim=1)


@torch.no_grad()
def rasterize(
    vertices_cam: ArrayLike,
    faces: ArrayLike,
    K: ArrayLike,
    width: int,
    height: int,
    farthest: bool = False,
) -> Raster:
    """Hard z-buffer rasterization of a triangle mesh seen by a pinhole camera.

    ``vertices_cam`` (V, 3) camera frame (metres), ``faces`` (F, 3) int, ``K`` (3, 3) pixels; the image is
    ``width`` × ``height`` pixels. The nearest surface wins (``farthest=True``: the farthest one — the "back"
    layer along the same pixel rays). Both windings are drawn (no back-face culling). Degenerate (zero-area)
    faces and faces with a corner at z ≤ :data:`NEAR` are skipped.
    """
    v = _as_tensor(vertices_cam, torch.float64)
    f = _as_tensor(faces, torch.int64, v.device)
    Kt = _as_tensor(K, torch.float64, v.device)
    h, w = int(height), int(width)
    nf = f.shape[0]
    uv, z = project(v, Kt)
    tri_z = z[f]  # (F, 3)
    fid = torch.nonzero((tri_z > NEAR).all(dim=1)).squeeze(1)
    tri = uv[f[fid]]  # (F', 3, 2)
    e1, e2 = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
    area = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    x0, y0, bw, bh = _face_pixel_boxes(tri, w, h)
    keep = (bw > 0) & (bh > 0) & (area.abs() > 1e-12)
    fid, tri, x0, y0, bw, bh = fid[keep], tri[keep], x0[keep], y0[keep], bw[keep], bh[keep]
    coef = _plane_coefficients(tri, 1.0 / tri_z[fid])  # (F', 4, 3)

    # Packed key: float32 depth bits (monotonic for positive floats) in the high word, face index in the low one.
    sentinel = torch.iinfo(torch.int64).max
    dev = v.device
    zbuf = torch.full((h * w,), sentinel, dtype=torch.int64, device=dev)
    for s, e in _chunks(bw * bh, CHUNK_PAIRS):
        local, px, py = _expand_pairs(x0[s:e], y0[s:e], bw[s:e], bh[s:e])
        local = local + s
        c = coef[local]  # (P, 4, 3)
        val = c[:, :, 0] * (px.double() + 0.5)[:, None] + c[:, :, 1] * (py.double() + 0.5)[:, None] + c[:, :, 2]
        inside = (val[:, :3] >= -1e-9).all(dim=1) & (val[:, 3] > 0)
        bits = (1.0 / val[inside, 3]).float().view(torch.int32).long()
        if farthest:  # order by −depth: flip the bit pattern of positive floats so larger depth → smaller key
            bits = 0x7FFFFFFF - bits
        key = (bits << 32) | fid[local[inside]]
        zbuf.scatter_reduce_(0, py[inside] * w + px[inside], key, reduce="amin")

    hit = zbuf != sentinel
    pix = torch.nonzero(hit).squeeze(1)
    face_index = torch.full((h * w,), -1, dtype=torch.int64, device=dev)
    bary_img = torch.zeros((h * w, 3), dtype=torch.float32, device=dev)
    depth_img = torch.full((h * w,), float("inf"), dtype=torch.float32, device=dev)
    if pix.numel():
        fi = zbuf[pix] & 0xFFFFFFFF
        face_index[pix] = fi
        row = torch.full((nf,), -1, dtype=torch.int64, device=dev)
        row[fid] = torch.arange(fid.shape[0], device=dev)
        c = coef[row[fi]]
        px = (pix % w).double() + 0.5
        py = (pix // w).double() + 0.5
        val = c[:, :, 0] * px[:, None] + c[:, :, 1] * py[:, None] + c[:, :, 2]
        pz = val[:, :3].clamp(min=0.0) / tri_z[fi]  # perspective-correct: screen weights / corner depth
        s = pz.sum(dim=1, keepdim=True)
        bary_img[pix] = (pz / s).float()
        depth_img[pix] = (1.0 / s[:, 0]).float()
    return Raster(
        face_index=_to_numpy(face_index.view(h, w)),
        bary=_to_numpy(bary_img.view(h, w, 3)),
        depth=_to_numpy(depth_img.view(h, w)),
        faces=_to_numpy(f),
    )


# ----------------------------------------------------------------------------------------------------------------
# Normals


def vertex_normals(vertices: ArrayLike, faces: ArrayLike) -> np.ndarray | torch.Tensor:
    """Area-weighted unit vertex normals (V, 3), same frame as ``vertices``; keeps numpy/torch (and autograd).

    Works on (V, 3) or batched (B, V, 3) torch tensors. Counter-clockwise faces (seen from outside) give outward
    normals. Isolated vertices get (0, 0, 0).
    """
    if isinstance(vertices, torch.Tensor):
        f = _as_tensor(faces, torch.int64, vertices.device)
        tri = vertices[..., f, :]  # (..., F, 3, 3)
        fn = torch.cross(tri[..., 1, :] - tri[..., 0, :], tri[..., 2, :] - tri[..., 0, :], dim=-1)
        vn = torch.zeros_like(vertices)
        idx = f.reshape(-1)
        contrib = fn.unsqueeze(-2).expand(*fn.shape[:-1], 3, 3).reshape(*fn.shape[:-2], -1, 3)
        vn = vn.index_add(vertices.dim() - 2, idx, contrib)
        return F.normalize(vn, dim=-1, eps=1e-12)
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    fn = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    vn = np.zeros_like(v)
    for k in range(3):
        np.add.at(vn, f[:, k], fn)
    norm = np.linalg.norm(vn, axis=1, keepdims=True)
    return vn / np.maximum(norm, 1e-12)


def face_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Unit face normals (F, 3) of a numpy mesh (counter-clockwise = outward)."""
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    fn = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    return fn / np.maximum(np.linalg.norm(fn, axis=1, keepdims=True), 1e-12)


# ----------------------------------------------------------------------------------------------------------------
# Helpers built on the raster


def _np(x: ArrayLike) -> np.ndarray:
    return _to_numpy(x) if isinstance(x, torch.Tensor) else np.asarray(x)


def render_mask(vertices_cam: ArrayLike, faces: ArrayLike, K: ArrayLike, width: int, height: int) -> np.ndarray:
    """(H, W) bool silhouette of the mesh."""
    return rasterize(vertices_cam, faces, K, width, height).mask


def render_depth(vertices_cam: ArrayLike, faces: ArrayLike, K: ArrayLike, width: int, height: int) -> np.ndarray:
    """(H, W) float32 camera-frame z of the nearest surface (metres), ``inf`` on background."""
    return rasterize(vertices_cam, faces, K, width, height).depth


def raster_normals(raster: Raster, vertices_cam: np.ndarray, faces: np.ndarray, space: str = "camera",
                   R: ArrayLike | None = None) -> np.ndarray:
    """Unit normals (H, W, 3) float32 of ``raster`` (made from these vertices/faces), background 0.

    Interpolated area-weighted vertex normals, in the camera frame or (``space="world"``, needs ``R``) the world.
    """
    if space not in ("camera", "world"):
        raise ValueError(f"space must be 'camera' or 'world', not {space!r}")
    vn = vertex_normals(vertices_cam, faces)
    if space == "world":
        if R is None:
            raise ValueError("space='world' needs the camera rotation R (world → camera)")
        vn = vn @ np.asarray(R, dtype=np.float64)  # R^T n for row vectors
    img = raster.interpolate(vn)
    norm = np.linalg.norm(img, axis=2, keepdims=True)
    return np.where(norm > 1e-12, img / np.maximum(norm, 1e-12), 0.0).astype(np.float32)


def render_normals(
    vertices_cam: ArrayLike,
    faces: ArrayLike,
    K: ArrayLike,
    width: int,
    height: int,
    space: str = "camera",
    R: ArrayLike | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel interpolated, re-normalised vertex normals → (normals (H, W, 3) float32, mask (H, W) bool).

    ``space="camera"``: OpenCV camera frame (a surface facing the camera has n_z < 0); ``space="world"``: the
    bundle world, which needs the camera rotation ``R`` (world → camera). Background is 0.
    """
    v = _np(vertices_cam).astype(np.float64)
    f = _np(faces).astype(np.int64)
    raster = rasterize(v, f, K, width, height)
    return raster_normals(raster, v, f, space, R), raster.mask


def render_normal_pair(
    vertices_cam: ArrayLike,
    faces: ArrayLike,
    K: ArrayLike,
    width: int,
    height: int,
    space: str = "camera",
    R: ArrayLike | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ICON-style front/back normal maps, pixel-aligned with the photo → (front, back (H, W, 3), mask (H, W)).

    ``front`` holds the normals of the nearest surface along each pixel ray, ``back`` those of the farthest
    surface along the same ray (what a camera behind the body sees, mirrored horizontally). For ICON's orthographic
    cameras this equals "render from behind and flip horizontally"; for a perspective camera it is the exactly
    pixel-aligned version. Both are in the same frame (``space``, see :func:`render_normals`): front-facing
    normals have n_z < 0 in camera space, back ones n_z > 0. Both maps share one silhouette ``mask``.
    """
    v = _np(vertices_cam).astype(np.float64)
    f = _np(faces).astype(np.int64)
    front = rasterize(v, f, K, width, height)
    back = rasterize(v, f, K, width, height, farthest=True)
    return raster_normals(front, v, f, space, R), raster_normals(back, v, f, space, R), front.mask


def normals_to_rgb(normals: np.ndarray, mask: np.ndarray | None = None, background: int = 128) -> np.ndarray:
    """Normal image (H, W, 3) in [−1, 1] → uint8 colours ``(n + 1) / 2 · 255``; background grey."""
    rgb = np.clip((normals + 1.0) * 127.5, 0, 255).astype(np.uint8)
    if mask is not None:
        rgb[~mask] = background
    return rgb


def _colors01(colors: ArrayLike | None, n: int) -> np.ndarray:
    if colors is None:
        return np.full((n, 3), 0.75, dtype=np.float32)
    raw = _np(colors)
    c = raw.astype(np.float32)
    if c.ndim == 1:
        c = np.broadcast_to(c, (n, c.shape[0]))
    if np.issubdtype(raw.dtype, np.integer) or c.max(initial=0.0) > 1.0:  # 0–255 colours
        c = c / 255.0
    return np.ascontiguousarray(c[:, :3])


def render_colors(
    vertices_cam: ArrayLike,
    faces: ArrayLike,
    K: ArrayLike,
    width: int,
    height: int,
    colors: ArrayLike,
    background: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Interpolated per-vertex colours ``colors`` (V, C) → (image (H, W, C) float32, mask (H, W) bool)."""
    raster = rasterize(vertices_cam, faces, K, width, height)
    return raster.interpolate(colors, background), raster.mask


def shade(normals_cam: np.ndarray, colors: np.ndarray, rays: np.ndarray, light_dir: np.ndarray | None = None,
          ambient: float = 0.35) -> np.ndarray:
    """Lambert shading of ``colors`` (..., 3) with normals and unit view ``rays`` (..., 3) in camera space.

    ``light_dir`` (3,) is the direction light travels (camera frame); ``None`` = a headlight along each ray.
    Two-sided: a normal facing away is lit like its flip.
    """
    if light_dir is None:
        lam = np.abs(np.sum(normals_cam * rays, axis=-1))
    else:
        d = np.asarray(light_dir, dtype=np.float64)
        d = d / np.linalg.norm(d)
        facing = np.sign(-np.sum(normals_cam * rays, axis=-1, keepdims=True))
        facing[facing == 0] = 1.0
        lam = np.clip(np.sum(normals_cam * facing * -d, axis=-1), 0.0, 1.0)
    return colors * (ambient + (1.0 - ambient) * lam)[..., None]


def pixel_rays(K: ArrayLike, width: int, height: int) -> np.ndarray:
    """Unit camera-frame view rays (H, W, 3) through every pixel centre."""
    Kinv = np.linalg.inv(np.asarray(K, dtype=np.float64))
    i, j = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    pts = np.stack([i, j, np.ones_like(i)], axis=-1) @ Kinv.T
    return pts / np.linalg.norm(pts, axis=-1, keepdims=True)


def render_shaded(
    vertices_cam: ArrayLike,
    faces: ArrayLike,
    K: ArrayLike,
    width: int,
    height: int,
    colors: ArrayLike | None = None,
    light_dir: ArrayLike | None = None,
    ambient: float = 0.35,
) -> tuple[np.ndarray, np.ndarray]:
    """Lambert-shaded render → (rgb (H, W, 3) float32 in [0, 1], mask (H, W) bool).

    ``colors``: per-vertex (V, 3) or one (3,) colour: integers (e.g. uint8) are 0–255, floats [0, 1] (or
    0–255 when any exceeds 1); default light grey. ``light_dir``
    (camera frame, direction the light travels) defaults to a headlight.
    """
    v = _np(vertices_cam).astype(np.float64)
    f = _np(faces).astype(np.int64)
    raster = rasterize(v, f, K, width, height)
    normals = raster_normals(raster, v, f, "camera", None)
    albedo = raster.interpolate(_colors01(colors, v.shape[0]))
    rgb = shade(normals, albedo, pixel_rays(K, width, height), light_dir, ambient)
    rgb[~raster.mask] = 0.0
    return np.clip(rgb, 0.0, 1.0).astype(np.float32), raster.mask


def vertex_visibility(
    vertices_cam: ArrayLike,
    faces: ArrayLike,
    K: ArrayLike,
    width: int,
    height: int,
    tolerance: float = 0.01,
) -> np.ndarray:
    """(V,) bool: vertices seen by the camera.

    A vertex is visible when it is a corner of a face that wins at least one pixel, or when it projects inside
    the image with depth ≤ the z-buffer there + ``tolerance`` (metres; background counts as infinitely far).
    Vertices behind the camera or outside the image are not visible.
    """
    v = _np(vertices_cam).astype(np.float64)
    f = _np(faces).astype(np.int64)
    raster = rasterize(v, f, K, width, height)
    vis = np.zeros(v.shape[0], dtype=bool)
    shown = np.unique(raster.face_index[raster.mask])
    vis[f[shown].reshape(-1)] = True
    Kn = np.asarray(K, dtype=np.float64)
    z = v[:, 2]
    front = z > NEAR
    uvw = v @ Kn.T
    with np.errstate(divide="ignore", invalid="ignore"):
        px = np.floor(uvw[:, 0] / z)
        py = np.floor(uvw[:, 1] / z)
    inside = front & (px >= 0) & (px < width) & (py >= 0) & (py < height)
    idx = np.nonzero(inside)[0]
    zb = raster.depth[py[idx].astype(np.int64), px[idx].astype(np.int64)]
    vis[idx[z[idx] <= zb + tolerance]] = True
    vis &= inside
    return vis


# ----------------------------------------------------------------------------------------------------------------
# Differentiable soft silhouette


def _segment_distance(a: torch.Tensor, b: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """Distance (P,) from points ``p`` (P, 2) to segments ``a``–``b`` (P, 2); differentiable in a, b."""
    ab = b - a
    t = ((p - a) * ab).sum(dim=1) / (ab * ab).sum(dim=1).clamp(min=1e-12)
    q = a + t.clamp(0.0, 1.0)[:, None] * ab
    return torch.sqrt(((p - q) ** 2).sum(dim=1) + 1e-10)


_TOPOLOGY_CACHE: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}


def _edge_topology(faces: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Unique undirected edges (E, 2) of a mesh and, per face corner-edge (F·3,), the index of its edge.

    Cached for the last few face arrays (fitting loops call the soft silhouette with the same faces).
    """
    cpu = faces.detach().cpu().contiguous()
    key = (tuple(cpu.shape), str(faces.device), hashlib.blake2b(cpu.numpy().tobytes(), digest_size=16).digest())
    hit = _TOPOLOGY_CACHE.get(key)
    if hit is not None:
        return hit
    result = _edge_topology_uncached(faces)
    if len(_TOPOLOGY_CACHE) >= 4:
        _TOPOLOGY_CACHE.pop(next(iter(_TOPOLOGY_CACHE)))
    _TOPOLOGY_CACHE[key] = result
    return result


def _edge_topology_uncached(faces: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    nv = int(faces.max()) + 1 if faces.numel() else 1
    e = torch.stack([faces, faces.roll(-1, dims=1)], dim=2).reshape(-1, 2)
    e = torch.sort(e, dim=1).values
    key = e[:, 0] * nv + e[:, 1]
    uniq, inverse = torch.unique(key, return_inverse=True)
    return torch.stack([uniq // nv, uniq % nv], dim=1), inverse


def _coverage(tri: torch.Tensor, batch: torch.Tensor, B: int, width: int, height: int) -> torch.Tensor:
    """Hard coverage (B, H, W) bool of 2-D triangles ``tri`` (N, 3, 2) pixels, each in image ``batch[n]``."""
    x0, y0, bw, bh = _face_pixel_boxes(tri, width, height)
    cover = torch.zeros(B * height * width, dtype=torch.bool, device=tri.device)
    for s, e in _chunks(bw * bh, CHUNK_PAIRS):
        local, px, py = _expand_pairs(x0[s:e], y0[s:e], bw[s:e], bh[s:e])
        local = local + s
        bary, area = _edge_weights(tri[local], px.to(tri.dtype) + 0.5, py.to(tri.dtype) + 0.5)
        inside = (bary >= -1e-6).all(dim=1) & (area.abs() > 1e-12)
        idx = (batch[local] * height + py) * width + px
        cover[idx[inside]] = True
    return cover.view(B, height, width)


def _silhouette_edges(verts: torch.Tensor, uv: torch.Tensor, f: torch.Tensor, edges: torch.Tensor,
                      corner_edge: torch.Tensor, cover: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Contour edges that lie on the hard silhouette's outline → (batch index (C,), edge index (C,)).

    A contour edge joins a camera-facing and a back-facing face (or is a border edge); it is kept when the
    hard coverage on one side of its projected midpoint (1 px away) is empty.
    """
    B, h, w = cover.shape
    ne = edges.shape[0]
    tri = verts[:, f]  # (B, F, 3, 3)
    n = torch.cross(tri[:, :, 1] - tri[:, :, 0], tri[:, :, 2] - tri[:, :, 0], dim=-1)
    facing = ((n * tri.mean(dim=2)).sum(-1) < 0).double()  # (B, F)
    valid = (tri[..., 2] > NEAR).all(dim=2).double()
    idx = corner_edge.view(1, -1).expand(B, -1) + torch.arange(B, device=verts.device).view(B, 1) * ne
    w_front = torch.zeros(B * ne, dtype=torch.float64, device=verts.device)
    w_all = torch.zeros_like(w_front)
    w_front.index_add_(0, idx.reshape(-1), (facing * valid).repeat_interleave(3, dim=1).reshape(-1))
    w_all.index_add_(0, idx.reshape(-1), valid.repeat_interleave(3, dim=1).reshape(-1))
    contour = ((w_front > 0) & (w_front < w_all)) | ((w_all == 1) & (w_front == 1))
    cid = torch.nonzero(contour).squeeze(1)
    b, e = cid // ne, cid % ne
    a2, b2 = uv[b, edges[e, 0]], uv[b, edges[e, 1]]
    mid = 0.5 * (a2 + b2)
    d = b2 - a2
    nrm = torch.stack([-d[:, 1], d[:, 0]], dim=1) / d.norm(dim=1, keepdim=True).clamp(min=1e-9)

    def empty(q: torch.Tensor) -> torch.Tensor:
        qx, qy = torch.floor(q[:, 0]).long(), torch.floor(q[:, 1]).long()
        out = (qx < 0) | (qx >= w) | (qy < 0) | (qy >= h)
        hit = cover[b, qy.clamp(0, h - 1), qx.clamp(0, w - 1)]
        return out | ~hit

    on_outline = empty(mid + nrm) | empty(mid - nrm)
    return b[on_outline], e[on_outline]


def soft_silhouette(
    vertices_cam: torch.Tensor,
    faces: ArrayLike,
    K: ArrayLike,
    width: int,
    height: int,
    sigma: float = 1.0,
    margin: float | None = None,
) -> torch.Tensor:
    """Differentiable soft silhouette (B, H, W) in [0, 1] of meshes ``vertices_cam`` (B, V, 3) or (V, 3).

    ``sil(p) ≈ sigmoid(±dist(p, outline) / sigma)``: the signed distance in pixels from each pixel centre to the
    projected outline of the hard silhouette (contour edges: between a camera-facing and a back-facing face),
    + inside, − outside, rescaled to reach exactly 0 (outside) or 1 (inside) at ``margin`` px (default
    ``4·sigma``) from the outline, so the image is continuous in the vertices. Unlike SoftRas' product over
    faces this has no outward bias or interior holes for finely tessellated meshes (sil = 0.5 exactly on the
    outline). Gradients flow to ``vertices_cam`` through the outline edges' projections (pixels farther than
    ``margin`` from the outline get none). Faces with a corner at z ≤ NEAR are skipped. Cost ~ outline length ×
    margin², so 256–512 px fitting is cheap on CPU.
    """
    single = vertices_cam.dim() == 2
    verts = vertices_cam.unsqueeze(0) if single else vertices_cam
    B = verts.shape[0]
    f = _as_tensor(faces, torch.int64, verts.device)
    Kt = _as_tensor(K, verts.dtype, verts.device)
    h, w = int(height), int(width)
    m = 4.0 * sigma if margin is None else float(margin)
    uv, z = project(verts, Kt)  # (B, V, 2), (B, V)
    nf = f.shape[0]
    with torch.no_grad():
        uvd = uv.detach()
        ok = torch.nonzero((z[:, f] > NEAR).all(dim=2).reshape(-1)).squeeze(1)
        cover = _coverage(uvd[:, f].reshape(B * nf, 3, 2)[ok], ok // nf, B, w, h)
        edges, corner_edge = _edge_topology(f)
        eb, ei = _silhouette_edges(verts.detach(), uvd, f, edges, corner_edge, cover)
        seg = torch.stack([uvd[eb, edges[ei, 0]], uvd[eb, edges[ei, 1]]], dim=1)  # (C, 2, 2)
        x0, y0, bw, bh = _face_pixel_boxes(seg, w, h, margin=m)
        local, px, py = _expand_pairs(x0, y0, bw, bh)
        pix = (eb[local] * h + py) * w + px
        p = torch.stack([px, py], dim=1).to(verts.dtype) + 0.5
    a = uv[eb[local], edges[ei[local], 0]]
    b = uv[eb[local], edges[ei[local], 1]]
    d = _segment_distance(a, b, p)
    big = torch.full((B * h * w,), float(m) + 1.0, dtype=verts.dtype, device=verts.device)
    dist = big.scatter_reduce(0, pix, d, reduce="amin", include_self=True)
    # Outside: 0.5 at the outline falling to exactly 0 at ``margin`` (sigmoid rescaled so it stays continuous);
    # inside: the mirror image, 0.5 → 1.
    c = float(torch.sigmoid(torch.tensor(-m / sigma)))
    g = (0.5 * (torch.sigmoid(-dist / sigma) - c) / (0.5 - c)).clamp(min=0.0)
    inside = cover.reshape(-1)
    sil = torch.where(inside, 1.0 - g, g).view(B, h, w)
    return sil[0] if single else sil
