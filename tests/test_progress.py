"""Progress protocol: stage fractions, overall fraction, JSON lines, terminal bar, cancellation."""

from __future__ import annotations

import io
import json

import pytest

from icon_engine.errors import Cancelled, EngineError
from icon_engine.progress import STAGES, CancelToken, ProgressReporter, TerminalBar, json_lines_sink


def test_overall_fraction_rises_monotonically_through_all_stages() -> None:
    events = []
    reporter = ProgressReporter("p.jpg", events.append)
    for stage in STAGES:
        reporter.stage(stage)
        for f in (0.25, 0.5, 1.0):
            reporter.update(f, f"{stage} {f}")
    timings = reporter.finish()
    overall = [e.overall for e in events]
    assert overall == sorted(overall)
    assert overall[0] == 0.0 and overall[-1] == pytest.approx(1.0)
    assert set(timings) == set(STAGES)
    assert all(0.0 <= e.fraction <= 1.0 for e in events)


def test_json_lines_protocol() -> None:
    stream = io.StringIO()
    reporter = ProgressReporter("p.jpg", json_lines_sink(stream))
    reporter.stage("fit", "Fitting")
    reporter.update(2.0, "clamped")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines[0] == {"event": "progress", "photo": "p.jpg", "stage": "fit", "fraction": 0.0,
                        "overall": pytest.approx(0.15), "message": "Fitting"}
    assert lines[1]["fraction"] == 1.0


def test_cancel_token_stops_at_the_next_update() -> None:
    token = CancelToken()
    reporter = ProgressReporter("p.jpg", None, token)
    reporter.stage("load")
    reporter.update(0.5)
    token.cancel()
    with pytest.raises(Cancelled) as info:
        reporter.update(0.6)
    assert info.value.exit_code == 130


def test_unknown_stage_and_error_codes_are_refused() -> None:
    with pytest.raises(ValueError):
        ProgressReporter("p").stage("nonsense")
    with pytest.raises(ValueError):
        EngineError("nonsense", "x")


def test_terminal_bar_writes_one_line_per_stage_when_not_a_tty() -> None:
    stream = io.StringIO()
    bar = TerminalBar(stream)
    reporter = ProgressReporter("photo.png", bar)
    reporter.stage("load")
    reporter.update(1.0)
    reporter.stage("detect")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 and "load" in lines[0] and "detect" in lines[1] and "[" in lines[0]
