"""The early stop of a stage whose output the validator cannot keep up with, on a real file."""

from __future__ import annotations

import json
import time
from pathlib import Path

from scaleup_ci.runner import StageSpec, _backlog_too_late, _OutputFollower
from scaleup_ci.validate import RecordValidator


def _spec(tmp_path: Path, out: Path, finish_by: float) -> StageSpec:
    return StageSpec(
        name="max", n=100_000, command="true", shell=False, cwd=tmp_path, stage_dir=tmp_path,
        input_path=tmp_path / "in.jsonl", output_path=out, full_path=tmp_path / "in.jsonl",
        base_env={}, kill_at=finish_by, grace=0.5, allow_partial=True, finish_by=finish_by,
        validator=RecordValidator({"type": "object", "required": ["id"]}))


def _follower_with_backlog(tmp_path: Path, finish_by: float) -> tuple[_OutputFollower, StageSpec]:
    out = tmp_path / "output.jsonl"
    pad = "x" * 100_000
    with out.open("w") as fh:  # 40 MB: one bounded poll validates 16 MiB of it
        for i in range(400):
            fh.write(json.dumps({"id": i, "pad": pad}) + "\n")
    spec = _spec(tmp_path, out, finish_by)
    follower = _OutputFollower(spec)
    follower.poll()
    return follower, spec


def test_a_backlog_that_fits_does_not_stop_the_stage(tmp_path: Path) -> None:
    """An hour before finish_by, 24 MB of backlog validates in time: no early stop."""
    now = time.monotonic()
    follower, spec = _follower_with_backlog(tmp_path, now + 3600)
    assert follower.rate() is not None and follower.backlog() > 20_000_000
    assert not _backlog_too_late(follower, spec, now, elapsed=5.0)
    follower.close()


def test_a_backlog_that_would_not_validate_in_time_stops_the_stage(tmp_path: Path) -> None:
    """With less time to finish_by than the grace plus validating the backlog takes (the
    backlog at the measured rate), the stage must stop now."""
    now = time.monotonic()
    follower, spec = _follower_with_backlog(tmp_path, now + 3600)
    rate = follower.rate()
    assert rate is not None
    need = spec.grace + follower.backlog() / rate
    spec.finish_by = now + need  # the grace and the backlog alone use it all up
    assert _backlog_too_late(follower, spec, now, elapsed=5.0)
    follower.close()


def test_no_early_stop_before_the_rate_is_known(tmp_path: Path) -> None:
    """Nothing validated yet (no rate): the stage runs on to kill_at."""
    out = tmp_path / "output.jsonl"
    out.write_text('{"id": 1}\n')
    now = time.monotonic()
    spec = _spec(tmp_path, out, now + 0.1)
    follower = _OutputFollower(spec)
    assert follower.rate() is None
    assert not _backlog_too_late(follower, spec, now, elapsed=1.0)


def test_a_log_cut_exactly_at_the_cap_is_still_marked(tmp_path: Path) -> None:
    """A write that fills the log to exactly log-max-bytes, then more output: the log says
    where it was cut (it used to end silently at the cap)."""
    from scaleup_ci.runner import _LogPump

    log = tmp_path / "stdout.log"
    pump = _LogPump(log, "[s] ", lambda _m: None, cap=1000, redact=())
    pump.feed(b"a" * 999 + b"\n")
    pump.feed(b"more output\n")
    pump.feed(b"and more\n")
    pump.close()
    text = log.read_bytes()
    assert text.startswith(b"a" * 999 + b"\n")
    assert text.count(b"[scaleup-ci: log cut at log-max-bytes]") == 1
    assert pump.truncated


def test_an_endless_line_is_followed_in_linear_time_and_not_held(tmp_path: Path) -> None:
    """A 100 MiB line with no newline (a script writing one huge record): following it costs
    one pass over the bytes, the follower holds a few bytes rather than the line, and when the
    line ends it is an invalid record naming its line."""
    out = tmp_path / "output.jsonl"
    with out.open("wb") as fh:
        fh.write(b'{"id": 1}\n{"id": "')
        block = b"x" * (1 << 20)
        for _ in range(100):
            fh.write(block)
    spec = _spec(tmp_path, out, time.monotonic() + 3600)
    follower = _OutputFollower(spec)
    follower.poll(final=True)
    assert follower.overlong and len(follower.buf) < 1024
    assert "line 2 is longer than 64 MiB" in follower.notes[0]
    assert follower.complete_end == len(b'{"id": 1}\n')
    with out.open("ab") as fh:
        fh.write(b'"}\n{"id": 3}\n')
    follower.poll(final=True)
    assert not follower.overlong
    assert follower.stream is not None
    res = follower.stream.result(expected=None)
    assert not res.valid and res.errors and res.errors[0].line == 2, res.errors
    follower.close()
