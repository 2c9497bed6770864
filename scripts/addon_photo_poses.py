"""Render every photo pose of an avatar made from several photos through that photo's camera, over the photo.

``.venv/bin/python scripts/addon_photo_poses.py BUNDLE_DIR PHOTO,PHOTO,... OUT.png`` imports the bundle as the
add-on does, shows each photo pose (``show_photo_pose``: its action, its camera, its render size), renders it with
Workbench and writes one row: per photo, the photo | the avatar in that photo's pose blended over it. The photos
are the inputs of the run, matched to the poses by file name (the bundle stores only the first photo).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(bundle: Path, photos: list[Path], out: Path) -> Path:
    import bpy
    from PIL import Image

    from icon_blender.blender.importer import import_bundle, photo_pose_names, show_photo_pose

    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    res = import_bundle(bundle, scene)
    scene.render.engine = "BLENDER_WORKBENCH"
    scene.display.shading.light, scene.display.shading.color_type = "STUDIO", "MATERIAL"
    scene.render.film_transparent = True
    tiles = []
    with tempfile.TemporaryDirectory() as tmp:
        for k, (label, _, _) in enumerate(photo_pose_names(res.armature)):
            show_photo_pose(res.armature, k, scene)
            scene.render.filepath = str(Path(tmp) / f"pose{k}.png")
            bpy.ops.render.render(write_still=True)
            render = np.asarray(Image.open(scene.render.filepath).convert("RGBA"), np.float32) / 255.0
            photo = np.asarray(Image.open(next(p for p in photos if p.name == label)).convert("RGB"),
                               np.float32) / 255.0
            alpha = render[..., 3:] * 0.6
            tiles.append(np.concatenate([photo, photo * (1 - alpha) + render[..., :3] * alpha], axis=1))
    Image.fromarray((np.concatenate(tiles, axis=1) * 255).astype(np.uint8)).save(out)
    return out


if __name__ == "__main__":
    print(main(Path(sys.argv[1]), [Path(p) for p in sys.argv[2].split(",")], Path(sys.argv[3])))
