"""Errors the engine reports to users: a code, a message naming the problem and a hint naming the fix.

Every error a user can cause is an :class:`EngineError`. The CLI maps its ``code`` to an exit status
(:data:`EXIT_CODES`) and prints ``message`` and ``hint``; with ``--progress json`` it emits them as an
``{"event": "error", ...}`` line. This module is torch-free.
"""

from __future__ import annotations

#: Exit statuses of ``python -m icon_engine`` (documented in README.md and docs/cli.md).
EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_BAD_INPUT = 3
EXIT_NO_PERSON = 4
EXIT_MODEL_FILES = 5
EXIT_OUTPUT = 6
EXIT_BATCH_FAILED = 7  # batch: it ran, and at least one photo failed (see DIR/batch.jsonl)
EXIT_CANCELLED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: the reader of stdout went away (``… | head``); nothing more to say

#: Error code → exit status. Codes are stable strings the add-on and scripts may match on.
EXIT_CODES: dict[str, int] = {
    "internal": EXIT_INTERNAL,
    "usage": EXIT_USAGE,
    "bad_option": EXIT_USAGE,
    "photo_missing": EXIT_BAD_INPUT,
    "bad_image": EXIT_BAD_INPUT,
    "image_too_small": EXIT_BAD_INPUT,
    "image_too_large": EXIT_BAD_INPUT,
    "bad_bundle": EXIT_BAD_INPUT,
    "bad_motion": EXIT_BAD_INPUT,
    "bad_video": EXIT_BAD_INPUT,
    "subject_mismatch": EXIT_BAD_INPUT,
    "no_person": EXIT_NO_PERSON,
    "person_index": EXIT_NO_PERSON,
    "body_model": EXIT_MODEL_FILES,
    "icon_data": EXIT_MODEL_FILES,
    "device": EXIT_MODEL_FILES,
    "output": EXIT_OUTPUT,
    "cancelled": EXIT_CANCELLED,
}


class EngineError(Exception):
    """A problem the user can fix. ``code`` is one of :data:`EXIT_CODES`."""

    def __init__(self, code: str, message: str, hint: str = "") -> None:
        super().__init__(message)
        if code not in EXIT_CODES:
            raise ValueError(f"unknown error code {code!r}")
        self.code = code
        self.message = message
        self.hint = hint

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.code]

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message, "hint": self.hint}

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class Cancelled(EngineError):
    """Raised at the next checkpoint after a :class:`~icon_engine.progress.CancelToken` was set."""

    def __init__(self) -> None:
        super().__init__("cancelled", "Reconstruction cancelled.", "")
