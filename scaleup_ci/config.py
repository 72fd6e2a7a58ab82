"""Options: merge defaults < config file < environment < CLI, validate, convert.

The options are defined once, in ``scaleup_ci/data/options.schema.json``. Each property there has a
``description``, a ``default`` (as the user would write it; omitted when there is none) and an
``x-kind`` that says how the value is converted. Every option has one kebab-case name: the YAML key,
the CLI flag ``--name``, the action input ``name`` and the environment variable ``SCALEUP_NAME``.

Values from every source are handled the same way: as text (YAML is read so that every scalar is a
string, so ``1:30`` stays ``"1:30"`` and ``no`` stays ``"no"``), validated against the schema, and
then converted by kind. Errors are :class:`~scaleup_ci.errors.ConfigError` naming the option, where
the value came from and what to write instead.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import ConfigError

__all__ = [
    "CONFIG_FILENAMES",
    "OPTIONS",
    "RESERVED_ENV",
    "SCHEMA",
    "Config",
    "env_name",
    "field_name",
    "load_config",
    "option_names",
    "parse_bool",
    "parse_duration",
    "parse_percent",
    "parse_size",
]

SCHEMA: dict[str, Any] = json.loads(
    resources.files("scaleup_ci").joinpath("data/options.schema.json").read_text(encoding="utf-8")
)
#: The schema's properties: option name -> property (``description``, ``default``, ``x-kind``...).
OPTIONS: dict[str, dict[str, Any]] = SCHEMA["properties"]

#: Names looked for in ``cwd`` when no config file is given.
CONFIG_FILENAMES = ("scaleup.yml", "scaleup.yaml")

#: ``SCALEUP_*`` variables that are not options and never reported as typos: the stage variables
#: that scaleup-ci sets for the user's script, and the config-file variable the CLI may read.
RESERVED_ENV = frozenset(
    {
        "SCALEUP_INPUT",
        "SCALEUP_OUTPUT",
        "SCALEUP_N",
        "SCALEUP_STAGE",
        "SCALEUP_FULL",
        "SCALEUP_DEADLINE",
        "SCALEUP_CONFIG",
    }
)

_PLACEHOLDERS = ("input", "output", "n", "stage", "full")

#: Names users often reach for, mapped to the real option (used only for "did you mean").
_ALIASES = {
    "timeout": "time-budget",
    "budget": "time-budget",
    "time-limit": "time-budget",
    "dataset": "full-file",
    "data": "full-file",
    "input": "full-file",
    "full": "full-file",
    "mini": "mini-file",
    "script": "command",
    "run": "command",
    "cmd": "command",
    "output-dir": "out-dir",
    "outdir": "out-dir",
    "output": "out-dir",
    "cwd": "working-directory",
    "workdir": "working-directory",
    "memory": "memory-limit",
    "margin": "safety-margin",
    "output-schema": "schema",
}


def option_names() -> list[str]:
    """All option names, in schema order."""
    return list(OPTIONS)


def env_name(option: str) -> str:
    """The environment variable for ``option``: ``time-budget`` -> ``SCALEUP_TIME_BUDGET``."""
    return "SCALEUP_" + option.upper().replace("-", "_")


def field_name(option: str) -> str:
    """The :class:`Config` attribute for ``option``: ``time-budget`` -> ``time_budget``."""
    return option.replace("-", "_")


# --------------------------------------------------------------------------------------------
# Parsers for single values. Each names the option and where the value came from when it fails.
# --------------------------------------------------------------------------------------------

_DEFS: dict[str, Any] = SCHEMA["$defs"]
_DURATION_RE = re.compile(_DEFS["duration"]["pattern"])
_SIZE_RE = re.compile(_DEFS["size"]["pattern"])
_PERCENT_RE = re.compile(_DEFS["percent"]["pattern"])
_NUMBER_RE = re.compile(r"^(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)$")
_DURATION_PART_RE = re.compile(r"([0-9]*\.?[0-9]+|[0-9]+\.) *(ms|d|h|m|s)", re.IGNORECASE)
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_SIZE_SPLIT_RE = re.compile(r"^([0-9.]+) *([a-zA-Z]*)$")
_SIZE_UNITS = {"": 1, "b": 1}
for _i, _letter in enumerate("kmgt", start=1):
    _SIZE_UNITS[_letter] = 1024**_i
    _SIZE_UNITS[_letter + "i"] = 1024**_i
    _SIZE_UNITS[_letter + "ib"] = 1024**_i
    _SIZE_UNITS[_letter + "b"] = 1000**_i
_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})

_DURATION_HINT = "write a duration such as 90s, 45m, 1h30m, 2h, 500ms, or a number of seconds"


def _error(option: str, source: str | None, problem: str, hint: str | None = None) -> ConfigError:
    where = f" ({source})" if source else ""
    return ConfigError(f"{option}: {problem}{where}", hint=hint)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def parse_duration(value: Any, *, option: str = "duration", source: str | None = None) -> float:
    """Seconds from ``90s``, ``45m``, ``1h30m``, ``2h``, ``1.5m``, ``500ms`` or a plain number.

    Units (any case) are ``ms``, ``s``, ``m``, ``h`` and ``d``, largest first. ``1:30`` is
    rejected because it is ambiguous; negatives, empty strings and other text are rejected too.
    """
    if _is_number(value):
        seconds = float(value)
        if not math.isfinite(seconds) or seconds < 0:
            raise _error(option, source, f"{value!r} is not a duration", _DURATION_HINT)
        return seconds
    if not isinstance(value, str):
        raise _error(option, source, f"expected a duration, got {_describe(value)}", _DURATION_HINT)
    text = value.strip()
    if not text:
        raise _error(option, source, "is empty; expected a duration", _DURATION_HINT)
    if ":" in text:
        raise _error(
            option,
            source,
            f"{text!r} is ambiguous (minutes:seconds or hours:minutes?)",
            "write 1m30s or 90s (or 1h30m)",
        )
    if text.startswith("-"):
        raise _error(option, source, f"{text!r} is negative", _DURATION_HINT)
    if not _DURATION_RE.fullmatch(text):
        raise _error(option, source, f"cannot read {text!r} as a duration", _DURATION_HINT)
    if _NUMBER_RE.fullmatch(text):
        return float(text)
    return float(
        sum(
            float(num) * _DURATION_UNITS[unit.lower()]
            for num, unit in _DURATION_PART_RE.findall(text)
        )
    )


_SIZE_HINT = (
    "write a size such as 512M or 512MiB (2^20 bytes), 2G or 2GiB (2^30), 1.5GB (10^9), "
    "or a whole number of bytes"
)


def parse_size(value: Any, *, option: str = "size", source: str | None = None) -> int:
    """Bytes from ``2GiB``, ``2G``, ``512MiB``, ``512M``, ``1.5GB``, ``64kB``, ``64KiB``, ``1024``.

    Units are case-insensitive. ``K``/``M``/``G``/``T``, ``Ki``/``Mi``... and ``KiB``/``MiB``... are
    binary (1024-based: ``G`` = ``GiB`` = 2^30); ``kB``/``MB``/``GB``/``TB`` are decimal
    (``GB`` = 10^9). A plain number or ``B`` means bytes and must be whole.
    """
    if _is_number(value):
        if value < 0 or (isinstance(value, float) and not value.is_integer()):
            raise _error(option, source, f"{value!r} is not a whole number of bytes", _SIZE_HINT)
        return int(value)
    if not isinstance(value, str):
        raise _error(option, source, f"expected a size, got {_describe(value)}", _SIZE_HINT)
    text = value.strip()
    if not text:
        raise _error(option, source, "is empty; expected a size", _SIZE_HINT)
    if text.startswith("-"):
        raise _error(option, source, f"{text!r} is negative", _SIZE_HINT)
    match = _SIZE_SPLIT_RE.match(text)
    if not _SIZE_RE.fullmatch(text) or match is None:
        raise _error(option, source, f"cannot read {text!r} as a size", _SIZE_HINT)
    number, unit = match.group(1), match.group(2).lower()
    multiplier = _SIZE_UNITS[unit]
    if multiplier == 1 and not float(number).is_integer():
        raise _error(option, source, f"{text!r} is not a whole number of bytes", _SIZE_HINT)
    return int(float(number) * multiplier)


_PERCENT_HINT = "write a percentage such as 10% or a fraction such as 0.1"


def parse_percent(value: Any, *, option: str = "percent", source: str | None = None) -> float:
    """A fraction in [0, 1) from ``10%`` (-> 0.10) or ``0.1``.

    A bare number of 1 or more (``10``) is ambiguous and rejected with a hint to write ``10%``.
    """
    if _is_number(value) or isinstance(value, str):
        text = str(value).strip()
    else:
        raise _error(
            option, source, f"expected a percentage, got {_describe(value)}", _PERCENT_HINT
        )
    if not text:
        raise _error(option, source, "is empty; expected a percentage", _PERCENT_HINT)
    if not _PERCENT_RE.fullmatch(text):
        raise _error(option, source, f"cannot read {text!r} as a percentage", _PERCENT_HINT)
    if text.endswith("%"):
        fraction = float(text[:-1].strip()) / 100.0
        if fraction >= 1:
            raise _error(option, source, f"{text} must be below 100%", _PERCENT_HINT)
        return fraction
    number = float(text)
    if number >= 1:
        raise _error(
            option,
            source,
            f"{text!r} is ambiguous: a fraction must be below 1",
            f"write {text}% for a percentage, or a fraction such as 0.1",
        )
    return number


def parse_bool(value: Any, *, option: str = "bool", source: str | None = None) -> bool:
    """``true/false``, ``yes/no``, ``on/off``, ``1/0`` in any case; anything else is an error."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    text = value.strip().lower() if isinstance(value, str) else None
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise _error(
        option,
        source,
        f"cannot read {value!r} as true or false",
        "write true or false (yes/no, on/off and 1/0 also work)",
    )


