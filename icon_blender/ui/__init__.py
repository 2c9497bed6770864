"""The add-on's user interface: preferences, scene settings, operators and the ICON sidebar tab."""

from __future__ import annotations

from . import operators, panel, prefs, props, state


def register(package: str) -> None:
    state.PACKAGE = package
    prefs.register(package)
    props.register()
    operators.register()
    panel.register()


def unregister() -> None:
    state.reset()
    panel.unregister()
    operators.unregister()
    props.unregister()
    prefs.unregister()
