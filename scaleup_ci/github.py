"""Everything that knows about GitHub Actions: step summary, outputs, annotations, log groups.

This is the only module that reads ``GITHUB_*`` / ``RUNNER_*`` variables, and it never reads
``os.environ`` itself: callers pass an ``env`` mapping (the ``python -m scaleup_ci.github``
entry point at the bottom is the one exception, being a process boundary).

Typical use from the CLI::

    gh = GitHub.from_env(env)            # None outside GitHub Actions
    if gh:
        with gh.group("stage 10"):
            ...
        gh.write_summary(lambda tail: report.to_markdown(tail_bytes=tail))
        gh.set_outputs(outputs_from_report(report_dict, out_dir))
        gh.annotate(errors=[(title, msg), ...], warnings=[...])

Workflow-command and file-command formats follow GitHub's documentation: data is escaped
(``%``, ``\\r``, ``\\n``), properties additionally escape ``:`` and ``,``; multiline outputs use
``name<<DELIMITER`` with a random delimiter that does not occur in the value.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import re
import sys
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

__all__ = [
    "ANNOTATION_LIMIT",
    "SUMMARY_BUDGET_BYTES",
    "SUMMARY_LIMIT_BYTES",
    "GitHub",
    "artifact_name",
    "escape_data",
    "escape_property",
    "outputs_from_report",
]

#: GitHub rejects a step summary larger than this (per step).
SUMMARY_LIMIT_BYTES = 1_048_576
#: What we allow ourselves: the limit less a safety margin for the runner's own bookkeeping.
SUMMARY_BUDGET_BYTES = SUMMARY_LIMIT_BYTES - 64 * 1024
#: Tail sizes tried in turn when the summary is too large (None = the renderer's default).
TAIL_STEPS: tuple[int | None, ...] = (None, 64 * 1024, 16 * 1024, 4 * 1024, 1024, 0)
#: GitHub shows at most this many annotations of each kind per step.
ANNOTATION_LIMIT = 10
#: Longest annotation message we send; the rest is in the summary and report.json.
ANNOTATION_MAX_CHARS = 4000

OutputValue = str | int | float | bool | None

_OUTPUT_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
_ARTIFACT_BAD = re.compile(r'[":<>|*?\\/\x00-\x1f\x7f]+')
_ARTIFACT_MAX = 200


def escape_data(text: str) -> str:
    """Escape the message part of a workflow command (``::cmd::DATA``)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """Escape a property value of a workflow command (``::cmd key=VALUE::``)."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _format_value(value: OutputValue) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return ""
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return repr(value)
    return str(value)


class GitHub:
    """Writes to the files and the log stream that a GitHub Actions runner reads.

    ``summary_path`` / ``output_path`` may be None, in which case those writes are no-ops.
    ``stream`` is where workflow commands (groups, annotations) go; default: ``sys.stdout``
    looked up at call time.
    """

    def __init__(
        self,
        *,
        summary_path: Path | None = None,
        output_path: Path | None = None,
        stream: TextIO | None = None,
    ) -> None:
        self.summary_path = summary_path
        self.output_path = output_path
        self._stream = stream

    @classmethod
    def from_env(cls, env: Mapping[str, str], *, stream: TextIO | None = None) -> GitHub | None:
        """Return a GitHub writer when running under GitHub Actions (or act), else None."""
        if env.get("GITHUB_ACTIONS") != "true":
            return None
        summary = env.get("GITHUB_STEP_SUMMARY") or None
        output = env.get("GITHUB_OUTPUT") or None
        return cls(
            summary_path=Path(summary) if summary else None,
            output_path=Path(output) if output else None,
            stream=stream,
        )

    # -- log stream -------------------------------------------------------------------------

    @property
    def stream(self) -> TextIO:
        return self._stream if self._stream is not None else sys.stdout

    def _command(self, line: str) -> None:
        out = self.stream
        out.write(line + "\n")
        out.flush()

    @contextlib.contextmanager
    def group(self, title: str) -> Iterator[None]:
        """Fold everything printed inside the block under a collapsible ``title`` in the log."""
        self._command(f"::group::{escape_data(title)}")
        try:
            yield
        finally:
            self._command("::endgroup::")

    def annotate(
        self,
        errors: Sequence[tuple[str, str]],
        warnings: Sequence[tuple[str, str]],
    ) -> None:
        """Emit ``::error``/``::warning`` annotations, (title, message) pairs, most important first.

        GitHub keeps at most 10 per kind and step: when there are more, the 10th annotation
        says how many more there are and names their titles.
        """
        for kind, items in (("error", errors), ("warning", warnings)):
            for title, message in _cap_annotations(kind, items):
                if len(message) > ANNOTATION_MAX_CHARS:
                    message = message[: ANNOTATION_MAX_CHARS - 1] + "…"
                self._command(f"::{kind} title={escape_property(title)}::{escape_data(message)}")

    # -- files ------------------------------------------------------------------------------

    def write_summary(self, render: Callable[[int | None], str]) -> str:
        """Append the markdown from ``render(tail_bytes)`` to the step summary, under 1 MiB.

        Tries the renderer's default log tails, then smaller tails, then none; as a last resort
        truncates the text. Whenever something was cut, a note says so. Returns what was (or,
        without ``GITHUB_STEP_SUMMARY``, would have been) written.
        """
        existing = 0
        if self.summary_path is not None:
            with contextlib.suppress(OSError):
                existing = self.summary_path.stat().st_size
        room = SUMMARY_BUDGET_BYTES - existing
        if room < 1024:
            return ""  # an earlier writer used up this step's summary; summary.md still has it
        text = fit_summary(render, room)
        if self.summary_path is not None:
            with self.summary_path.open("a", encoding="utf-8", newline="") as fh:
                fh.write(text)
        return text

    def set_outputs(self, values: Mapping[str, OutputValue]) -> None:
        """Append step outputs to ``$GITHUB_OUTPUT`` (no-op when it is unset)."""
        text = format_outputs(values)
        if self.output_path is None:
            return
        with self.output_path.open("a", encoding="utf-8", newline="") as fh:
            fh.write(text)


def _cap_annotations(kind: str, items: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    if len(items) <= ANNOTATION_LIMIT:
        return list(items)
    keep = list(items[: ANNOTATION_LIMIT - 1])
    rest = items[ANNOTATION_LIMIT - 1 :]
    plural = "s" if len(rest) != 1 else ""
    names = "; ".join(title for title, _ in rest[:20])
    if len(rest) > 20:
        names += "; …"
    keep.append(
        (
            f"and {len(rest)} more {kind}{plural}",
            f"and {len(rest)} more {kind}{plural} not shown here ({names}); "
            "see the job summary, summary.md or report.json for all of them.",
        )
    )
    return keep


def format_outputs(values: Mapping[str, OutputValue]) -> str:
    """Render outputs in the ``$GITHUB_OUTPUT`` file-command format."""
    parts: list[str] = []
    for name, raw in values.items():
        if not _OUTPUT_NAME.match(name):
            raise ValueError(f"invalid output name {name!r}: use letters, digits, '_' and '-'")
        value = _format_value(raw)
        if "\n" in value or "\r" in value:
            delimiter = f"ghadelimiter_{uuid.uuid4()}"
            while delimiter in value:
                delimiter = f"ghadelimiter_{uuid.uuid4()}"
            parts.append(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")
        else:
            parts.append(f"{name}={value}\n")
    return "".join(parts)


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8"))


def _tail_note(tail: int | None) -> str:
    if tail == 0:
        what = "Log tails were left out"
    else:
        what = f"Log tails were cut to the last {tail:,} bytes"
    return (
        f"> **Note:** {what} to keep this summary under GitHub's 1 MiB step-summary limit. "
        "The complete logs are in `stages/<stage>/stdout.log` and `stderr.log` in the "
        "out-dir and the uploaded artifact.\n\n"
    )


_TRUNCATED_NOTE = (
    "\n\n> **Note:** this summary was truncated to stay under GitHub's 1 MiB step-summary "
    "limit. The full text is in `summary.md` in the out-dir and the uploaded artifact.\n"
)


def fit_summary(render: Callable[[int | None], str], budget: int) -> str:
    """Return the largest rendering of the summary that fits in ``budget`` UTF-8 bytes."""
    text = ""
    for tail in TAIL_STEPS:
        text = render(tail)
        if tail is not None:
            text = _tail_note(tail) + text
        if _utf8_len(text) <= budget:
            return text
    # Even without tails it is too big: cut at a character boundary and say so.
    room = max(budget - _utf8_len(_TRUNCATED_NOTE) - 16, 0)
    cut = text.encode("utf-8")[:room].decode("utf-8", errors="ignore")
    # Don't cut inside an HTML tag or entity that the renderer built.
    last_lt, last_gt = cut.rfind("<"), cut.rfind(">")
    if last_lt > last_gt:
        cut = cut[:last_lt]
    last_amp = cut.rfind("&")
    if last_amp != -1 and ";" not in cut[last_amp:]:
        cut = cut[:last_amp]
    if cut.count("```") % 2 == 1:
        cut += "\n```"
    return cut + _TRUNCATED_NOTE


def _get(mapping: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(mapping, Mapping):
            return None
        mapping = mapping.get(key)
    return mapping


def _number(value: Any) -> int | float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    return value


def _final_output(report: Mapping[str, Any], out_dir: Path) -> str:
    for keys in (("final", "path"), ("final_output",), ("final", "output")):
        value = _get(report, *keys)
        if isinstance(value, str) and value:
            path = Path(value)
            if not path.is_absolute():
                path = out_dir / path
            if path.exists():
                return str(path)
    final = out_dir / "final"
    if not final.is_dir():
        return ""
    files = sorted(p for p in final.iterdir() if p.is_file())
    if len(files) == 1:
        return str(files[0])
    return str(final) if files else ""


def outputs_from_report(report: Mapping[str, Any], out_dir: Path) -> dict[str, OutputValue]:
    """Map ``report.json`` fields to the action's outputs; missing fields become ''."""
    out_dir = Path(out_dir).absolute()
    status = report.get("status") if isinstance(report, Mapping) else None
    return {
        "status": status if isinstance(status, str) else "",
        "max-n": _number(_get(report, "plan", "max_n")),
        "records": _number(_get(report, "final", "records")),
        "per-example-seconds": _number(_get(report, "model", "per_example_seconds")),
        "predicted-full-seconds": _number(_get(report, "plan", "predicted_full_seconds")),
        "report-path": str(out_dir / "report.json"),
        "summary-path": str(out_dir / "summary.md"),
        "output-path": _final_output(report, out_dir) if isinstance(report, Mapping) else "",
    }