def _parse_int(value: Any, *, option: str, source: str | None) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and re.fullmatch(r"[+-]?[0-9]+", value.strip()):
        return int(value.strip())
    raise _error(
        option, source, f"cannot read {value!r} as a whole number", "write a number such as 0 or 42"
    )


def _parse_float(value: Any, *, option: str, source: str | None) -> float:
    try:
        number = float(value) if _is_number(value) or isinstance(value, str) else math.nan
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise _error(
            option, source, f"cannot read {value!r} as a number", "write a number such as 1.5"
        )
    return number


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing"
    return repr(value)


# --------------------------------------------------------------------------------------------
# Config
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    """The effective options, converted. One attribute per option (snake_case of its name).

    Conventions for special values:

    - ``reserve``: seconds, or ``None`` for ``auto`` (the core keeps a share of the budget).
    - ``memory_limit``: bytes; ``None`` for ``auto`` (fit to the machine), ``0`` for ``none``
      (no memory limit).
    - ``cpu_limit``: seconds of CPU per stage; ``None`` for ``auto``, ``0.0`` for ``none``.
    - ``safety_margin``: a fraction in [0, 1) (``10%`` -> 0.1).
    - ``expect_records``: ``"per-example"``, ``"any"`` or a non-negative ``int``.
    - ``stages``: stage names as written (``"mini"``, ``"10"``, ``"max"``); the core decides sizes.
    - ``examples_key``: a JSON pointer such as ``"/data"``, or ``None``.
    - ``shard``: ``(index, count)`` with 1 <= index <= count, or ``None``.
    - Paths are absolute: file paths relative to the config file's folder, CLI and environment
      paths relative to the ``cwd`` given to :func:`load_config`.

    ``sources`` maps every option name to ``default``, ``file:<path>``, ``env:SCALEUP_X`` or
    ``cli``. ``config_file`` is the file that was read, if any.
    """

    command: str
    full_file: Path
    mini_file: Path | None
    examples_key: str | None
    schema: Path | None
    schema_target: str
    expect_records: str | int
    stages: tuple[str, ...]
    time_budget: float
    safety_margin: float
    reserve: float | None
    memory_limit: int | None
    memory_enforcement: str
    cpu_limit: float | None
    sample: str
    seed: int
    final_pass: bool
    out_dir: Path
    working_directory: Path
    shell: bool
    mock_guard: str
    mock_patterns: tuple[str, ...]
    planner: str
    progressive: str
    fail_fast: bool
    grace_period: float
    redact: tuple[str, ...]
    log_max_bytes: int
    max_processes: int
    shard: tuple[int, int] | None
    sources: dict[str, str] = dataclasses.field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    config_file: Path | None = None

    def get(self, option: str) -> Any:
        """The converted value of ``option`` by its kebab-case name."""
        if option not in OPTIONS:
            raise KeyError(option)
        return getattr(self, field_name(option))

    def to_dict(self) -> dict[str, Any]:
        """The effective options as JSON-able values, keyed by kebab-case name, in schema order."""
        return {name: _jsonable(self.get(name)) for name in OPTIONS}


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return [_jsonable(item) for item in value]
    return value


