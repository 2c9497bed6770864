"""Shared geometry of the engine: one home for each piece of maths that several stages use.

- :mod:`.rotations` — axis-angle, rotation matrices and quaternions (numpy, torch-free: the add-on imports it).
- :mod:`.skinning` — forward kinematics and linear blend skinning of the SMPL-X skeleton (numpy, torch-free).
- :mod:`.torch_skinning` — the same kinematics and skinning in torch, batched and differentiable (body model,
  fit).
- :mod:`.raster` — the one triangle rasteriser (torch, any device): hard z-buffer, fragments for depth peeling
  and UV baking, differentiable soft silhouette, vertex visibility (OpenCV camera frame, pixels).
- :mod:`.normals` — vertex and face normals, signed volume, outward orientation.
- :mod:`.closest` — closest points on triangles and meshes, signed distance (:class:`~.closest.MeshQuery`).
- :mod:`.barycentric` — values at points inside faces: the barycentric blend of the corners' per-vertex values
  (:func:`~.barycentric.barycentric_blend`; numpy, torch-free).
- :mod:`.lengths` — Euclidean lengths of many short vectors, the bits of ``np.linalg.norm(x, axis=-1)`` faster
  (:func:`~.lengths.lengths`; numpy, torch-free).
- :mod:`.torch_closest` — the same mesh query in torch on any device (:class:`~.torch_closest.TorchMeshQuery`).
- :mod:`.device` — what runs where under ``--device``: :func:`~.device.mesh_query` (numpy on the CPU, torch on a
  GPU) and :func:`~.device.on_device` (rasteriser inputs on the device).
- :mod:`.image_shift` — a mask's outline and the integer 2-D shift that lays one outline onto another (pixels).
- :mod:`.frame` — the photo's frame: points beyond which edge, how far, the edges a person cut by it goes on
  beyond, and the nearest point inside (pixels).
- :mod:`.image_fields` — fields over an image: distance to a mask's zero pixels, a mask's signed distance, a
  Gaussian blur, bilinear samples at continuous pixel positions (pixels).
- :mod:`.laplacian` — the mesh edge graph, uniform Laplacian, Laplacian/Taubin smoothing (numpy) and the torch
  Laplacian term.
- :mod:`.decimate` — quadric decimation that keeps a watertight mesh watertight, with its topology checks.
- :mod:`.implicit` — an implicit function on a node grid: coarse-to-fine evaluation near its zero level, marching
  cubes of that level, the largest component (the clothed surface and the canonical avatar).

Frames: the SMPL-X model frame (Y-up, a body with zero global orientation faces +Z, its left is +X, metres).
A pose is one axis-angle vector per joint, relative to the parent joint (SMPL-X convention). Modules that take
any mesh (normals, closest, laplacian, decimate) keep the caller's frame and units.
"""
