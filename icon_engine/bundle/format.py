"""Constants of the bundle format (see docs/bundle.md)."""

FORMAT_NAME = "icon-blender-bundle"
FORMAT_VERSION = 2
#: The version of a bundle that carries pose correctives (its posed mesh includes them: a version 2 reader
#: would pose the avatar without them). Bundles without correctives stay version 2.
CORRECTIVES_VERSION = 3
#: Versions this reader understands (2 adds the optional ``subject`` block of a several-photo avatar, 3 pose
#: correctives).
SUPPORTED_VERSIONS = (1, 2, 3)

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
    "corrective_offsets": "corrective_offsets.npy",
}