# --------------------------------------------------------------------------------------------
# Reading the config file
# --------------------------------------------------------------------------------------------


class _LinedDict(dict):  # type: ignore[type-arg]
    """A mapping that remembers the line (1-based) of each key."""

    lines: dict[str, int]


class _DuplicateKey(Exception):
    def __init__(self, key: str, line: int, first_line: int) -> None:
        super().__init__(key)
        self.key, self.line, self.first_line = key, line, first_line


@functools.cache
def _string_loader() -> Any:
    """The YAML loader class, built on first use (PyYAML is imported only for a config file)."""
    import yaml

    class _StringLoader(yaml.BaseLoader):  # type: ignore[misc]
        """Every scalar is a string (no YAML 1.1 coercions); duplicate keys are an error."""

        def construct_mapping(self, node: Any, deep: bool = False) -> Any:  # noqa: FBT001, FBT002
            if not isinstance(node, yaml.MappingNode):
                raise yaml.constructor.ConstructorError(
                    None, None, f"expected a mapping, found {node.id}", node.start_mark
                )
            mapping = _LinedDict()
            mapping.lines = {}
            for key_node, value_node in node.value:
                key = self.construct_object(key_node, deep=deep)
                if not isinstance(key, str):
                    raise yaml.constructor.ConstructorError(
                        None, None, "a key must be a plain name", key_node.start_mark
                    )
                line = key_node.start_mark.line + 1
                if key in mapping:
                    raise _DuplicateKey(key, line, mapping.lines[key])
                mapping[key] = self.construct_object(value_node, deep=deep)
                mapping.lines[key] = line
            return mapping



    return _StringLoader


