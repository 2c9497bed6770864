"""The add-on's user interface: preferences, scene settings, operators and the ICON sidebar tab."""

from __future__ import annotations

import atexit

import bpy

from . import operators, panel, prefs, props, state, video_motion


def register(package: str) -> None:
    state.PACKAGE = package
    atexit.register(state.kill_engines)  # Blender quitting does not unregister add-ons
    prefs.register(package)
    props.register()
    operators.register()
    panel.register()
    if state.on_load_post not in bpy.app.handlers.load_post:
        bpy.app.handlers.load_post.append(state.on_load_post)
    video_motion.register()  # Motion from video (issue 14): its own operators and sub-panel


def unregister() -> None:
    if state.on_load_post in bpy.app.handlers.load_post:
        bpy.app.handlers.load_post.remove(state.on_load_post)
    atexit.unregister(state.kill_engines)
    state.reset()
    video_motion.unregister()
    panel.unregister()
    operators.unregister()
    props.unregister()
    prefs.unregister()
