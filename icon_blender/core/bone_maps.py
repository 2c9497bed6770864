"""Bone names of common game skeletons for the SMPL-X joints, so retargeting maps the avatar without manual work.

Pure data + one function. Targets:

- ``mixamo``: Adobe Mixamo's ``mixamorig:`` names (what Mixamo animations, Unity's and Blender's Mixamo tools
  and most retargeters expect).
- ``unreal``: the Unreal Engine Mannequin's names (``pelvis``, ``spine_01``, ``upperarm_l``, ``thumb_01_l`` ...),
  as the UE4 skeleton and the UE5 Manny's IK retargeter chains use them.
- ``unity``: Unity Humanoid's bone names (``Hips``, ``LeftUpperArm``, ``LeftThumbProximal`` ...), which the
  Humanoid avatar's automatic mapping recognises.
- ``smplx``: the SMPL-X names (no renaming).

The root bone keeps ``root`` in every map (Unreal's name; Unity and Mixamo ignore an extra parent). Joints a
target has no bone for (SMPL-X's jaw and eyes in Mixamo's) keep their SMPL-X names.
"""

from __future__ import annotations

from collections.abc import Iterable

#: SMPL-X body joint (without side) → name per target; "{S}" is the side as the target spells it.
_BODY: dict[str, dict[str, str]] = {
    "pelvis": {"mixamo": "Hips", "unreal": "pelvis", "unity": "Hips"},
    "spine1": {"mixamo": "Spine", "unreal": "spine_01", "unity": "Spine"},
    "spine2": {"mixamo": "Spine1", "unreal": "spine_02", "unity": "Chest"},
    "spine3": {"mixamo": "Spine2", "unreal": "spine_03", "unity": "UpperChest"},
    "neck": {"mixamo": "Neck", "unreal": "neck_01", "unity": "Neck"},
    "head": {"mixamo": "Head", "unreal": "head", "unity": "Head"},
    "jaw": {"unreal": "jaw", "unity": "Jaw"},
    "eye_smplhf": {"mixamo": "{S}Eye", "unreal": "eye_{s}", "unity": "{S}Eye"},
    "hip": {"mixamo": "{S}UpLeg", "unreal": "thigh_{s}", "unity": "{S}UpperLeg"},
    "knee": {"mixamo": "{S}Leg", "unreal": "calf_{s}", "unity": "{S}LowerLeg"},
    "ankle": {"mixamo": "{S}Foot", "unreal": "foot_{s}", "unity": "{S}Foot"},
    "foot": {"mixamo": "{S}ToeBase", "unreal": "ball_{s}", "unity": "{S}Toes"},
    "collar": {"mixamo": "{S}Shoulder", "unreal": "clavicle_{s}", "unity": "{S}Shoulder"},
    "shoulder": {"mixamo": "{S}Arm", "unreal": "upperarm_{s}", "unity": "{S}UpperArm"},
    "elbow": {"mixamo": "{S}ForeArm", "unreal": "lowerarm_{s}", "unity": "{S}LowerArm"},
    "wrist": {"mixamo": "{S}Hand", "unreal": "hand_{s}", "unity": "{S}Hand"},
}
_FINGERS = ("thumb", "index", "middle", "ring", "pinky")
_UNITY_SEGMENTS = ("Proximal", "Intermediate", "Distal")

TARGETS = ("smplx", "mixamo", "unreal", "unity")
ROOT = "root"


def _target_name(joint: str, target: str) -> str:
    """The target's name of one SMPL-X joint (its SMPL-X name when the target has none)."""
    side = ""
    base = joint
    for prefix in ("left_", "right_"):
        if joint.startswith(prefix):
            side, base = prefix[:-1], joint[len(prefix):]
    big, small = side.capitalize(), side[:1]
    finger = next((f for f in _FINGERS if base.startswith(f) and base[len(f):].isdigit()), None)
    if finger is not None:
        seg = int(base[len(finger):])
        if target == "mixamo":
            return f"mixamorig:{big}Hand{finger.capitalize()}{seg}"
        if target == "unreal":
            return f"{finger}_{seg:02d}_{small}"
        return f"{big}{finger.capitalize()}{_UNITY_SEGMENTS[seg - 1]}"
    pattern = _BODY.get(base, {}).get(target)
    if pattern is None:
        return joint
    name = pattern.replace("{S}", big).replace("{s}", small)
    return f"mixamorig:{name}" if target == "mixamo" else name


def bone_map(target: str, joints: Iterable[str]) -> dict[str, str]:
    """SMPL-X joint name → ``target``'s bone name for ``joints`` (and the root bone); unique names."""
    key = target.lower()
    if key not in TARGETS:
        raise ValueError(f"unknown bone names {target!r}; choose one of {', '.join(TARGETS)}")
    names = list(joints)
    mapping = {n: (n if key == "smplx" else _target_name(n, key)) for n in names}
    mapping[ROOT] = ROOT
    if len(set(mapping.values())) != len(mapping):
        raise ValueError(f"bone map {target!r} gives two joints the same name")
    return mapping
