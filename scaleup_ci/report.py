"""The run's record and its three renderings: report.json, summary.md and the console table.

Every string that came from the user's script, dataset or file names is untrusted: the markdown
renderer escapes it so that log tails cannot inject HTML, links or table structure.
"""

from __future__ import annotations

import html
import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scaleup_ci import __version__, planner

REPORT_SCHEMA = "report.schema.json"
DEFAULT_TAIL_BYTES = 4096
# Read once, at import (before any thread starts): os.umask can only be read by setting it.
_UMASK = os.umask(0o022)
os.umask(_UMASK)
STATUSES = ("running", "completed", "stopped-early", "failed", "cancelled")


def atomic_write(path: Path, data: str | bytes, *, durable: bool = False) -> None:
    """Write a file so that a reader (or a kill -9) sees the old or the new content, never half.

    The rename alone gives that: the page cache outlives a killed process. ``durable`` adds an
    fsync, which only matters if the machine itself crashes; it cost ~7 ms a file here, and the
    report is rewritten after every stage, so it is off by default.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        # mkstemp makes the file 0600; a report is an ordinary file (0644 under umask 022).
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def esc(text: Any, limit: int | None = 500) -> str:
    """Escape untrusted text for a markdown table cell or paragraph: inert HTML, links, pipes."""
    s = str(text)
    if limit is not None and len(s) > limit:
        s = s[:limit] + "…"
    # <, > and & become entities, so no tag or attribute can open and quotes are plain text
    # (KeyError: 'label' reads as written). Table and link syntax becomes entities too;
    # emphasis marks only need a backslash, which keeps snake_case names readable as text.
    s = html.escape(s, quote=False)
    for ch, rep in (("\\", "\\\\"), ("|", "&#124;"), ("[", "&#91;"), ("]", "&#93;"),
                    ("`", "&#96;"), ("*", "\\*"), ("_", "\\_"), ("\r", ""), ("\n", "<br>")):
        s = s.replace(ch, rep)
    return s


def esc_block(text: str) -> str:
    """Escape untrusted multi-line text for a <pre> block."""
    return html.escape(text, quote=False).replace("`", "&#96;")


def fmt_seconds(s: float | None) -> str:
    if s is None or (isinstance(s, float) and math.isnan(s)):
        return "–"
    if s >= 3600:
        return f"{int(s // 3600)}h{int(s % 3600 // 60):02d}m"
    if s >= 120:
        return f"{int(s // 60)}m{int(s % 60):02d}s"
    if s >= 10:
        return f"{s:.1f} s"
    return f"{s:.2f} s"


def fmt_bytes(b: float | None) -> str:
    if b is None:
        return "–"
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if b >= size:
            return f"{b / size:.1f} {unit}"
    return f"{int(b)} B"


@dataclass
class Report:
    """Everything a person or a program needs to know about one run."""

    budget_seconds: float
    reserve_seconds: float = 0.0
    status: str = "running"
    exit_code: int | None = None
    reason: str = ""
    elapsed_seconds: float = 0.0
    started_at: str = ""
    out_dir: str = ""
    hardware: dict[str, Any] = field(default_factory=dict)
    limits: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    dataset: dict[str, Any] = field(default_factory=dict)
    stages: list[dict[str, Any]] = field(default_factory=list)
    model: dict[str, Any] | None = None
    memory_model: dict[str, Any] | None = None
    plan: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)
    error: dict[str, Any] | None = None
    final: dict[str, Any] | None = None
    final_pass: dict[str, Any] | None = None
    # After the run: the whole dataset's time refitted to every finished stage (see core).
    estimate: dict[str, Any] | None = None
    shard: dict[str, Any] | None = None
    version: str = __version__

    def note_previous_kept(self, out_dir: Path | str) -> None:
        """Before the first stage a rejected run clears nothing: say so when the previous run's
        final output is still there (else the summary reads as if nothing were kept)."""
        if (Path(out_dir) / "final" / "output.jsonl").is_file():
            self.reason = ("nothing ran: this run was rejected before its first stage, and the "
                           "previous run's stages/ and final/ are left as they were")

    def record_error(self, exc: Any) -> None:
        """Mark the run failed by a ScaleupError: status, exit code, error and (if unset) reason."""
        self.status = "failed"
        self.exit_code = exc.exit_code
        self.error = {"type": type(exc).__name__, "message": exc.message, "hint": exc.hint}
        self.reason = self.reason or exc.message

    # ---- JSON -------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "status": self.status,
            "exit_code": self.exit_code,
            "reason": self.reason,
            "budget_seconds": round(self.budget_seconds, 3),
            "reserve_seconds": round(self.reserve_seconds, 3),
            "elapsed_seconds": round(self.elapsed_seconds, 3),
            "started_at": self.started_at,
            "out_dir": self.out_dir,
            "hardware": self.hardware,
            "limits": self.limits,
            "config": self.config,
            "dataset": self.dataset,
            "stages": self.stages,
            "model": self.model,
            "memory_model": self.memory_model,
            "plan": self.plan,
            "warnings": self.warnings,
            "error": self.error,
            "final": self.final,
            "final_pass": self.final_pass,
            "estimate": self.estimate,
            "shard": self.shard,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False, default=str,
                          allow_nan=False) + "\n"

    def write(self, out_dir: Path, *, tail_bytes: int | None = DEFAULT_TAIL_BYTES) -> None:
        """Atomically write report.json and summary.md into ``out_dir``."""
        atomic_write(out_dir / "report.json", self.to_json())
        atomic_write(out_dir / "summary.md", self.to_markdown(tail_bytes=tail_bytes))

    # ---- markdown ---------------------------------------------------------------------------
    def _ran(self) -> list[dict[str, Any]]:
        return [s for s in self.stages if not s.get("skipped")]

    def headline(self) -> str:
        icon = {"completed": "✅", "stopped-early": "✅", "failed": "❌", "cancelled": "⚠️",
                "running": "⏳"}.get(self.status, "")
        final = self.final or {}
        n = final.get("records")
        what = f"{n:,} validated records" if isinstance(n, int) else "no validated output"
        if self.error and not self.stages:
            # Rejected before the first stage (a config or input error): no time was spent.
            when = (f" ({fmt_seconds(self.elapsed_seconds)} of a "
                    f"{fmt_seconds(self.budget_seconds)} budget)" if self.budget_seconds else "")
            return f"{icon} **{self.status}** before any stage ran{when}: {what}"
        return (f"{icon} **{self.status}** in {fmt_seconds(self.elapsed_seconds)} of a "
                f"{fmt_seconds(self.budget_seconds)} budget: {what}")

    def to_markdown(self, *, tail_bytes: int | None = DEFAULT_TAIL_BYTES) -> str:
        lines: list[str] = ["## scaleup-ci", "", self.headline(), ""]
        if self.reason and not (self.error and self.reason == self.error.get("message")):
            lines += [f"**Why it stopped here:** {esc(self.reason, 1000)}", ""]
        if self.error:
            lines += [f"**Error:** {esc(self.error.get('message', ''), 2000)}"]
            if self.error.get("hint"):
                lines += ["", f"**What to do:** {esc(self.error['hint'], 1000)}"]
            lines += [""]
        lines += self._stage_table()
        lines += self._model_section()
        lines += self._chart()
        if self.final_pass:
            lines += self._final_pass_section()
        if self.warnings:
            lines += ["### Warnings", ""]
            lines += [f"- {esc(w, 1000)}" for w in self.warnings[:50]]
            if len(self.warnings) > 50:
                lines.append(f"- … and {len(self.warnings) - 50} more (see report.json)")
            lines.append("")
        lines += self._machine_section()
        if tail_bytes is None or tail_bytes > 0:
            lines += self._log_tails(tail_bytes or DEFAULT_TAIL_BYTES)
        elif self.stages:
            lines += ["_Log tails left out to keep the summary under GitHub's size limit; "
                      "the full logs are in the artifact._", ""]
        return "\n".join(lines) + "\n"

    def _stage_table(self) -> list[str]:
        if not self.stages:
            return []
        head = ("| stage | n | time | s/example | predicted | peak memory | CPU | exit | valid | "
                "records | note |")
        rows = [head, "|" + "---|" * 11]
        for s in self.stages:
            if s.get("skipped"):
                rows.append(f"| {esc(s['name'])} | {s['n']:,} | – | – | "
                            f"{fmt_seconds(s.get('predicted_seconds'))} | – | – | – | – | – | "
                            f"skipped: {esc(s.get('problem') or '')} |")
                continue
            done = s.get("records") if s.get("partial") else s.get("n")
            per = s["wall_seconds"] / done if done else None
            note = []
            if s.get("partial"):
                note.append("partial: kept the validated prefix")
            if s.get("killed_by"):
                note.append(f"killed by {s['killed_by']}")
            if s.get("problem"):
                note.append(esc(s["problem"], 300))
            valid = "✅" if s.get("valid") else "❌"
            pass_tag = f" (pass {s['pass_no']})" if s.get("pass_no", 1) > 1 else ""
            rows.append(
                f"| {esc(s['name'])}{pass_tag} | {s['n']:,} | {fmt_seconds(s.get('wall_seconds'))} | "
                f"{(f'{per:.4f}' if per is not None else '–')} | "
                f"{fmt_seconds(s.get('predicted_seconds'))} | {fmt_bytes(s.get('peak_rss_bytes'))} | "
                f"{fmt_seconds(s.get('cpu_seconds'))} | {s.get('exit_code')} | {valid} | "
                f"{s.get('records', 0):,} | {'; '.join(note)} |")
        rows.append("")
        errs = [s for s in self._ran() if s.get("errors")]
        for s in errs[:3]:
            rows.append(f"<details><summary>First invalid records of stage {esc(s['name'])} "
                        f"({s.get('error_count', 0):,} in all)</summary>\n")
            for e in s["errors"]:
                rows.append(f"- record {e.get('index')} (line {e.get('line')}) at "
                            f"<code>{esc(e.get('path'), 200)}</code>: {esc(e.get('message'), 300)}")
            rows += ["", "</details>", ""]
        return ["### Stages", ""] + rows

    def _model_section(self) -> list[str]:
        out: list[str] = []
        if self.model:
            m = self.model
            params = ", ".join(f"{k}={v:.4g}" for k, v in (m.get("params") or {}).items())
            out += ["### Fit and extrapolation", "",
                    f"- Model: **{esc(m.get('kind'))}** (t = {_formula(m.get('kind'))}; {params})",
                    f"- Marginal cost: {m.get('per_example_seconds', 0):.4g} s per example"]
        if self.plan:
            p = self.plan
            if not out:
                out += ["### Fit and extrapolation", ""]
            mx = self._progressive_max()
            if mx is None:
                out.append(f"- Largest count that fits: **{p.get('max_n', 0):,}** of "
                           f"{p.get('dataset_size', 0):,} (predicted "
                           f"{fmt_seconds(p.get('predicted_seconds'))})")
            else:
                done = ("and finished" if not mx.get("partial") else
                        f"and kept {mx.get('records', 0):,} validated records at the deadline")
                out.append(f"- Planned count: {p.get('max_n', 0):,} of "
                           f"{p.get('dataset_size', 0):,} (predicted "
                           f"{fmt_seconds(p.get('predicted_seconds'))}); max ran progressively "
                           f"with **{mx.get('n', 0):,}** examples {done}")
            if p.get("predicted_full_seconds") is not None:
                out.append(f"- Predicted time for the whole dataset: "
                           f"{fmt_seconds(p.get('predicted_full_seconds'))}")
            if p.get("reason"):
                out.append(f"- Plan: {esc(p['reason'], 1000)}")
        if self.estimate:
            e = self.estimate
            if not out:
                out += ["### Fit and extrapolation", ""]
            out.append(f"- After the run, refitted to all {len(e.get('stages') or [])} finished "
                       f"stages ({esc((e.get('model') or {}).get('kind'))} model): the whole "
                       f"dataset ({e.get('dataset_size', 0):,}) would take about "
                       f"**{fmt_seconds(e.get('whole_dataset_seconds'))}**{_rough(e)}")
        if self.memory_model:
            out.append(f"- Memory: {esc(self.memory_model.get('summary', ''))}")
        return out + [""] if out else []

    def _progressive_max(self) -> dict[str, Any] | None:
        """The first pass's max stage when it ran progressively, given more than the plan."""
        max_n = (self.plan or {}).get("max_n")
        for s in self._ran():
            if (s.get("name") == "max" and s.get("pass_no", 1) == 1 and isinstance(max_n, int)
                    and s.get("n", 0) > max_n):
                return s
        return None

    def _chart(self) -> list[str]:
        ran = [s for s in self._ran() if s.get("pass_no", 1) == 1 and s.get("wall_seconds")]
        if len(ran) < 2 or not self.model:
            return []
        params = self.model.get("params") or {}
        kind = self.model.get("kind")
        def x_of(s: dict[str, Any]) -> int:
            # A partial stage finished `records` examples, not `n`.
            return int(s["records"]) if s.get("partial") else int(s["n"])

        xs = sorted({x_of(s) for s in ran})
        plan = self.plan or {}
        planned = None if self._progressive_max() is not None else plan.get("max_n")
        for extra in (planned, plan.get("dataset_size")):
            if isinstance(extra, int) and extra > 0 and extra not in xs:
                xs.append(extra)
        xs.sort()
        measured = {x_of(s): float(s["wall_seconds"]) for s in ran}

        fitted = [round(max(0.0, planner.curve_value(str(kind), params, n)), 2) for n in xs]
        bars = [round(measured.get(n, 0.0), 2) for n in xs]
        # Mermaid has no empty bar: a size that never ran says so in its label instead.
        labels = [str(n) if n in measured else f'"{n} (not run)"' for n in xs]
        budget = round(self.budget_seconds, 2)
        ymax = max(max(fitted), max(bars), budget) * 1.1
        return [
            "### Time against N", "",
            "Bars: measured stage times. Line 1: the fitted curve, extended to the planned maximum "
            "and to the whole dataset (sizes marked \"not run\" have no bar). Line 2: the time "
            "budget. The x-axis lists the sizes in order; it is not to scale.", "",
            "```mermaid", "xychart-beta", '    title "Stage time (s) against examples"',
            f"    x-axis [{', '.join(labels)}]",
            f'    y-axis "seconds" 0 --> {ymax:.1f}',
            f"    bar [{', '.join(str(b) for b in bars)}]",
            f"    line [{', '.join(str(f) for f in fitted)}]",
            f"    line [{', '.join(str(budget) for _ in xs)}]",
            "```", "",
        ]

    def _final_pass_section(self) -> list[str]:
        fp = self.final_pass or {}
        out = ["### Final pass", ""]
        for c in fp.get("comparisons", []):
            out.append(f"- stage {esc(c['stage'])}: {c['differing_records']:,} of "
                       f"{c['records']:,} records differ; time {fmt_seconds(c['first_seconds'])} → "
                       f"{fmt_seconds(c['second_seconds'])}"
                       + (" (moved by more than 25%)" if c.get("timing_moved") else ""))
        return out + [""]

    def _machine_section(self) -> list[str]:
        hw = self.hardware or {}
        lim = self.limits or {}
        src = hw.get("sources", {})
        if not hw and not lim:
            return []  # rejected before the machine was measured
        out = ["<details><summary>Machine and limits</summary>", ""]
        if hw:
            out.append(f"- CPUs: {hw.get('cpus')} ({esc(src.get('cpus', ''))})")
            out.append(f"- Memory: {fmt_bytes(hw.get('memory_bytes'))} "
                       f"({esc(src.get('memory_bytes', ''))})")
            gpus = hw.get("gpus") or []
            out.append(f"- GPUs: {len(gpus)} ({esc(src.get('gpus', ''))})")
            if hw.get("disk_free_bytes") is not None:
                out.append(f"- Free disk at out-dir: {fmt_bytes(hw.get('disk_free_bytes'))}")
        if lim:
            out.append(f"- Memory limit: {fmt_bytes(lim.get('memory_bytes'))}")
            for k, v in (lim.get("enforcement") or {}).items():
                out.append(f"- Enforcement ({esc(k)}): {esc(v)}")
        return out + ["", "</details>", ""]

    def _log_tails(self, tail_bytes: int) -> list[str]:
        out: list[str] = []
        for s in self._ran():
            for stream in ("stdout", "stderr"):
                p = s.get(f"{stream}_path")
                if not p:
                    continue
                tail = _read_tail(Path(p), tail_bytes)
                if not tail.strip():
                    continue
                out += [f"<details><summary>{esc(s['name'])}: last {fmt_bytes(len(tail))} of "
                        f"{stream}</summary>", "", "<pre>", esc_block(tail), "</pre>", "",
                        "</details>", ""]
        return (["### Logs", ""] + out) if out else []

    # ---- console ----------------------------------------------------------------------------
    def to_console(self) -> str:
        rows = []
        for s in self.stages:
            if s.get("skipped"):
                rows.append([s["name"], s["n"], "skipped", "", "", "", "", s.get("problem", "")])
                continue
            rows.append([
                s["name"] + (f" (pass {s['pass_no']})" if s.get("pass_no", 1) > 1 else ""),
                s["n"], fmt_seconds(s.get("wall_seconds")),
                fmt_seconds(s.get("predicted_seconds")), fmt_bytes(s.get("peak_rss_bytes")),
                s.get("exit_code"), "yes" if s.get("valid") else "NO",
                "; ".join(x for x in (
                    "partial" if s.get("partial") else "",
                    ("cancelled" if s.get("killed_by") == "cancelled"
                     else f"killed by {s['killed_by']}" if s.get("killed_by") else ""),
                    _clip(s.get("problem") or "", 120)) if x),
            ])
        from tabulate import tabulate  # imported here: only the final console table needs it

        text = []
        if rows:
            text += [tabulate(rows, headers=["stage", "n", "time", "predicted", "peak mem", "exit",
                                             "valid", "note"], tablefmt="simple"), ""]
        text.append(self.headline().replace("**", ""))
        if self.reason and not (self.error and self.reason == self.error.get("message")):
            text.append(f"why: {self.reason}")  # (an error's own message is printed after)
        if self.estimate:
            text.append(f"whole dataset ({self.estimate.get('dataset_size', 0):,}) would take "
                        f"about {fmt_seconds(self.estimate.get('whole_dataset_seconds'))} "
                        f"(refitted to every finished stage){_rough(self.estimate)}")
        elif self.plan and self.plan.get("predicted_full_seconds") is not None:
            text.append(f"whole dataset ({self.plan.get('dataset_size', 0):,}) predicted: "
                        f"{fmt_seconds(self.plan['predicted_full_seconds'])}")
        return "\n".join(text)


