"""A limb the photo does not show takes its counterpart's colours (issue 15, wave 9): the far leg of a side view
(dev photo icon_923d65f7, a backflip) showed only slivers of the dark background along its outline and its shoe,
and its own profile turned the whole grey trouser leg black."""

from __future__ import annotations

import numpy as np
import pytest

from icon_engine.texture import PART_LEFT_LEG, PART_RIGHT_LEG, PART_TORSO, SEEN_ALPHA, unseen_side_fill
from icon_engine.texture.keeps import unshown_limb_keep

TOP, TROUSERS, SHOE, BACKGROUND = (np.array(c, dtype=np.float64) for c in
                                   ([200.0, 40.0, 40.0], [170.0, 170.0, 175.0], [30.0, 30.0, 30.0], [2.0, 2.0, 2.0]))


def _box(centre: tuple[float, float, float], half: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    import trimesh

    mesh = trimesh.creation.box(extents=2 * np.asarray(half))
    for _ in range(4):
        mesh = mesh.subdivide()
    return np.asarray(mesh.vertices) + np.asarray(centre), np.asarray(mesh.faces)


@pytest.fixture(scope="module")
def body():
    """A torso (1.0–1.6 m) over two legs (0–0.95 m, 10 cm apart), rest pose, +Z the front: vertices (N, 3), faces,
    parts (N,), and the photo colours the outfit has (top, grey trousers, black shoes below 8 cm)."""
    pieces = [(_box((0.0, 1.3, 0.0), (0.2, 0.3, 0.1)), PART_TORSO),
              (_box((0.1, 0.475, 0.0), (0.07, 0.475, 0.07)), PART_LEFT_LEG),
              (_box((-0.1, 0.475, 0.0), (0.07, 0.475, 0.07)), PART_RIGHT_LEG)]
    vertices, faces, parts, offset = [], [], [], 0
    for (v, f), part in pieces:
        vertices.append(v)
        faces.append(f + offset)
        parts.append(np.full(len(v), part))
        offset += len(v)
    v, parts = np.concatenate(vertices), np.concatenate(parts)
    colours = np.where((parts == PART_TORSO)[:, None], TOP, np.where((v[:, 1] < 0.08)[:, None], SHOE, TROUSERS))
    return v, np.concatenate(faces), parts, colours


def _fill(body, alpha: np.ndarray, photo: np.ndarray, rest_pose: bool = False) -> np.ndarray:
    """The fill of ``body``; ``rest_pose``: say so (the face points along +Z), as the pipeline's bake does."""
    v, f, parts, _ = body
    keep = unshown_limb_keep(parts, alpha)
    forward = np.array([0.0, 0.0, 1.0]) if rest_pose else None
    return unseen_side_fill(v, f, parts, np.where(keep, alpha, 0.0), photo, np.zeros(len(v)), face_forward=forward)[0]


def test_a_leg_shown_only_by_background_slivers_takes_the_other_legs_trousers(body):
    v, _, parts, colours = body
    alpha = np.where((v[:, 2] > 0.06) & (parts != PART_RIGHT_LEG), 1.0, 0.0)  # torso and left leg seen in front
    photo = colours.copy()
    right = np.nonzero(parts == PART_RIGHT_LEG)[0]
    sliver = right[(v[right, 0] < -0.165) & (v[right, 1] > 0.3) & (v[right, 1] < 0.45)]  # its outer outline
    assert 8 <= len(sliver) < 0.05 * len(right)
    alpha[sliver], photo[sliver] = 1.0, BACKGROUND  # the photo's dark doorway next to the fitted leg
    keep = unshown_limb_keep(parts, alpha)
    assert not keep[right].any() and keep[parts != PART_RIGHT_LEG].all()
    out = _fill(body, alpha, photo)
    trousers = right[(v[right, 1] > 0.15) & (v[right, 1] < 0.9)]
    assert np.abs(np.median(out[trousers], axis=0) - TROUSERS).max() < 15, np.median(out[trousers], axis=0)
    assert np.abs(out[sliver] - TROUSERS).max(axis=1).mean() < 30  # the slivers too
    shoe = right[v[right, 1] < 0.03]
    assert np.abs(np.median(out[shoe], axis=0) - SHOE).max() < 30, np.median(out[shoe], axis=0)


def test_a_leg_seen_only_at_its_shoe_keeps_the_shoe_and_takes_the_trousers_above(body):
    v, _, parts, colours = body
    seen = (v[:, 2] > 0.06) & (parts != PART_RIGHT_LEG)
    right = parts == PART_RIGHT_LEG
    seen |= right & (v[:, 1] < 0.075)  # the far leg's shoe shows below the near leg
    assert (seen[right]).mean() >= 0.05  # enough to count as shown: the gap along the leg decides
    alpha = np.where(seen, 1.0, 0.0)
    out = _fill(body, alpha, colours)
    thigh = np.nonzero(right & (v[:, 1] > 0.4) & (v[:, 1] < 0.9))[0]
    assert np.abs(np.median(out[thigh], axis=0) - TROUSERS).max() < 15, np.median(out[thigh], axis=0)
    assert alpha[thigh].max() <= SEEN_ALPHA
    shoe = np.nonzero(right & (v[:, 1] < 0.03))[0]
    assert np.abs(np.median(out[shoe], axis=0) - SHOE).max() < 15


def test_both_legs_seen_keep_their_own_colours(body):
    v, _, parts, colours = body
    photo = colours.copy()
    photo[parts == PART_RIGHT_LEG] = np.where((v[parts == PART_RIGHT_LEG, 1] < 0.08)[:, None], SHOE, BACKGROUND)
    alpha = np.where(v[:, 2] > 0.06, 1.0, 0.0)  # both legs shown from the front: black right trouser leg
    assert unshown_limb_keep(parts, alpha).all()
    out = _fill(body, alpha, photo)
    back = np.nonzero((parts == PART_RIGHT_LEG) & (v[:, 2] < -0.06) & (v[:, 1] > 0.2))[0]
    assert np.abs(np.median(out[back], axis=0) - BACKGROUND).max() < 15  # its own (black) trousers, not grey


def test_a_hidden_shoe_takes_the_other_shoe_not_the_trousers_above_it(body):
    """Dev photo icon_5a6a2596: the far foot hides behind the near shin, its own leg is seen down to the ankle;
    the leg's own profile stretched the trousers (the shin's skin there) over the foot: a bare foot beside a boot."""
    v, _, parts, colours = body
    right = parts == PART_RIGHT_LEG
    seen = (v[:, 2] > 0.06) & ~(right & (v[:, 1] < 0.1))  # everything's front but the right foot
    out = _fill(body, np.where(seen, 1.0, 0.0), colours)
    shoe = np.nonzero(right & (v[:, 1] < 0.03))[0]
    assert np.abs(np.median(out[shoe], axis=0) - SHOE).max() < 15, np.median(out[shoe], axis=0)
    shin = np.nonzero(right & (v[:, 2] < -0.06) & (v[:, 1] > 0.2) & (v[:, 1] < 0.6))[0]
    assert np.abs(np.median(out[shin], axis=0) - TROUSERS).max() < 15  # above the shoe, its own trousers


def test_legs_a_portrait_does_not_show_are_plain_trousers(body):
    """A portrait shows the top and no leg: both legs, and the torso's hidden hips below the legs' top, take the
    plain dark trousers of ``UNSEEN_LEGS_COLOUR`` instead of the top's colour spread down to the feet (a red top
    made red legs before wave 20). The top's own hidden back keeps the top."""
    from icon_engine.texture.fill import UNSEEN_LEGS_COLOUR

    v, f, parts, colours = body
    v = v.copy()
    torso = parts == PART_TORSO
    v[torso, 1] -= 0.1  # the torso reaches down to 0.9 m, below the legs' top (0.95 m): the hips
    alpha = np.where((v[:, 2] > 0.06) & torso & (v[:, 1] > 1.1), 1.0, 0.0)  # the frame shows the chest only
    out, stats = unseen_side_fill(v, f, parts, alpha, colours, np.zeros(len(v)))
    legs = ~torso
    assert np.abs(out[legs] - UNSEEN_LEGS_COLOUR).max() < 1.0
    hips = torso & (v[:, 1] < 0.93) & (alpha == 0)
    assert hips.sum() > 20 and np.abs(np.median(out[hips], axis=0) - UNSEEN_LEGS_COLOUR).max() < 10
    back = torso & (v[:, 2] < -0.06) & (v[:, 1] > 1.2)
    assert np.abs(np.median(out[back], axis=0) - TOP).max() < 10
    assert sorted(stats["unseen_legs"]) == ["left_leg", "right_leg"]


def test_hidden_hips_below_what_the_photo_shows_of_the_torso_take_the_legs_garment(body):
    """A seated person's lap (dev photo icon_8da7ceb9) or a jumper's crotch hides the hips: the torso's own profile
    carried the top's colour down to the crotch, a bodysuit's V along the legs' part boundary front and back
    (before wave 21). The hidden hips below the legs' top take the garment the upper thighs show at that height;
    the top's hidden back above them keeps the top."""
    v, f, parts, colours = body
    v = v.copy()
    torso = parts == PART_TORSO
    v[torso, 1] -= 0.1  # the torso reaches down to 0.9 m, below the legs' top (0.95 m): the hips
    front = v[:, 2] > 0.06
    alpha = np.where(front & ((torso & (v[:, 1] > 1.1)) | ~torso), 1.0, 0.0)  # the chest and the legs' fronts
    out, stats = unseen_side_fill(v, f, parts, alpha, colours, np.zeros(len(v)))
    hips = torso & (v[:, 1] < 0.93) & (alpha == 0)
    assert hips.sum() > 20 and np.abs(np.median(out[hips], axis=0) - TROUSERS).max() < 10, np.median(out[hips], 0)
    assert stats["hips_from_legs"] >= hips.sum()
    back = torso & (v[:, 2] < -0.06) & (v[:, 1] > 1.2)
    assert np.abs(np.median(out[back], axis=0) - TOP).max() < 10


SKIN, HAIR, SHORTS = np.array([190.0, 135.0, 100.0]), np.array([30.0, 25.0, 22.0]), np.array([25.0, 25.0, 30.0])
FORWARD = np.array([0.0, 0.0, 1.0])  # the rest pose's face direction (bake.REST_FORWARD)


def _shorts_scene(body, shorts: np.ndarray):
    """The body's torso lowered to the crotch at 0.85 m (the legs' top at 0.95 m: the hips), with a head, in shorts
    that rode up a raised thigh (dev photo icon_22097467): the photo (from the front) shows the top, the shorts'
    waistband on the torso (0.85–1.05 m) and their sides on the legs' tops (outer 3 cm, above 0.88 m), the thighs'
    bare skin in front up to the groin, the face's skin under hair. Returns (vertices, faces, parts, alpha, photo
    colours, the hidden seat: the back of the hips between the crotch and the legs' top)."""
    from icon_engine.texture import PART_HEAD

    v, f, parts, _ = body
    head_v, head_f = _box((0.0, 1.6, 0.0), (0.08, 0.11, 0.09))
    v = np.concatenate([v, head_v])
    f = np.concatenate([f, head_f + len(body[0])])
    parts = np.concatenate([parts, np.full(len(head_v), PART_HEAD)])
    torso, legs, head = parts == PART_TORSO, np.isin(parts, (PART_LEFT_LEG, PART_RIGHT_LEG)), parts == PART_HEAD
    v = v.copy()
    v[torso, 1] -= 0.15  # the torso 0.85–1.45 m
    v[head, 1] -= 0.1  # the head on it
    y = v[:, 1]
    colours = np.where(torso[:, None] & (y[:, None] > 1.05), TOP, SKIN)
    colours[torso & (y <= 1.05)] = shorts
    colours[legs & (y > 0.88) & (np.abs(v[:, 0]) > 0.14)] = shorts  # the shorts' sides on the legs' outer tops
    colours[legs & (y < 0.08)] = SHOE
    colours[head & (y > 1.58)] = HAIR
    front = v[:, 2] > 0.06
    alpha = np.where((front & ~(torso & (y < 0.95))) | (legs & (np.abs(v[:, 0]) > 0.16)), 1.0, 0.0)
    seat = (alpha == 0) & (v[:, 2] < -0.06) & (y > 0.86) & (y < 0.95) & (torso | legs)
    return v, f, parts, alpha, colours, seat


def test_the_hidden_seat_under_shorts_seen_at_the_hips_is_the_shorts_not_the_thighs_skin(body):
    """Shorts seen at the hips cover the seat: the hidden back between the crotch and the legs' top takes the
    shorts' colour (wave 23), not the thighs' skin that the profiles by height carry up from a raised thigh shown
    bare to the groin (dev photo icon_22097467's bare bottom under black shorts). The top's back keeps the top."""
    v, f, parts, alpha, colours, seat = _shorts_scene(body, SHORTS)
    assert seat.sum() > 20
    out, stats = unseen_side_fill(v, f, parts, alpha, colours, np.zeros(len(v)), face_forward=FORWARD)
    print("seat", np.median(out[seat], axis=0), stats.get("seat_vertices"))
    assert np.abs(np.median(out[seat], axis=0) - SHORTS).max() < 15
    assert stats["seat_vertices"] > 0
    back = (parts == PART_TORSO) & (v[:, 2] < -0.06) & (v[:, 1] > 1.2)
    assert np.abs(np.median(out[back], axis=0) - TOP).max() < 10


def test_a_seat_garment_the_colour_of_the_skin_is_left_to_the_profiles(body):
    """Trousers or shorts of about the skin's colour (dev photo icon_slack_trial2's khaki on brown skin) cannot be
    told from bare thighs: the seat keeps the profiles' colours (no seat garment)."""
    khaki = SKIN - np.array([20.0, 15.0, 20.0])
    v, f, parts, alpha, colours, seat = _shorts_scene(body, khaki)
    out, stats = unseen_side_fill(v, f, parts, alpha, colours, np.zeros(len(v)), face_forward=FORWARD)
    assert "seat_vertices" not in stats


def test_the_seat_rule_needs_the_face_seen(body, monkeypatch):
    """Without the face in the photo (a back view: the head's "skin" cluster is its hair) or without the rest pose
    (``face_forward`` None: heights in the photo's pose say nothing of the seat), no seat garment is looked for and
    the seat keeps its profiles."""
    import icon_engine.texture.fill as fill
    from icon_engine.texture import PART_HEAD

    calls = []
    real = fill._seat_garment
    monkeypatch.setattr(fill, "_seat_garment", lambda *a, **k: calls.append(1) or real(*a, **k))

    v, f, parts, alpha, colours, seat = _shorts_scene(body, SHORTS)
    head = parts == PART_HEAD
    back_of_head = head & (v[:, 2] < -0.06)
    no_face = np.where(head, back_of_head.astype(float), alpha)  # the head seen from behind only: hair
    hair = np.where(back_of_head[:, None], HAIR, colours)
    stats = unseen_side_fill(v, f, parts, no_face, hair, np.zeros(len(v)), face_forward=FORWARD)[1]
    assert "seat_vertices" not in stats
    stats = unseen_side_fill(v, f, parts, alpha, colours, np.zeros(len(v)))[1]
    assert "seat_vertices" not in stats and not calls
    unseen_side_fill(v, f, parts, alpha, colours, np.zeros(len(v)), face_forward=FORWARD)  # the face seen: looked for
    assert calls


def test_a_trouser_leg_in_shadow_takes_the_lit_legs_colour_on_its_hidden_side(body):
    """Wave 32 (``fill.level_counterparts``): a trouser leg the photo shows in shadow takes the lit leg's colour on
    its hidden side (rendered subject_100's dark right leg), not a bare leg beside it."""
    from icon_engine.texture.fill import level_counterparts

    v, f, parts, _ = body
    seen = v[:, 2] > 0.069  # the fronts: what the photo shows
    hidden = ~seen
    lit, shade = np.array([90.0, 110.0, 170.0]), np.array([50.0, 62.0, 100.0])  # one pair of jeans
    colours = np.where((parts == PART_RIGHT_LEG)[:, None], shade, lit)
    colours[parts == PART_TORSO] = TOP
    out, moved = level_counterparts(colours, hidden, seen, parts, v, height=1.6)
    back = hidden & (parts == PART_RIGHT_LEG) & (v[:, 2] < -0.069)  # the shaded leg's back, away from its front
    assert moved > 0
    assert np.abs(out[back] - lit).max() < 1.0  # the lit leg's colour
    assert np.array_equal(out[seen], colours[seen])  # what the photo shows keeps its colour
    assert np.array_equal(out[parts == PART_LEFT_LEG], colours[parts == PART_LEFT_LEG])  # the lit leg as it was
    assert np.array_equal(out[parts == PART_TORSO], colours[parts == PART_TORSO])
    # a bare leg beside a trouser leg (another hue) keeps its own colour
    skin = np.where((parts == PART_RIGHT_LEG)[:, None], [200.0, 150.0, 120.0], lit)
    out_skin, moved_skin = level_counterparts(skin, hidden, seen, parts, v, height=1.6)
    assert moved_skin == 0 and np.array_equal(out_skin, skin)


def test_the_hidden_hips_take_the_levelled_trousers_colour(body):
    """Wave 32 (``fill.level_hips``): the hidden hips, filled from both legs' samples (the shaded leg's too), take
    the trousers' colour at the legs' top after the legs are levelled; shorts of another colour keep theirs."""
    from icon_engine.texture.fill import level_hips

    v, f, parts, _ = body
    seen = v[:, 2] > 0.069
    hips = ~seen & (parts == PART_TORSO) & (v[:, 1] < 1.1)  # the torso's lowest 10 cm, hidden
    lit, pooled = np.array([90.0, 110.0, 170.0]), np.array([66.0, 80.0, 126.0])  # one pair of jeans
    colours = np.where(np.isin(parts, [PART_LEFT_LEG, PART_RIGHT_LEG])[:, None], lit, TOP)
    colours[hips] = pooled
    out, moved = level_hips(colours, hips, seen, parts, v, height=1.6)
    back = hips & (v[:, 2] < -0.069)  # the hips' back, away from the seen front
    assert moved > 0
    assert np.abs(out[back] - lit).max() < 1.0
    assert np.array_equal(out[~hips], colours[~hips])  # nothing else moves
    shorts = colours.copy()
    shorts[hips] = [30.0, 30.0, 30.0]  # black shorts over bare legs
    shorts[np.isin(parts, [PART_LEFT_LEG, PART_RIGHT_LEG])] = [200.0, 150.0, 120.0]
    out_shorts, moved_shorts = level_hips(shorts, hips, seen, parts, v, height=1.6)
    assert moved_shorts == 0 and np.array_equal(out_shorts, shorts)


def test_a_leg_the_photo_does_not_show_looks_like_the_other_leg_all_round(body):
    """Wave 33: a limb with no samples at all copies its counterpart's colours at its mirror image (dev photo
    icon_e1e7622a: the arm behind the back took the seen arm's lit-bicep profile, a pale pink arm in bands beside a
    tanned one): a knee patch the near leg shows in front is on the far leg's front too, not on its back."""
    v, _, parts, colours = body
    patch_colour = np.array([40.0, 120.0, 60.0])
    left, right = parts == PART_LEFT_LEG, parts == PART_RIGHT_LEG
    knee = (v[:, 1] > 0.45) & (v[:, 1] < 0.55)
    photo = colours.copy()
    photo[left & knee & (v[:, 2] > 0.06)] = patch_colour  # a patch on the near leg's knee, seen in front
    photo[right] = BACKGROUND  # the far leg's pixels show something else: never read
    alpha = np.where((v[:, 2] > 0.06) & ~right, 1.0, 0.0)
    out = _fill(body, alpha, photo, rest_pose=True)
    front, back = right & knee & (v[:, 2] > 0.065), right & knee & (v[:, 2] < -0.065)
    assert np.abs(np.median(out[front], axis=0) - patch_colour).max() < 15, np.median(out[front], axis=0)
    assert np.abs(np.median(out[back], axis=0) - TROUSERS).max() < 15, np.median(out[back], axis=0)
    thigh = right & (v[:, 1] > 0.65) & (v[:, 1] < 0.9)
    assert np.abs(np.median(out[thigh], axis=0) - TROUSERS).max() < 15
    # the near leg's filled back and the far leg's back are the same colours, mirrored
    mirror = np.abs(np.median(out[left & knee & (v[:, 2] < -0.065)], axis=0) - np.median(out[back], axis=0))
    assert mirror.max() < 1.0
    # a mesh not in the rest pose (no face direction given) keeps the counterpart's profile: its limbs need not be
    # mirror images of each other
    posed = _fill(body, alpha, photo)
    assert np.abs(np.median(posed[front], axis=0) - TROUSERS).max() < 15


def test_a_hidden_foot_looks_like_the_other_foot(body):
    """Wave 33: a foot the photo does not show below a shin it shows takes the other foot's colours at its mirror
    image (dev photo icon_5a6a2596: a navy blob of the boot's profile colour beside a white-and-blue boot), fully
    below the top of the leg's end band: a white stripe down the near shoe's front (too narrow for its profile) is
    on the far shoe's front too, mirrored; its heel is the near heel; the far shin's trousers above stay."""
    v, _, parts, colours = body
    stripe_colour = np.array([235.0, 235.0, 235.0])
    left, right = parts == PART_LEFT_LEG, parts == PART_RIGHT_LEG
    photo = colours.copy()
    stripe = (v[:, 1] < 0.065) & (v[:, 2] > 0.06) & (np.abs(np.abs(v[:, 0]) - 0.09) < 0.012)
    photo[left & stripe] = stripe_colour
    seen = (v[:, 2] > 0.06) & ~(right & (v[:, 1] < 0.15))  # the far foot hidden behind the near shin
    out = _fill(body, np.where(seen, 1.0, 0.0), photo, rest_pose=True)
    far_stripe = right & stripe & (v[:, 2] > 0.065)
    assert far_stripe.sum() >= 5
    assert np.abs(np.median(out[far_stripe], axis=0) - stripe_colour).max() < 15, np.median(out[far_stripe], axis=0)
    beside = right & (v[:, 1] < 0.065) & (v[:, 2] > 0.065) & (v[:, 0] > -0.06)  # the rest of its front: the shoe
    assert np.abs(np.median(out[beside], axis=0) - SHOE).max() < 15, np.median(out[beside], axis=0)
    heel = (v[:, 1] < 0.03) & (v[:, 2] < -0.065)  # the far heel is the near heel as its fill made it
    assert np.abs(np.median(out[right & heel], axis=0) - np.median(out[left & heel], axis=0)).max() < 1.0
    shin = right & (v[:, 1] > 0.2) & (v[:, 1] < 0.9)
    assert np.abs(np.median(out[shin], axis=0) - TROUSERS).max() < 15
    # without the rest pose the profile's colour: the shoe's, no stripe
    posed = _fill(body, np.where(seen, 1.0, 0.0), photo)
    assert np.abs(np.median(posed[far_stripe], axis=0) - SHOE).max() < 15