def _sanitize_artifact(name: str) -> str:
    name = _ARTIFACT_BAD.sub("-", name).strip(" .-")
    return name[:_ARTIFACT_MAX].rstrip(" .-") or "scaleup-ci"


def _matrix(env: Mapping[str, str]) -> Any:
    for var in ("SCALEUP_MATRIX", "ACTION_MATRIX"):
        raw = (env.get(var) or "").strip()
        if not raw:
            continue
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        if value not in (None, {}, [], ""):
            return value
    return None


def artifact_name(env: Mapping[str, str], override: str | None) -> str:
    """A name for upload-artifact that is unique per job, also across matrix combinations.

    ``override`` (the ``artifact-name`` input) wins when set. Otherwise the name is built from
    ``GITHUB_JOB`` plus, in a matrix job, the matrix values and a short hash of them, so that
    two combinations never clash. The matrix is read from ``SCALEUP_MATRIX`` (JSON of
    ``${{ toJSON(matrix) }}``, which a caller may set in the step's ``env:``) or else from
    ``ACTION_MATRIX`` (what action.yml passes). When neither holds a matrix but
    ``ACTION_JOB_TOTAL`` says the job has several instances, ``ACTION_JOB_INDEX`` is appended.
    """
    if override and override.strip():
        return _sanitize_artifact(override.strip())
    name = "scaleup-ci-" + (env.get("GITHUB_JOB") or "run")
    matrix = _matrix(env)
    if matrix is not None:
        canonical = json.dumps(matrix, sort_keys=True, separators=(",", ":"))
        digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:8]
        if isinstance(matrix, Mapping):
            values = [
                v if isinstance(v, str) else json.dumps(v, sort_keys=True)
                for _, v in sorted(matrix.items())
            ]
            readable = "-".join(values)
        else:
            readable = str(matrix)
        readable = re.sub(r"[^A-Za-z0-9._-]+", "-", readable).strip("-")[:80]
        name = f"{name}-{readable}-{digest}" if readable else f"{name}-{digest}"
    else:
        total, index = env.get("ACTION_JOB_TOTAL", ""), env.get("ACTION_JOB_INDEX", "")
        if total.isdigit() and int(total) > 1 and index.isdigit():
            name = f"{name}-{index}"
    return _sanitize_artifact(name)


def main(argv: Sequence[str], env: Mapping[str, str]) -> int:
    """``python -m scaleup_ci.github artifact``: write the ``name`` and ``path`` step outputs.

    Used by action.yml before actions/upload-artifact. Reads ``ARTIFACT_NAME`` (the input),
    the variables that :func:`artifact_name` reads, ``REPORT_PATH`` (the run step's output) and
    ``OUT_DIR`` (the input, used when there is no report path).
    """
    if list(argv) != ["artifact"]:
        print("usage: python -m scaleup_ci.github artifact", file=sys.stderr)
        return 2
    name = artifact_name(env, env.get("ARTIFACT_NAME"))
    report = env.get("REPORT_PATH") or ""
    path = str(Path(report).parent) if report else (env.get("OUT_DIR") or "scaleup-out")
    gh = GitHub.from_env(env)
    if gh is not None:
        gh.set_outputs({"name": name, "path": path})
    print(f"artifact {name!r} from {path}")
    return 0


if __name__ == "__main__":  # pragma: no cover - exercised by the action
    import os

    raise SystemExit(main(sys.argv[1:], os.environ))
