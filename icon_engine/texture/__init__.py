"""Texturing the clothed surface from the photo: UV atlas, bake, fill of the hidden side, vertex colours.

Frames and units: vertices in the bundle world (SMPL-X frame, metres); the photo and the camera in processing
pixels (OpenCV camera, pixel (i, j) covers [i, i+1) × [j, j+1)); UVs per face corner in [0, 1] with the origin
at the bottom-left (Blender/OBJ), texel row ``r`` of the image covers v ∈ [1 − (r+1)/S, 1 − r/S).

Method (docs/texture_rig.md):

1. **Atlas.** ``xatlas`` with fast settings (one chart-growing iteration, random chart placement, 4×4 block
   alignment) packs the charts into one S × S atlas with a few texels of padding; meshes above
   :data:`XATLAS_MAX_FACES` get the faster projection atlas (:func:`projection_atlas`).
2. **Visibility.** A numpy z-buffer of the mesh seen by the photo's camera (perspective-correct depth). A
   surface point is visible when it is the nearest one at its pixel (within a tolerance) and inside the
   (slightly eroded) person mask; with ``vertex_parts``, also only where the pixel (and its neighbourhood of
   :data:`CONTACT_PIXELS`) shows its own part or one next to it on the mesh (a part touching another does not
   take its colour). Its photo weight ramps with the view angle, so grazing surfaces (which would smear) fade
   into the fill colour.
3. **Fill of the hidden side, per body part** (with ``vertex_parts``, e.g. from the skin weights): a hidden
   vertex takes its own part's garment colour at the same position along the part (measured in the rest pose
   when ``rest_vertices`` is given; the colour cluster that runs along the part wins over a print that fills one
   band: the back of a shirt gets the shirt, a heel the shoe), the back of the head the hair colour (clustered
   from the head's seen colours), and a band along the seen side's edge is blended harmonically on the part's
   own mesh graph (no seam, no colour from another part). A pair of limbs whose hidden sides show one garment
   takes the better lit one's colour on both (a trouser leg in the photo's shadow is not dark all round) and the
   hidden hips follow the legs' top, and a garment over two parts (a dress over the hips and the thighs) has the
   step where their fills meet faded into a gradient (:func:`~.fill.level_counterparts`, :func:`~.fill.level_hips`,
   :func:`~.fill.blend_part_seams`). A limb (or a foot) the photo does not show takes the other one's colours at
   its mirror image in the rest pose (:func:`~.fill.mirror_donors`). The legs' hidden texels add the photo's fine
   detail seen through the leg (stripes, denim).
   **Without parts** (mirroring through the body): a hidden vertex looks towards the camera through the body:
   the first front-facing surface in front of it along its pixel ray is the front of the same body part (the back of the
   torso sees the front of the torso, not the arm in front of it). If that surface is visible, the vertex takes
   that surface's colour, smoothed over the mesh first (no copied details: no face on the back of the head, and
   no colour bleeding from a neighbouring object as an image blur would). Vertices that get neither a photo
   nor a mirrored colour are filled by harmonic diffusion of the known colours over the mesh (Laplace equation
   on the surface), so there is no black and no seam.
4. **Bake.** Every texel covered by a face gets the photo colour of its 3-D point, blended by its photo weight
   with the barycentric fill colour of its face; islands are then dilated by a few texels so bilinear lookups
   across seams stay clean, and the remaining empty texels take the mean colour.
5. **Several photos** (``more_views``: the same mesh posed as in each other photo, with its photo, mask and
   camera). Every vertex and texel is sampled in every photo (visibility and view-angle ramp as in 2.) and takes the
   mean of the photos that see it, each weighted by its photo weight × (its quality / the best photo's quality) **
   :data:`BLEND_POWER`, quality = cos(view angle) × pixels per metre: the photo that sees a point best dominates and
   the weights stay continuous, so there is no cut where one photo takes over from another. Before blending, each
   photo's colours are mapped onto the first photo's exposure by a per-channel gain, solved jointly over every
   pair of photos from pairs of points both see (the same point where they overlap, the nearest seen point within
   :data:`EXPOSURE_RADIUS_M` across the seam where they do not: front and back photos) (:func:`exposure_gains`).
   Each other photo is read at its 2-D offset from the avatar's silhouette (:func:`silhouette_shift`). Only what
   no photo sees goes to the fill of 3.

Modules, in the order the bake uses them: :mod:`.parts` (body-part labels and part geometry), :mod:`.uv` (depth
layers and texels), :mod:`.atlas` (1.), :mod:`.sampling` (2. and 5.: a photo seeing the surface, several photos'
blend), :mod:`.exposure` (5.: gains between photos), :mod:`.keeps` (the limb rules on which samples a vertex keeps),
:mod:`.colour_stats` (clusters, medians, harmonic fill), :mod:`.fill` (3.), :mod:`.bake` (4. and the entry point
:func:`bake_texture`). The package exports the functions and classes other stages use and the part labels
(the keep rules and the helpers stay in their modules); each tuning constant lives in the module that uses it (set
it there: ``texture.fill.SHADOW_POWER``).
"""

from __future__ import annotations

from .atlas import projection_atlas, unwrap
from .bake import BakeDebug, Texture, bake_texture, render_textured
from .colour_stats import harmonic_fill
from .exposure import exposure_gains
from .fill import counterpart_limb_fill, unseen_side_fill
from .parts import (
    PART_HEAD,
    PART_LEFT_ARM,
    PART_LEFT_LEG,
    PART_NAMES,
    PART_RIGHT_ARM,
    PART_RIGHT_LEG,
    PART_TORSO,
    hand_labels_from_skin_weights,
    part_weights_from_skin_weights,
    parts_from_skin_weights,
)
from .sampling import SEEN_ALPHA, PhotoView, silhouette_shift
from .uv import DepthLayers, UVTexels, depth_layers, rasterize_uv, uv_texels

__all__ = [
    "PART_HEAD", "PART_LEFT_ARM", "PART_LEFT_LEG", "PART_NAMES", "PART_RIGHT_ARM", "PART_RIGHT_LEG", "PART_TORSO",
    "SEEN_ALPHA", "BakeDebug", "DepthLayers", "PhotoView", "Texture", "UVTexels", "bake_texture",
    "counterpart_limb_fill", "depth_layers", "exposure_gains", "hand_labels_from_skin_weights", "harmonic_fill",
    "part_weights_from_skin_weights", "parts_from_skin_weights", "projection_atlas", "rasterize_uv",
    "render_textured", "silhouette_shift", "unseen_side_fill", "unwrap", "uv_texels",
]
