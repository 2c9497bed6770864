"""Run-time state of the add-on's UI (module level, main thread only) and the timer that drives jobs."""

from __future__ import annotations

import sys
from pathlib import Path

import bpy
import bpy.utils.previews

from ..core import engine_proc as ep
from ..core import env_setup
from ..jobs import Reconstructions

PACKAGE = "icon_blender"  # set by register() to the add-on's real module name (bl_ext.<repo>.<id>)
TIMER_INTERVAL = 0.25

reconstructions: Reconstructions | None = None
setup_runner: env_setup.SetupRunner | None = None
doctor: list[tuple[str, str, bool]] = []
messages: list[tuple[str, str]] = []  # (level, text), newest last
previews = None  # bpy.utils.previews collection for the photo thumbnail


def prefs():
    """The add-on preferences, or None when the add-on was registered without Blender's add-on system."""
    addon = bpy.context.preferences.addons.get(PACKAGE)
    return addon.preferences if addon is not None else None


def user_dir(*parts: str) -> Path:
    """A writable folder for this add-on (``bpy.utils.extension_path_user``; a user-resource fallback for the
    legacy/source-checkout install)."""
    sub = "/".join(parts)
    try:
        return Path(bpy.utils.extension_path_user(PACKAGE, path=sub, create=True))
    except (ValueError, TypeError, AttributeError):
        base = Path(bpy.utils.user_resource("DATAFILES", path="icon_for_blender", create=True))
        path = base.joinpath(*parts)
        path.mkdir(parents=True, exist_ok=True)
        return path


def default_venv() -> Path:
    return user_dir("engine-env")


def engine_python() -> str:
    """The interpreter that runs the engine, per the preferences; raises ValueError with a fix when missing."""
    p = prefs()
    if p is not None and p.env_mode == "CUSTOM":
        python = bpy.path.abspath(p.python_path)
        if not python or not Path(python).is_file():
            raise ValueError("The engine's Python is not set or does not exist. In Preferences ▸ Add-ons ▸ ICON "
                             "for Blender, choose an existing Python or switch to the automatic environment.")
        return python
    python = env_setup.venv_python(default_venv())
    if not python.is_file():
        raise ValueError("The engine is not set up yet. Open Preferences ▸ Add-ons ▸ ICON for Blender and click "
                         "'Set up engine' (or point the add-on to an existing Python with the engine).")
    return str(python)


def default_base_python() -> str:
    """Blender's own Python when it can host the engine (Blender ≤ 5.0: Python 3.11), else empty."""
    return sys.executable if sys.version_info[:2] in env_setup.ENGINE_PYTHONS else ""


def get_reconstructions() -> Reconstructions:
    global reconstructions
    if reconstructions is None:
        reconstructions = Reconstructions(user_dir("results"))
    return reconstructions


def say(level: str, text: str) -> None:
    """Keep a message for the panel (and the console)."""
    messages.append((level, text))
    del messages[:-6]
    print(f"ICON for Blender: {level}: {text}")


def popup(title: str, lines: list[str], icon: str = "ERROR") -> None:
    """A small popup in Blender's window (ignored headless, where there is no window to show it in)."""
    wm = getattr(bpy.context, "window_manager", None)
    if wm is None or not len(wm.windows) or bpy.app.background:
        return

    def draw(menu, _context) -> None:
        for line in lines:
            menu.layout.label(text=line)

    try:
        with bpy.context.temp_override(window=wm.windows[0]):
            wm.popup_menu(draw, title=title, icon=icon)
    except (RuntimeError, TypeError):
        pass


def redraw() -> None:
    wm = getattr(bpy.context, "window_manager", None)
    if wm is None:
        return
    for window in wm.windows:
        for area in window.screen.areas:
            if area.type in ("VIEW_3D", "PREFERENCES"):
                area.tag_redraw()


def import_finished(finished) -> list:
    """Import the bundles of finished jobs into the current scene; report errors. Returns the imports."""
    from ..blender.importer import import_bundle
    from ..engine_link import BundleError

    results = []
    for item in finished:
        if item.cancelled:
            say("INFO", f"{item.job.photo}: cancelled")
        elif item.error:
            message, hint = item.error.get("message", ""), item.error.get("hint", "")
            say("ERROR", f"{item.job.photo}: {message} {hint}".strip())
            if item.job.log_path is not None:
                say("INFO", f"Engine log: {item.job.log_path}")
            popup(f"ICON: {item.job.photo}", [message, hint] if hint else [message])
        for path in item.bundles:
            try:
                res = import_bundle(path, bpy.context.scene)
            except (BundleError, RuntimeError, ValueError) as exc:
                say("ERROR", f"{item.job.photo}: the result could not be imported ({exc})")
                continue
            results.append(res)
            for w in item.job.warnings:
                say("WARNING", f"{item.job.photo}: {w}")
            say("INFO", f"{item.job.photo}: imported as '{res.collection.name}'")
    return results


def tick() -> float | None:
    """One step of the job timer: poll the engine, import finished results. Returns the next interval or None."""
    rec = reconstructions
    if rec is None:
        return None
    try:
        import_finished(rec.tick())
    except Exception as exc:  # never let the timer die silently
        say("ERROR", f"internal error while reading the engine: {exc}")
    redraw()
    return TIMER_INTERVAL if rec.active else None


def setup_tick() -> float | None:
    """Timer step of the engine set-up."""
    runner = setup_runner
    if runner is None:
        return None
    state = runner.poll()
    redraw()
    if state == "running":
        return 0.5
    say("INFO" if state == "done" else "ERROR", "Engine set-up finished." if state == "done" else runner.error)
    return None


def ensure_timer(func) -> None:
    if not bpy.app.timers.is_registered(func):
        bpy.app.timers.register(func, first_interval=TIMER_INTERVAL)


def kill_engines() -> None:
    """Stop engine and set-up processes (Blender quits or the add-on is disabled): no orphans keep running."""
    if reconstructions is not None:
        reconstructions.cancel(all_jobs=True)
    if setup_runner is not None and setup_runner.state == "running":
        setup_runner.cancel()


def reset() -> None:
    """Cancel running work and drop the state (unregister)."""
    global reconstructions, setup_runner, previews
    for func in (tick, setup_tick):
        if bpy.app.timers.is_registered(func):
            bpy.app.timers.unregister(func)
    kill_engines()
    reconstructions = setup_runner = None
    doctor.clear()
    messages.clear()
    if previews is not None:
        bpy.utils.previews.remove(previews)
        previews = None


def photo_icon(path: str) -> int:
    """Icon id of a thumbnail of ``path`` (0 when it cannot be shown)."""
    global previews
    if not path or not Path(path).is_file():
        return 0
    if previews is None:
        previews = bpy.utils.previews.new()
    item = previews.get(path) or previews.load(path, path, "IMAGE")
    return item.icon_id


def engine_env() -> dict[str, str]:
    from ..engine_link import engine_source_dir

    return ep.engine_env(engine_source_dir())
