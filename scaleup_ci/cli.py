"""Command line: parse, build a Config, make one call into the core, map errors to exit codes.

Flags are generated from the options schema, so every option has the same name as a flag, a
YAML key, an action input and a ``SCALEUP_*`` variable.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from scaleup_ci import __version__
from scaleup_ci.errors import ScaleupError

EXIT_OK, EXIT_FAILED, EXIT_CONFIG, EXIT_LIMIT, EXIT_CANCELLED = 0, 1, 2, 3, 130


def _out(msg: str) -> None:
    _write(sys.stdout, msg)


def _err(msg: str) -> None:
    _write(sys.stderr, msg)


def _write(stream: Any, msg: str) -> None:
    """Print a line; a closed reader (``scaleup-ci run ... | head``) must not stop the run.

    On a broken pipe the stream is pointed at /dev/null, so the run goes on quietly and still
    writes report.json, summary.md and final/ (Python ignores SIGPIPE, so the write raises)."""
    try:
        print(msg, file=stream, flush=True)
    except BrokenPipeError:
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, stream.fileno())
            os.close(devnull)


def _add_option_flags(parser: argparse.ArgumentParser, *, demo: bool = False) -> None:
    from scaleup_ci.config import OPTIONS

    group = parser.add_argument_group("options (also settable in scaleup.yml or as SCALEUP_* "
                                      "environment variables)")
    for name, prop in OPTIONS.items():
        if demo and name in ("command", "full-file", "mini-file", "schema"):
            continue
        kind = prop.get("x-kind", "string")
        default = prop.get("default")
        help_text = prop.get("description", "")
        if default not in (None, "", []):
            help_text += f" [default: {default}]"
        help_text = help_text.replace("%", "%%")
        if kind == "bool":
            group.add_argument(f"--{name}", nargs="?", const="true", default=argparse.SUPPRESS,
                               metavar="BOOL", help=help_text)
        else:
            group.add_argument(f"--{name}", default=argparse.SUPPRESS,
                               metavar=kind.upper(), help=help_text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scaleup-ci",
        description="Run a script on growing slices of a dataset (mini, 10, 50, 100, 200, max) "
                    "inside a time budget; fit the timings, fill the budget, validate every output.",
    )
    parser.add_argument("--version", action="version", version=f"scaleup-ci {__version__}")
    sub = parser.add_subparsers(dest="cmd", metavar="COMMAND")
    run = sub.add_parser("run", help="run the staged sequence on your script and dataset")
    run.add_argument("--config", metavar="FILE",
                     help="options file (default: scaleup.yml in the current directory, if any)")
    _add_option_flags(run)
    demo = sub.add_parser("demo", help="run the sequence on the built-in puzzle workload")
    demo.add_argument("--data-dir", metavar="DIR", default=None,
                      help="where to generate the demo dataset (default: <out-dir>/demo-data)")
    _add_option_flags(demo, demo=True)
    val = sub.add_parser("validate", help="check output or dataset files against a JSON schema")
    val.add_argument("--schema", required=True, help="the JSON schema (JSON or YAML)")
    val.add_argument("--target", choices=("record", "document"), default="record",
                     help="validate each record (default) or the whole document")
    val.add_argument("--expect", type=int, default=None, metavar="N",
                     help="fail unless the file holds exactly N records")
    val.add_argument("--max-errors", type=int, default=5, metavar="K",
                     help="how many invalid records to show (default 5)")
    val.add_argument("files", nargs="+", metavar="FILE")
    return parser


class _Signals:
    """Turn SIGINT/SIGTERM/SIGHUP into a cancel request; a second signal means stop now."""

    def __init__(self) -> None:
        from scaleup_ci.runner import CancelToken

        self.token = CancelToken()
        self._old: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        self.token.set(signum)
        name = signal.Signals(signum).name
        if self.token.count == 1:
            _err(f"scaleup-ci: {name} received: stopping the running stage and writing the report "
                 "(send it again to stop at once)")
        elif self.token.count == 2:
            # The runner sees count >= 2 and SIGKILLs the stage's processes without a grace period.
            _err(f"scaleup-ci: {name} received again: killing the stage now")
        else:
            _err(f"scaleup-ci: {name} received a third time: exiting at once")
            os._exit(EXIT_CANCELLED)

    def __enter__(self) -> _Signals:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            with contextlib.suppress(ValueError, OSError):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            with contextlib.suppress(ValueError, OSError):
                signal.signal(sig, old)


def _cli_options(ns: argparse.Namespace) -> dict[str, Any]:
    from scaleup_ci.config import OPTIONS

    out = {}
    for name in OPTIONS:
        attr = name.replace("-", "_")
        if hasattr(ns, attr):
            out[name] = getattr(ns, attr)
    return out


def _write_failed_report(out_dir: Path, exc: ScaleupError, budget: float) -> Any:
    """A config error still leaves report.json and summary.md, when out-dir is writable."""
    from scaleup_ci.report import Report

    rep = Report(budget_seconds=budget, out_dir=str(out_dir))
    rep.note_previous_kept(out_dir)
    rep.record_error(exc)
    with contextlib.suppress(OSError):
        out_dir.mkdir(parents=True, exist_ok=True)
        rep.write(out_dir)
    return rep


def _shown(key: str, value: Any) -> str:
    """An effective option as the echo shows it: sizes in binary units, ``auto``/``none``."""
    if key == "memory-limit":
        from scaleup_ci.limits import format_bytes

        return "auto" if value is None else "none" if value == 0 else format_bytes(value)
    return json.dumps(value)


def _report_error(exc: ScaleupError) -> None:
    _err(f"scaleup-ci: error: {exc.message}")
    if exc.hint:
        _err(f"  what to do: {exc.hint}")


def _run(ns: argparse.Namespace, env: Mapping[str, str], *, demo: bool) -> int:
    from scaleup_ci import config as config_mod
    from scaleup_ci import core
    from scaleup_ci.github import GitHub, outputs_from_report

    t0 = core.process_start_monotonic()
    cwd = Path.cwd()
    cli = _cli_options(ns)
    gh = GitHub.from_env(env)
    config_path = getattr(ns, "config", None)
    if demo:
        from scaleup_ci.demo import demo_files

        out_dir = Path(cli.get("out-dir") or env.get("SCALEUP_OUT_DIR") or "scaleup-out")
        data_dir = Path(ns.data_dir) if ns.data_dir else out_dir / "demo-data"
        _out(f"scaleup-ci demo: generating the puzzle dataset in {data_dir} …")
        demo_opts = demo_files(data_dir)
        cli = {**{k: str(v) for k, v in demo_opts.items()}, **cli}
        config_path = os.devnull if config_path is None else config_path
    try:
        config = config_mod.load_config(cli, env, config_path=config_path, cwd=cwd)
    except ScaleupError as exc:
        _report_error(exc)
        out_dir = Path(cli.get("out-dir") or env.get("SCALEUP_OUT_DIR") or "scaleup-out")
        rep = _write_failed_report(out_dir, exc, 0.0)
        if gh:
            gh.write_summary(lambda tail: rep.to_markdown(tail_bytes=tail))
            gh.set_outputs(outputs_from_report(rep.to_dict(), out_dir))
            gh.annotate([("scaleup-ci: bad configuration", str(exc))], [])
        return exc.exit_code
    _out("scaleup-ci: effective configuration (options not listed are at their defaults; "
         "report.json has them all)")
    for key, value in config.to_dict().items():
        src = config.sources.get(key, "default")
        if src != "default":
            _out(f"  {key}: {_shown(key, value)}  ({src})")
    for w in config.warnings:
        _err(f"scaleup-ci: warning: {w}")

    hooks = core.Hooks(echo=_out, echo_err=_err)
    if gh:
        hooks.stage_group = gh.group
    report = None
    code = EXIT_FAILED
    with _Signals() as sigs:
        try:
            report = core.run(config, env, hooks=hooks, cancel=sigs.token, t0=t0)
            code = report.exit_code if report.exit_code is not None else EXIT_FAILED
        except ScaleupError as exc:
            code = exc.exit_code
            report = _load_report(config.out_dir)
            if report is None or not report.error:
                _report_error(exc)  # else it is printed below the table, once
    if report is not None:
        _out("")
        _out(report.to_console())
        _out(f"\nscaleup-ci: report {config.out_dir / 'report.json'} · summary "
             f"{config.out_dir / 'summary.md'}")
        # The run's own warnings (a sorted dataset, a dropped stage, identical records): the
        # configuration's were printed before the first stage.
        for w in report.warnings:
            if w not in config.warnings:
                _err(f"scaleup-ci: warning: {w}")
        if report.error and code != 0:
            _report_error(ScaleupError(report.error.get("message", ""),
                                       hint=report.error.get("hint")))
    if gh and report is not None:
        gh.write_summary(lambda tail: report.to_markdown(tail_bytes=tail))
        gh.set_outputs(outputs_from_report(report.to_dict(), config.out_dir))
        errors = []
        if report.status in ("failed", "cancelled"):
            errors.append((f"scaleup-ci {report.status}", report.reason))
        gh.annotate(errors, [("scaleup-ci warning", w) for w in report.warnings])
    # Let the caller see when we ended relative to the budget.
    _ = time.monotonic() - t0
    return code


def _load_report(out_dir: Path) -> Any:
    from scaleup_ci.report import Report

    try:
        data = json.loads((out_dir / "report.json").read_text("utf-8"))
    except (OSError, ValueError):
        return None
    fields = {k: v for k, v in data.items() if k in Report.__dataclass_fields__}
    return Report(**fields)


def _validate(ns: argparse.Namespace) -> int:
    from scaleup_ci.validate import RecordValidator, load_schema, validate_output

    try:
        validator = RecordValidator(load_schema(Path(ns.schema)))
    except ScaleupError as exc:
        _report_error(exc)
        return EXIT_CONFIG
    worst = EXIT_OK
    for name in ns.files:
        path = Path(name)
        if not path.is_file():
            _err(f"{name}: cannot read: no such file")
            worst = EXIT_CONFIG
            continue
        try:
            res = validate_output(path, validator, expected=ns.expect, target=ns.target,
                                  max_errors=ns.max_errors)
        except OSError as exc:
            _err(f"{name}: cannot read: {exc.strerror or exc}")
            worst = EXIT_CONFIG
            continue
        if res.valid:
            _out(f"{name}: valid ({res.records:,} records)")
            continue
        worst = max(worst, EXIT_FAILED) if worst != EXIT_CONFIG else worst
        _out(f"{name}: INVALID ({res.records:,} records, {res.error_count:,} invalid)")
        if res.problem:
            _out(f"  {res.problem}")
        for e in res.errors:
            _out(f"  record {e.index} (line {e.line}) at {e.path}: {e.message}")
        if res.error_count > len(res.errors):
            _out(f"  … and {res.error_count - len(res.errors):,} more")
    return worst


def _unknown_arguments(parser: argparse.ArgumentParser, ns: argparse.Namespace,
                       extra: list[str]) -> int:
    """Name each unknown flag and suggest the closest real one (exit 2, like argparse)."""
    import difflib

    known: list[str] = []
    for action in parser._actions:  # the subcommand parsers hold the real flags
        for sub in getattr(action, "choices", None) or {}:
            sp = action.choices[sub]  # type: ignore[index]
            if sub == getattr(ns, "cmd", None):
                known += [o for a in sp._actions for o in a.option_strings]
    after_flag = False
    for token in extra:
        flag = token.split("=", 1)[0]
        if flag.startswith("--"):
            close = difflib.get_close_matches(flag, known, n=1, cutoff=0.6)
            tip = (f"; did you mean {close[0]}?" if close
                   else f"; see scaleup-ci {getattr(ns, 'cmd', None) or ''} --help")
            _err(f"scaleup-ci: error: unknown option {flag}{tip}")
            after_flag = "=" not in token
        elif not after_flag:
            _err(f"scaleup-ci: error: unexpected argument {token!r}; options take the form "
                 "--name value (see --help)")
        else:
            after_flag = False
    return EXIT_CONFIG


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """Entry point for the console script and ``python -m scaleup_ci``."""
    env = dict(os.environ) if env is None else env
    parser = build_parser()
    ns, extra = parser.parse_known_args(argv)
    if extra:
        return _unknown_arguments(parser, ns, extra)
    try:
        if ns.cmd == "run":
            return _run(ns, env, demo=False)
        if ns.cmd == "demo":
            return _run(ns, env, demo=True)
        if ns.cmd == "validate":
            return _validate(ns)
    except ScaleupError as exc:
        _report_error(exc)
        return exc.exit_code
    except KeyboardInterrupt:
        _err("scaleup-ci: interrupted")
        return EXIT_CANCELLED
    parser.print_help()
    return EXIT_CONFIG


