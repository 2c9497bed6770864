"""Binary PLY reading and writing for triangle meshes, numpy only (torch-free, trimesh-compatible).

Layout written: ``vertex`` with float32 ``x y z``, optional uchar ``red green blue``; ``face`` with
``list uchar int vertex_indices`` and optional ``list uchar float texcoord`` (per-corner UVs, 6 floats per
triangle, MeshLab's convention; UV origin bottom-left as in Blender and OBJ).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}  # fmt: skip


class MeshFormatError(ValueError):
    """A mesh file that is not a readable triangle PLY."""


@dataclass
class TriMesh:
    """A triangle mesh: ``vertices`` (N, 3) float, ``faces`` (M, 3) int; optional per-vertex ``colors``
    (N, 3) uint8 and per-corner ``uv`` (M, 3, 2) float."""

    vertices: np.ndarray
    faces: np.ndarray
    colors: np.ndarray | None = None
    uv: np.ndarray | None = None


def write_ply(path: str | Path, mesh: TriMesh) -> None:
    """Write ``mesh`` as binary little-endian PLY."""
    v = np.ascontiguousarray(mesh.vertices, dtype="<f4").reshape(-1, 3)
    f = np.ascontiguousarray(mesh.faces, dtype="<i4").reshape(-1, 3)
    vfields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    if mesh.colors is not None:
        vfields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    vrec = np.empty(len(v), dtype=vfields)
    vrec["x"], vrec["y"], vrec["z"] = v[:, 0], v[:, 1], v[:, 2]
    if mesh.colors is not None:
        c = np.asarray(mesh.colors, dtype=np.uint8).reshape(-1, 3)
        vrec["red"], vrec["green"], vrec["blue"] = c[:, 0], c[:, 1], c[:, 2]
    ffields = [("n", "u1"), ("idx", "<i4", (3,))]
    if mesh.uv is not None:
        ffields += [("nt", "u1"), ("uv", "<f4", (6,))]
    frec = np.empty(len(f), dtype=ffields)
    frec["n"] = 3
    frec["idx"] = f
    if mesh.uv is not None:
        frec["nt"] = 6
        frec["uv"] = np.asarray(mesh.uv, dtype="<f4").reshape(-1, 6)
    header = ["ply", "format binary_little_endian 1.0", "comment written by icon_engine",
              f"element vertex {len(v)}", "property float x", "property float y", "property float z"]
    if mesh.colors is not None:
        header += ["property uchar red", "property uchar green", "property uchar blue"]
    header += [f"element face {len(f)}", "property list uchar int vertex_indices"]
    if mesh.uv is not None:
        header += ["property list uchar float texcoord"]
    header += ["end_header"]
    with open(path, "wb") as fh:
        fh.write(("\n".join(header) + "\n").encode("ascii"))
        fh.write(vrec.tobytes())
        fh.write(frec.tobytes())


def read_ply(path: str | Path) -> TriMesh:
    """Read a binary little-endian triangle PLY (as written by :func:`write_ply` or most tools)."""
    return parse_ply(Path(path).read_bytes(), path)


def parse_ply(data: bytes, path: str | Path = "<bytes>") -> TriMesh:
    """:func:`read_ply` of a file's bytes already read; ``path`` names it in messages."""
    end = data.find(b"end_header")
    if not data.startswith(b"ply") or end < 0:
        raise MeshFormatError(f"{path}: not a PLY file")
    body = end + len(b"end_header")
    body += 2 if data[body : body + 2] == b"\r\n" else 1
    lines = data[:end].decode("ascii", "replace").splitlines()
    if "format binary_little_endian 1.0" not in [ln.strip() for ln in lines]:
        raise MeshFormatError(f"{path}: only binary little-endian PLY is supported")
    elements: list[tuple[str, int, list[tuple]]] = []
    for ln in lines:
        parts = ln.split()
        if not parts:
            continue
        if parts[0] == "element":
            elements.append((parts[1], int(parts[2]), []))
        elif parts[0] == "property" and elements:
            if parts[1] == "list":
                elements[-1][2].append(("list", parts[4], _PLY_TYPES[parts[2]], _PLY_TYPES[parts[3]]))
            else:
                elements[-1][2].append(("scalar", parts[2], _PLY_TYPES[parts[1]]))
    offset = body
    out: dict[str, np.ndarray] = {}
    uv = None
    for name, count, props in elements:
        if all(p[0] == "scalar" for p in props):
            dtype = np.dtype([(p[1], "<" + p[2]) for p in props])
            need = dtype.itemsize * count
            if offset + need > len(data):
                raise MeshFormatError(f"{path}: truncated ({name} data missing)")
            rec = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
            offset += need
            out[name] = rec
        else:  # face-like element with list properties: triangles only, fixed list lengths
            fields = []
            for p in props:
                if p[0] == "list":
                    n_items = 3 if p[1] == "vertex_indices" or p[1] == "vertex_index" else 6
                    fields += [(p[1] + "_n", "<" + p[2]), (p[1], "<" + p[3], (n_items,))]
                else:
                    fields.append((p[1], "<" + p[2]))
            dtype = np.dtype(fields)
            need = dtype.itemsize * count
            if offset + need > len(data):
                raise MeshFormatError(f"{path}: truncated ({name} data missing)")
            rec = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
            offset += need
            for p in props:
                if p[0] == "list" and count and not np.all(rec[p[1] + "_n"] == rec.dtype[p[1]].shape[0]):
                    raise MeshFormatError(f"{path}: only triangle meshes are supported")
            out[name] = rec
    if "vertex" not in out or "face" not in out:
        raise MeshFormatError(f"{path}: PLY without vertex or face element")
    vrec, frec = out["vertex"], out["face"]
    vertices = np.stack([vrec["x"], vrec["y"], vrec["z"]], axis=1).astype(np.float64)
    key = "vertex_indices" if "vertex_indices" in frec.dtype.names else "vertex_index"
    faces = np.asarray(frec[key], dtype=np.int64).reshape(-1, 3)
    colors = None
    if "red" in vrec.dtype.names:
        colors = np.stack([vrec["red"], vrec["green"], vrec["blue"]], axis=1).astype(np.uint8)
    if "texcoord" in frec.dtype.names:
        uv = np.asarray(frec["texcoord"], dtype=np.float64).reshape(-1, 3, 2)
    if len(faces) and (faces.min() < 0 or faces.max() >= len(vertices)):
        raise MeshFormatError(f"{path}: face indices out of range")
    return TriMesh(vertices, faces, colors, uv)
