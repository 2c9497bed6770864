"""Helpers shared by the trust-rule tests (engine, CLI, add-on): every file kind of a bundle and how to turn one
into a symbolic link to an outside file. stdlib only, so the add-on test environments can import it."""

from __future__ import annotations

from pathlib import Path

#: Every file kind of a bundle, by the name the writer gives it.
BUNDLE_FILES = ("bundle.json", "posed_mesh.ply", "body_mesh.ply", "rest_mesh.ply", "skin_weights.npy",
                "rest_joints.npy", "mask.png", "texture.png", "photo.jpg", "preview.png")

#: The reader's refusal of a link, after "<bundle>: <file> ".
LINK_MESSAGE = ("is a symbolic link; a bundle may hold only regular files (a link can pull a file from outside the "
                "bundle into your scene and exports)")


def file_label(name: str) -> str:
    """How the reader names the file ``name`` in messages."""
    return "bundle.json" if name == "bundle.json" else f"'{name}' ({Path(name).stem})"


def link_outside(bundle: Path, name: str) -> Path:
    """Replace ``bundle/name`` by a symbolic link to a copy of it outside the bundle (a valid file of the same
    kind: only the link may be refused). Returns the outside file."""
    outside = bundle.parent / f"outside-{name}"
    outside.write_bytes((bundle / name).read_bytes())
    (bundle / name).unlink()
    (bundle / name).symlink_to(outside)
    return outside
