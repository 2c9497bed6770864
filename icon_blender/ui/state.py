"""Run-time state of the add-on's UI (module level, main thread only) and the timers that drive jobs.

Timers are registered ``persistent`` and a ``load_post`` handler re-arms them, so opening another .blend file
during a reconstruction or the engine set-up neither stops nor forgets the work: it goes on and its results are
imported into the file that is open when they arrive. A finished result waits while a render runs or the user
sculpts or paints, and is imported as one undo step ("Import ICON avatar") when the way is clear.
"""

from __future__ import annotations

import sys
from pathlib import Path

import bpy
import bpy.utils.previews
from bpy.app.handlers import persistent

from ..core import engine_proc as ep
from ..core import env_setup
from ..core.doctor_check import DoctorRun
from ..jobs import Reconstructions

PACKAGE = "icon_blender"  # set by register() to the add-on's real module name (bl_ext.<repo>.<id>)
TIMER_INTERVAL = 0.25

reconstructions: Reconstructions | None = None
setup_runner: env_setup.SetupRunner | None = None
doctor: list[tuple[str, str, bool]] = []
doctor_run: DoctorRun | None = None
waiting: list = []  # finished jobs (jobs.Finished) whose results wait for a render or sculpt/paint mode to end
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
    """The automatic engine environment: the preferences' folder, else a per-user folder shared by every Blender
    version that survives reinstalling the add-on (``env_setup.default_env_dir``)."""
    p = prefs()
    custom = bpy.path.abspath(p.env_dir) if p is not None and getattr(p, "env_dir", "") else ""
    return Path(custom) if custom else env_setup.default_env_dir()


def engine_python() -> str:
    """The interpreter that runs the engine, per the preferences; raises ValueError with a fix when missing or
    when the automatic environment's set-up was interrupted or is out of date."""
    p = prefs()
    if p is not None and p.env_mode == "CUSTOM":
        python = bpy.path.abspath(p.python_path)
        if not python or not Path(python).is_file():
            raise ValueError("The engine's Python is not set or does not exist. In Preferences ▸ Add-ons ▸ ICON "
                             "for Blender, choose an existing Python or switch to the automatic environment.")
        return python
    from ..engine_link import engine_requirements

    venv = default_venv()
    status = env_setup.env_status(venv, engine_requirements())
    if status == env_setup.ENV_MISSING:
        raise ValueError("The engine is not set up yet. Open Preferences ▸ Add-ons ▸ ICON for Blender and click "
                         "'Set up engine' (or point the add-on to an existing Python with the engine).")
    if status == env_setup.ENV_INCOMPLETE:
        raise ValueError(f"The engine set-up in {venv} did not finish (interrupted?). Click 'Set up engine' in the "
                         "add-on preferences to repair it.")
    if status == env_setup.ENV_OUTDATED:
        raise ValueError("This version of the add-on needs other engine packages than the ones installed. Click "
                         "'Set up engine' in the add-on preferences to update the environment.")
    return str(env_setup.venv_python(venv))


def default_base_python() -> str:
    """Blender's own Python when it can host the engine (Blender ≤ 5.0: Python 3.11), else empty."""
    return sys.executable if sys.version_info[:2] in env_setup.ENGINE_PYTHONS else ""


def results_dir() -> Path:
    """The output folder: the preferences' one, else ``<add-on user folder>/results``."""
    p = prefs()
    custom = bpy.path.abspath(p.results_dir) if p is not None and getattr(p, "results_dir", "") else ""
    if custom:
        Path(custom).mkdir(parents=True, exist_ok=True)
        return Path(custom)
    return user_dir("results")


def get_reconstructions() -> Reconstructions:
    """The job queue, writing to the current output folder (a changed folder applies once the queue is idle)."""
    global reconstructions
    wanted = results_dir()
    p = prefs()
    warm = bool(getattr(p, "warm_engine", True)) if p is not None else True
    if reconstructions is None or (
            (reconstructions.results_dir != wanted or reconstructions.warm != warm) and not reconstructions.active):
        reconstructions = Reconstructions(wanted, warm=warm)
    return reconstructions


def latest_log() -> Path | None:
    """The newest engine log of this session's jobs, else the newest in the output folder, else the set-up's."""
    rec = reconstructions
    if rec is not None:
        logs = [j.log_path for j in rec.queue.jobs if j.log_path is not None and j.log_path.is_file()]
        if logs:
            return logs[-1]
    found = sorted((results_dir() / "logs").glob("*.log"), key=lambda p: p.stat().st_mtime)
    if found:
        return found[-1]
    if setup_runner is not None and setup_runner.log_path.is_file():
        return setup_runner.log_path
    return None


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