def _read_config_file(path: Path) -> tuple[dict[str, Any], dict[str, int]]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc})", hint="save the file as UTF-8") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc.strerror})") from exc
    import yaml

    try:
        data = yaml.load(text, Loader=_string_loader())  # noqa: S506 - BaseLoader builds only str/list/dict
    except _DuplicateKey as exc:
        raise ConfigError(
            f"{path}, line {exc.line}: duplicate key {exc.key!r} "
            f"(first set on line {exc.first_line})",
            hint=f"keep only one {exc.key!r} entry",
        ) from exc
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f", line {mark.line + 1}" if mark is not None else ""
        problem = " ".join(p for p in (exc.context, exc.problem) if p)
        raise ConfigError(
            f"{path}{line}: YAML syntax error: {problem}", hint="fix the YAML at that line"
        ) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: YAML error: {exc}", hint="fix the YAML") from exc
    if data is None or data == "":
        return {}, {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: the top level must be a mapping of option: value, found {_describe(data)}",
            hint="write one option per line, such as `time-budget: 45m`",
        )
    lines = getattr(data, "lines", {})
    return dict(data), dict(lines)


def _suggest(name: str) -> str | None:
    norm = name.strip().lower().replace("_", "-").replace(" ", "-")
    if norm in OPTIONS:
        return norm
    if norm in _ALIASES:
        return _ALIASES[norm]
    close = difflib.get_close_matches(norm, list(OPTIONS), n=1, cutoff=0.6)
    return close[0] if close else None


