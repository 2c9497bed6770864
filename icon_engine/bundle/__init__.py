"""The result bundle: a versioned folder of meshes, arrays and ``bundle.json``. Torch-free (numpy + stdlib),
so the Blender add-on can import it. Format: docs/bundle.md.
"""

from .format import FORMAT_NAME, FORMAT_VERSION
from .meshio import MeshFormatError, TriMesh, read_ply, write_ply
from .reader import Bundle, BundleError, PhotoView, read_bundle
from .skeleton import JOINT_NAMES, NUM_JOINTS, PARENTS, axis_angle_to_matrix, forward_kinematics, skin_vertices
from .writer import BundleContent, write_bundle

__all__ = [
    "Bundle", "BundleContent", "BundleError", "FORMAT_NAME", "FORMAT_VERSION", "JOINT_NAMES", "MeshFormatError",
    "NUM_JOINTS", "PARENTS", "PhotoView", "TriMesh", "axis_angle_to_matrix", "forward_kinematics", "read_bundle",
    "read_ply", "skin_vertices", "write_bundle", "write_ply",
]  # fmt: skip
