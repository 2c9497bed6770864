"""The add-on's user interface: preferences, scene settings, operators and the ICON sidebar tab."""

from __future__ import annotations

import atexit

from . import operators, panel, prefs, props, state


def register(package: str) -> None:
    state.PACKAGE = package
    atexit.register(state.kill_engines)  # Blender quitting does not unregister add-ons
    prefs.register(package)
    props.register()
    operators.register()
    panel.register()


def unregister() -> None:
    atexit.unregister(state.kill_engines)
    state.reset()
    panel.unregister()
    operators.unregister()
    props.unregister()
    prefs.unregister()