def _unknown_key_error(key: str, where: str, *, spell: str = "{}") -> ConfigError:
    suggestion = _suggest(key)
    if suggestion is not None:
        return ConfigError(
            f"unknown option {spell.format(key)!r} ({where}); "
            f"did you mean {spell.format(suggestion)!r}?",
            hint=f"rename it to {spell.format(suggestion)}",
        )
    valid = ", ".join(spell.format(name) for name in OPTIONS)
    return ConfigError(
        f"unknown option {spell.format(key)!r} ({where})", hint=f"valid options: {valid}"
    )


# --------------------------------------------------------------------------------------------
# Merging and converting
# --------------------------------------------------------------------------------------------


def _where(option: str, source: str, lines: Mapping[str, int]) -> str:
    """A human description of a source, for messages."""
    if source.startswith("file:"):
        line = lines.get(option)
        return f"in {source[5:]}" + (f", line {line}" if line else "")
    if source.startswith("env:"):
        return f"from environment variable {source[4:]}"
    if source == "cli":
        return f"from --{option}"
    return "the default"


def _how_to_set(option: str) -> str:
    return (
        f"pass --{option}, add `{option}: ...` to scaleup.yml, "
        f"or set the environment variable {env_name(option)}"
    )


def _prepare(option: str, value: Any) -> Any:
    """Trim surrounding whitespace from text values of non-string kinds (YAML already does)."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if isinstance(value, str) and OPTIONS[option]["x-kind"] not in ("string", "list"):
        return value.strip()
    return value


def _split_list(option: str, value: Any, where: str) -> list[str]:
    spec = OPTIONS[option]
    if isinstance(value, str):
        separator = spec.get("x-separator", ",")
        items: list[Any] = value.split(separator)
        if separator != "\n":
            items = [item.strip() for item in items]
        items = [item for item in items if item.strip()]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise _error(
            option,
            where,
            f"expected a list, got {_describe(value)}",
            "write a list or a comma-separated string",
        )
    out: list[str] = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (str, int)):
            raise _error(
                option, where, f"list item {_describe(item)} is not text", "write each item as text"
            )
        out.append(item if isinstance(item, str) else str(item))
    return out


def _convert_stages(items: list[str], where: str) -> tuple[str, ...]:
    option = "stages"
    hint = "list stages in increasing size, such as mini,10,50,100,200,max"
    if not items:
        raise _error(option, where, "no stages given", hint)
    names: list[str] = []
    previous: str | None = None
    previous_size = -1.0
    for raw in items:
        item = raw.strip().lower()
        if item == "mini":
            size = 0.0
        elif item == "max":
            size = math.inf
        elif item.isdigit() and int(item) > 0:
            item = str(int(item))
            size = float(item)
        else:
            raise _error(
                option,
                where,
                f"stage {raw!r} is not mini, max or a positive whole number",
                hint,
            )
        if size <= previous_size:
            if item == previous:
                problem = f"stage {item!r} appears twice"
            elif item == "mini":
                problem = "stage 'mini' must come first"
            elif previous == "max":
                problem = f"stage {item!r} comes after 'max', which must be last"
            else:
                problem = f"stage {item!r} is not larger than the stage before it ({previous!r})"
            raise _error(option, where, problem, hint)
        names.append(item)
        previous, previous_size = item, size
    return tuple(names)


def _resolve_path(value: str, base: Path) -> Path:
    path = Path(os.path.expanduser(value))
    if not path.is_absolute():
        path = base / path
    return Path(os.path.normpath(path))


def _convert(option: str, value: Any, where: str, base: Path) -> Any:
    """Convert one raw value by its ``x-kind``; raise ConfigError naming the option and source."""
    spec = OPTIONS[option]
    kind = spec["x-kind"]
    keywords: list[str] = spec.get("x-keywords", [])
    if isinstance(value, str) and value.strip() in keywords:
        word = value.strip()
        if word == "auto":
            return None
        return 0.0 if kind == "duration" else 0
    also = f" (or {' or '.join(keywords)})" if keywords else ""

    if kind == "duration":
        try:
            seconds = parse_duration(value, option=option, source=where)
        except ConfigError as exc:
            raise ConfigError(exc.message, hint=(exc.hint or "") + also) from None
        positive = "exclusiveMinimum" in spec or "none" in keywords
        if positive and seconds <= 0:
            hint = "write none to disable the limit" if "none" in keywords else _DURATION_HINT
            raise _error(option, where, "must be more than zero", hint)
        return seconds
    if kind == "size":
        try:
            size = parse_size(value, option=option, source=where)
        except ConfigError as exc:
            raise ConfigError(exc.message, hint=(exc.hint or "") + also) from None
        if size <= 0:
            hint = "write none to disable the limit" if "none" in keywords else _SIZE_HINT
            raise _error(option, where, "must be more than zero", hint)
        return size
    if kind == "percent":
        return parse_percent(value, option=option, source=where)
    if kind == "bool":
        return parse_bool(value, option=option, source=where)
    if kind == "int":
        number = _parse_int(value, option=option, source=where)
        if "minimum" in spec and number < spec["minimum"]:
            raise _error(option, where, f"must be at least {spec['minimum']}", None)
        return number
    if kind == "float":
        return _parse_float(value, option=option, source=where)
    if kind == "enum":
        choices: list[str] = spec.get("enum") or spec.get("x-choices") or []
        text = value.strip() if isinstance(value, str) else value
        if text in choices:
            return text
        close = difflib.get_close_matches(str(text).lower(), choices, n=1, cutoff=0.5)
        extra = f"; did you mean {close[0]!r}?" if close else ""
        raise _error(
            option,
            where,
            f"{text!r} is not one of {', '.join(choices)}{extra}",
            f"write one of: {', '.join(choices)}",
        )
    if kind == "list":
        items = _split_list(option, value, where)
        if option == "stages":
            return _convert_stages(items, where)
        if option == "redact":
            for pattern in items:
                try:
                    re.compile(pattern)
                except re.error as exc:
                    raise _error(
                        option,
                        where,
                        f"{pattern!r} is not a valid regular expression ({exc})",
                        "fix or escape the pattern",
                    ) from None
            return tuple(items)
        return tuple(item.strip() for item in items if item.strip())
    if kind == "path":
        if not isinstance(value, str) or not value.strip():
            raise _error(option, where, "is empty; expected a path", _how_to_set(option))
        return _resolve_path(value.strip(), base)
    # kind == "string"
    if not isinstance(value, str):
        value = str(value)
    return _convert_string(option, value, where)


def _convert_string(option: str, value: str, where: str) -> Any:
    if option == "command":
        if not value.strip():
            raise _error(option, where, "is empty", _how_to_set(option))
        return value
    if option == "examples-key":
        text = value.strip()
        if not text:
            return None
        if not text.startswith("/"):
            raise _error(
                option,
                where,
                f"{text!r} is not a JSON pointer",
                f"start it with a slash, such as /{text}",
            )
        return text
    if option == "expect-records":
        text = value.strip()
        if text in ("per-example", "any"):
            return text
        if text.isdigit():
            return int(text)
        raise _error(
            option,
            where,
            f"{text!r} is not per-example, any or a whole number",
            "write per-example, any, or a count such as 1",
        )
    if option == "shard":
        text = value.strip()
        if not text:
            return None
        match = re.fullmatch(r"([0-9]+) */ *([0-9]+)", text)
        if match is None:
            raise _error(
                option,
                where,
                f"{text!r} is not of the form I/N",
                "write the shard as I/N, such as 1/4",
            )
        index, count = int(match.group(1)), int(match.group(2))
        if not 1 <= index <= count:
            raise _error(
                option,
                where,
                f"{text!r}: the shard index must be between 1 and {count}",
                "write I/N with 1 <= I <= N, such as 1/4",
            )
        return (index, count)
    return value


def _command_warnings(command: str, *, shell: bool, where: str) -> list[str]:
    """Warnings for ``{word}``s in the command that look like a misspelt placeholder; a near
    miss (``{inpt}``, ``{ouput}``) is an error, as the script would be handed the literal text.
    With ``shell: true`` braces are common shell syntax (``awk '{print}'``), so only a warning."""
    warnings = []
    for word in sorted(set(re.findall(r"\{([A-Za-z_]+)\}", command))):
        if word in _PLACEHOLDERS:
            continue
        close = difflib.get_close_matches(word.lower(), _PLACEHOLDERS, n=1, cutoff=0.6)
        if not close:
            continue
        problem = (f"{{{word}}} is not a placeholder; did you mean {{{close[0]}}}? "
                   "(placeholders: {input} {output} {n} {stage} {full})")
        near = difflib.SequenceMatcher(None, word.lower(), close[0]).ratio() >= 0.75
        if near and not shell:
            raise _error("command", where, problem,
                         f"write {{{close[0]}}}; if {{{word}}} is meant literally, run the command "
                         "with `shell: true`")
        warnings.append(f"command: {problem}")
    return warnings


def _env_values(env: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    values: dict[str, str] = {}
    warnings: list[str] = []
    by_env = {env_name(name): name for name in OPTIONS}
    for var in sorted(env):
        if not var.startswith("SCALEUP_"):
            continue
        if var in by_env:
            if env[var] != "":
                values[by_env[var]] = env[var]
            continue
        if var in RESERVED_ENV:
            continue
        suggestion = _suggest(var[len("SCALEUP_") :])
        if suggestion is not None:
            warnings.append(
                f"environment variable {var} is not a scaleup-ci option and was ignored; "
                f"did you mean {env_name(suggestion)}?"
            )
    return values, warnings


def _find_config_file(config_path: str | None, cwd: Path) -> tuple[Path | None, list[str]]:
    if config_path == os.devnull:
        return None, []  # explicitly no config file (used by `scaleup-ci demo`)
    if config_path is not None:
        path = Path(os.path.expanduser(config_path))
        path = path if path.is_absolute() else cwd / path
        if not path.exists() or path.is_dir():
            what = "is a folder, not a file" if path.is_dir() else "does not exist"
            raise ConfigError(
                f"config file {path} {what}",
                hint="check the --config path, or leave it out to use scaleup.yml in the "
                "current folder",
            )
        return path, []
    found = [cwd / name for name in CONFIG_FILENAMES if (cwd / name).is_file()]
    warnings = []
    if len(found) > 1:
        warnings.append(f"both {found[0].name} and {found[1].name} exist; using {found[0].name}")
    return (found[0] if found else None), warnings

_FAST_OPTIONS: list[Any] = []


def _fast_options_validator() -> Any:
    """A cached jsonschema_rs validator for the options schema, or None when unavailable."""
    if not _FAST_OPTIONS:
        try:
            import jsonschema_rs

            _FAST_OPTIONS.append(
                jsonschema_rs.validator_for(SCHEMA, validate_formats=False, offline=True)
            )
        except Exception:  # noqa: BLE001 - missing wheel or unsupported keyword
            _FAST_OPTIONS.append(None)
    return _FAST_OPTIONS[0]


def _schema_problems(raw: Mapping[str, Any]) -> dict[str, str]:
    """Validate ``raw`` against the options schema: option -> first message."""
    # Decide with the compiled validator (fast to import); import jsonschema (~0.15 s of start-up,
    # mostly its format checkers) only to explain a failure.
    fast = _fast_options_validator()
    if fast is not None:
        try:
            if fast.is_valid(dict(raw)):
                return {}
        except Exception:  # noqa: BLE001 - fall back to jsonschema
            pass
    import jsonschema

    validator = jsonschema.Draft202012Validator(SCHEMA)
    problems: dict[str, str] = {}
    for error in validator.iter_errors(dict(raw)):
        key = str(error.absolute_path[0]) if error.absolute_path else ""
        problems.setdefault(key, error.message)
    return problems


def _raise_all(errors: list[ConfigError]) -> None:
    if not errors:
        return
    if len(errors) == 1:
        raise errors[0]
    lines = [f"{len(errors)} problems in the configuration:"]
    lines += [f"  - {err.message}" + (f" (hint: {err.hint})" if err.hint else "") for err in errors]
    raise ConfigError("\n".join(lines))


def load_config(
    cli: Mapping[str, Any],
    env: Mapping[str, str],
    *,
    config_path: str | None,
    cwd: Path,
) -> Config:
    """Merge defaults < config file < environment < CLI, validate and convert.

    ``cli`` holds only the options the user passed (kebab-case keys; snake_case keys and ``None``
    values are tolerated so that ``vars(argparse_namespace)`` works). ``env`` is the environment:
    only ``SCALEUP_<OPTION>`` variables are read, empty values are ignored, and unknown
    ``SCALEUP_*`` names that look like typos give a warning. ``config_path=None`` means
    ``cwd/scaleup.yml`` (or ``scaleup.yaml``) when present; ``os.devnull`` means no file.
    """
    cwd = Path(os.path.abspath(cwd))
    raw: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name, spec in OPTIONS.items():
        sources[name] = "default"
        if "default" in spec:
            raw[name] = spec["default"]
    warnings: list[str] = []
    lines: dict[str, int] = {}

    # The config file.
    path, found_warnings = _find_config_file(config_path, cwd)
    warnings += found_warnings
    if path is not None:
        path = Path(os.path.abspath(path))
        data, lines = _read_config_file(path)
        errors = [
            _unknown_key_error(key, f"in {path}, line {lines.get(key, '?')}")
            for key in data
            if key not in OPTIONS
        ]
        _raise_all(errors)
        for key, value in data.items():
            raw[key] = value
            sources[key] = f"file:{path}"

    # The environment.
    env_values, env_warnings = _env_values(env)
    warnings += env_warnings
    for key, value in env_values.items():
        raw[key] = value
        sources[key] = f"env:{env_name(key)}"

    # The command line.
    errors = []
    for key, value in cli.items():
        if value is None:
            continue
        name = key.replace("_", "-")
        if name not in OPTIONS:
            errors.append(_unknown_key_error(name, "on the command line", spell="--{}"))
            continue
        raw[name] = value
        sources[name] = "cli"
    _raise_all(errors)

    # Required options.
    missing = [name for name, spec in OPTIONS.items() if spec.get("x-required") and name not in raw]
    _raise_all(
        [
            ConfigError(f"{name} is not set; it is required", hint=_how_to_set(name))
            for name in missing
        ]
    )

    raw = {name: _prepare(name, value) for name, value in raw.items()}

    def where(name: str) -> str:
        return _where(name, sources[name], lines)

    def base(name: str) -> Path:
        return path.parent if path is not None and sources[name].startswith("file:") else cwd

    # The schema validates the merged mapping; messages come from the converters when they can.
    errors = []
    bad = _schema_problems(raw)
    for key, message in bad.items():
        if key not in OPTIONS:
            errors.append(ConfigError(f"configuration: {message}"))
            continue
        try:
            _convert(key, raw[key], where(key), base(key))
        except ConfigError as exc:
            errors.append(exc)
        else:
            errors.append(
                _error(key, where(key), message, f"see `scaleup-ci run --help` for {key}")
            )
    _raise_all(errors)

    values: dict[str, Any] = {}
    for name in OPTIONS:
        if name not in raw:
            values[field_name(name)] = None
            continue
        try:
            values[field_name(name)] = _convert(name, raw[name], where(name), base(name))
        except ConfigError as exc:
            errors.append(exc)
    _raise_all(errors)

    reserve, budget = values["reserve"], values["time_budget"]
    if reserve is not None and reserve >= budget:
        raise _error(
            "reserve",
            where("reserve"),
            f"{reserve:g}s is not less than time-budget ({budget:g}s)",
            "lower reserve, raise time-budget, or use reserve: auto",
        )
    if path is not None and sources["working-directory"] == "default":
        # A config file describes a project rooted at its folder: its relative paths start
        # there, so the command runs there too (unless working-directory says otherwise).
        values["working_directory"] = path.parent
    warnings += _command_warnings(values["command"], shell=bool(values["shell"]),
                                  where=where("command"))

    return Config(
        **values,
        sources=sources,
        warnings=tuple(warnings),
        config_file=path,
    )