def _rough(estimate: dict[str, Any]) -> str:
    """A caveat for an estimate extrapolated far beyond the largest stage that ran."""
    factor = estimate.get("extrapolation")
    if isinstance(factor, (int, float)) and factor > 10:
        return f"; a rough figure, extrapolated x{factor:.0f} beyond the largest stage"
    return ""


def _clip(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters at a word boundary, with an ellipsis."""
    if len(text) <= limit:
        return text
    cut = text[:limit - 1]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:") + "…"


def _formula(kind: Any) -> str:
    return {"linear": "a + b·n", "nlogn": "a + b·n·ln n", "power": "a + b·n^k",
            "quadratic": "a + b·n + c·n²", "constant": "a"}.get(str(kind), "a + b·f(n)")


def tail_bytes(path: Path, n: int) -> tuple[bytes, int]:
    """The last ``n`` bytes of a file and its size; empty when it cannot be read."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - n))
            return fh.read(), size
    except OSError:
        return b"", 0


def _read_tail(path: Path, n: int) -> str:
    data, size = tail_bytes(path, n)
    if not data:
        return ""
    text = data.decode("utf-8", errors="replace")
    if size > n:
        nl = text.find("\n")
        if 0 <= nl < 200:
            text = text[nl + 1:]
        text = f"… ({fmt_bytes(size - n)} earlier)\n" + text
    return text


def load_report_schema() -> dict[str, Any]:
    from importlib.resources import files

    return json.loads(files("scaleup_ci").joinpath("data").joinpath(REPORT_SCHEMA).read_text("utf-8"))
