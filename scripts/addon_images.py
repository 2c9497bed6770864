"""Render the add-on documentation's pictures headless (bpy + Workbench, no UI needed).

``.venv/bin/python scripts/addon_images.py BUNDLE_DIR OUT.png`` imports a result bundle as the add-on does and
writes one contact sheet: the photo | the avatar in the photo's pose seen through the imported camera, blended over
the photo | the rest pose standing on the floor, front | the same from the side. The viewport itself (panels,
bones) cannot be captured without a window; Workbench renders the scene headless.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _render(scene, path: Path) -> np.ndarray:
    from PIL import Image

    scene.render.filepath = str(path)
    import bpy

    bpy.ops.render.render(write_still=True)
    return np.asarray(Image.open(path).convert("RGBA"), dtype=np.float32) / 255.0


def _ortho_camera(scene, name: str, location, rotation, scale: float):
    import bpy

    cam = bpy.data.objects.new(name, bpy.data.cameras.new(name))
    cam.data.type = "ORTHO"
    cam.data.ortho_scale = scale
    cam.location, cam.rotation_euler = location, rotation
    scene.collection.objects.link(cam)
    return cam


def main(bundle: Path, out: Path, height_px: int = 480) -> Path:
    import bpy
    from PIL import Image

    from icon_blender.blender.importer import import_bundle
    from icon_blender.engine_link import read_bundle

    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    res = import_bundle(bundle, scene)
    scene.render.engine = "BLENDER_WORKBENCH"
    shading = scene.display.shading
    shading.light, shading.color_type = "STUDIO", "TEXTURE"
    scene.render.film_transparent = True
    tiles = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        photo = np.asarray(Image.open(read_bundle(bundle).file("photo")).convert("RGB"), dtype=np.float32) / 255.0
        scene.frame_set(1)
        posed = _render(scene, tmp / "posed.png")
        alpha = posed[..., 3:4] * 0.75
        tiles += [photo, posed[..., :3] * alpha + photo * (1 - alpha)]
        # the rest pose on a floor, front and side, orthographic, the origin under the feet
        res.armature.data.pose_position = "REST"
        floor = bpy.data.meshes.new("floor")  # 2 m × 2 m, centred on the origin (where the root bone is)
        floor.from_pydata([(-1, -1, 0), (1, -1, 0), (1, 1, 0), (-1, 1, 0)], [], [(0, 1, 2, 3)])
        grey = bpy.data.materials.new("floor")
        grey.diffuse_color = (0.55, 0.58, 0.62, 1.0)
        floor.materials.append(grey)
        scene.collection.objects.link(bpy.data.objects.new("floor", floor))
        scene.world = scene.world or bpy.data.worlds.new("world")
        scene.world.color = (0.9, 0.9, 0.9)
        scene.render.resolution_x, scene.render.resolution_y = 360, 480
        scene.render.film_transparent = False
        top = max(v.co.z for v in res.mesh.data.vertices)
        tilt = np.radians(12)  # looking slightly down, so the floor shows
        back, up = 6 * np.cos(tilt), top / 2 + 6 * np.sin(tilt)
        for name, loc, rot in (("front", (0, -back, up), (np.pi / 2 - tilt, 0, 0)),
                               ("side", (back, 0, up), (np.pi / 2 - tilt, 0, np.pi / 2))):
            scene.camera = _ortho_camera(scene, name, loc, rot, top * 1.25)
            tiles.append(_render(scene, tmp / f"{name}.png")[..., :3])
    h = height_px
    resized = [np.asarray(Image.fromarray((t * 255).astype(np.uint8)).resize(
        (round(t.shape[1] * h / t.shape[0]), h), Image.LANCZOS)) for t in tiles]
    sheet = np.concatenate(resized, axis=1)
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sheet).save(out, optimize=True)
    return out


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: python scripts/addon_images.py BUNDLE_DIR OUT.png")
    print(main(Path(sys.argv[1]), Path(sys.argv[2])))