def import_blocker() -> str:
    """What keeps a result from being imported now ("the render", "Sculpt mode", ...), or "" when nothing."""
    is_job_running = getattr(bpy.app, "is_job_running", None)
    if is_job_running is not None and any(is_job_running(kind) for kind in ("RENDER", "RENDER_PREVIEW",
                                                                            "OBJECT_BAKE")):
        return "the render"
    mode = bpy.context.mode
    if mode.startswith(("SCULPT", "PAINT")) or "GPENCIL" in mode or "GREASE_PENCIL" in mode:
        return f"{mode.replace('_', ' ').title()} mode"
    return ""


def push_undo(message: str) -> None:
    """One undo step for what was just done (a timer runs outside any operator, so nothing pushes it for us)."""
    from ..blender.importer import window_context

    try:
        with window_context():
            bpy.ops.ed.undo_push(message=message)
    except RuntimeError as exc:  # no window (e.g. some headless uses): nothing to undo into
        print(f"ICON for Blender: no undo step ({exc})")


def import_finished(finished) -> list:
    """Import the bundles of finished jobs into the current scene; report errors. Returns the imports.

    Results that arrive while a render runs or sculpt/paint mode is on wait in :data:`waiting` (the timer keeps
    calling); each import is one undo step and leaves the new avatar selected and active.
    """
    blocker = import_blocker()
    if blocker:
        for item in finished:
            if item.bundles and not any(item is w for w in waiting):
                say("INFO", f"{item.job.photo}: ready; it is imported when {blocker} ends")
        waiting.extend(f for f in finished if f.bundles)
        finished = [f for f in finished if not f.bundles]
    elif waiting:
        finished = [*waiting, *finished]
        waiting.clear()
    return _import_now(finished)


def _import_now(finished) -> list:
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
            push_undo(f"Import ICON avatar {res.collection.name}")
            for w in item.job.warnings:
                say("WARNING", f"{item.job.photo}: {w}")
            say("INFO", f"{item.job.photo}: imported as '{res.collection.name}'")
    return results


def status_text() -> str | None:
    """The status bar's line while reconstructions run (None clears it)."""
    rec = reconstructions
    if rec is None or not rec.active:
        return None
    job = rec.current
    queued = len(rec.pending)
    text = f"ICON: {job.photo} {job.overall:.0%} {job.text}" if job is not None else "ICON: starting"
    return text + (f" (+{queued} queued)" if queued else "")


def show_status(text: str | None) -> None:
    """Put ``text`` in the status bar of every window (None clears it)."""
    wm = getattr(bpy.context, "window_manager", None)
    if wm is None or bpy.app.background:
        return
    for window in wm.windows:
        try:
            window.workspace.status_text_set(text)
        except (AttributeError, RuntimeError, TypeError):
            pass


def tick() -> float | None:
    """One step of the job timer: poll the engine, import finished results. Returns the next interval or None."""
    rec = reconstructions
    if rec is None:
        return None
    try:
        import_finished(rec.tick())
    except Exception as exc:  # never let the timer die silently
        say("ERROR", f"internal error while reading the engine: {exc}")
    show_status(status_text())
    redraw()
    return TIMER_INTERVAL if rec.active or waiting else None


def doctor_tick() -> float | None:
    """Timer step of the background engine check: shows its lines when it ends."""
    run = doctor_run
    if run is None:
        return None
    lines = run.poll()
    if lines is None:
        return 0.5
    doctor[:] = lines
    ok = all(line[2] for line in lines)
    say("INFO" if ok else "WARNING", "Engine check: " + ("all good" if ok else "problems, see the preferences"))
    redraw()
    return None


@persistent
def on_load_post(*_args) -> None:
    """After a .blend file is loaded: re-arm the timers of running work and say what goes on."""
    rec = reconstructions
    if rec is not None and (rec.active or waiting):
        ensure_timer(tick)
        n = sum(not job.finished for job in rec.queue.jobs) + len(waiting)
        say("INFO", f"{n} reconstruction(s) continue after loading the file; results import into this file")
    if setup_runner is not None and setup_runner.state == "running":
        ensure_timer(setup_tick)
        say("INFO", "The engine set-up continues after loading the file")
    if doctor_run is not None and doctor_run.running:
        ensure_timer(doctor_tick)


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
    """Register ``func`` as a timer that survives loading another file (once)."""
    if not bpy.app.timers.is_registered(func):
        bpy.app.timers.register(func, first_interval=TIMER_INTERVAL, persistent=True)


def kill_engines() -> None:
    """Stop engine and set-up processes (Blender quits or the add-on is disabled): no orphans keep running."""
    if reconstructions is not None:
        reconstructions.cancel(all_jobs=True)
    ep.close_shared_server()  # the warm engine: its input closes, it ends
    if setup_runner is not None and setup_runner.state == "running":
        setup_runner.cancel()


def reset() -> None:
    """Cancel running work and drop the state (unregister)."""
    global reconstructions, setup_runner, previews, doctor_run
    for func in (tick, setup_tick, doctor_tick):
        if bpy.app.timers.is_registered(func):
            bpy.app.timers.unregister(func)
    kill_engines()
    reconstructions = setup_runner = doctor_run = None
    waiting.clear()
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
