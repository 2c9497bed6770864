"""Constants of the bundle format (see docs/bundle.md)."""

FORMAT_NAME = "icon-blender-bundle"
FORMAT_VERSION = 2
#: Versions this reader understands (2 adds the optional ``subject`` block of a several-photo avatar).
SUPPORTED_VERSIONS = (1, 2)

#: Files every bundle has (key in ``bundle.json["files"]`` → default file name).
REQUIRED_FILES = {
    "posed_mesh": "posed_mesh.ply",
    "body_mesh": "body_mesh.ply",
    "rest_mesh": "rest_mesh.ply",
    "skin_weights": "skin_weights.npy",
    "rest_joints": "rest_joints.npy",
    "mask": "mask.png",
}
#: Files a bundle may have.
OPTIONAL_FILES = {
    "texture": "texture.png",
    "photo": "photo.jpg",
}
