"""Check a stage's output against the user's JSON Schema.

Two validators work together:

* a compiled fast validator (``jsonschema_rs``) decides whether each record is valid;
* ``jsonschema`` explains failures (the first few errors, with JSON paths) and is the reference:
  when the two disagree, ``jsonschema``'s verdict wins and a note says so.

Known disagreements (see ``tests/unit/validate_corpus/known_differences.json``): for
``format: date-time``/``date``/``time`` (leap seconds, year 0000) and for a fractional
``multipleOf``, ``jsonschema_rs`` accepts values that ``jsonschema`` rejects. A schema using those
keywords has every record the fast validator accepts confirmed by ``jsonschema`` (slower, but
correct by the reference). The reverse direction (``email``, some regular expressions, where the
fast validator is stricter) is caught for free, because a rejected record is always explained by
``jsonschema`` and accepted when it finds no error.

Output is JSONL (streamed line by line, split on ``b"\\n"`` only, so U+2028 inside a string never
splits a record) or a JSON document (an array is a list of records; an object is one record).
NaN, Infinity and -Infinity are rejected. A UTF-8 BOM and CRLF line ends are accepted.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scaleup_ci.errors import RELATIVE_PATHS, InputError

if TYPE_CHECKING:  # jsonschema is imported lazily: it costs ~0.15 s of start-up (format checkers)
    import jsonschema
    import jsonschema.exceptions

try:  # pragma: no cover - exercised only when the wheel is missing
    import jsonschema_rs
except ImportError:  # pragma: no cover
    jsonschema_rs = None  # type: ignore[assignment]

try:  # strict JSON (no NaN/Infinity) from bytes, 2-3x faster than json.loads
    from orjson import loads as _fast_loads
except ImportError:  # pragma: no cover - the stdlib parser does the same, slower
    _fast_loads = None  # type: ignore[assignment]

__all__ = [
    "RecordError",
    "RecordValidator",
    "StreamValidator",
    "ValidationResult",
    "load_schema",
    "validate_output",
]

MESSAGE_LIMIT = 300
EXPLAIN_LIMIT = 3
_EXPLAIN_SCAN = 100  # errors collected from jsonschema before sorting by path
_BOM = b"\xef\xbb\xbf"
_CHUNK = 1 << 20
_FAST_LENIENT_FORMATS = frozenset({"date-time", "date", "time"})
#: $schema URIs whose metaschema jsonschema_rs checks offline (None: no $schema, 2020-12).
_FAST_META = frozenset({
    None,
    "https://json-schema.org/draft/2020-12/schema",
    "https://json-schema.org/draft/2020-12/schema#",
    "https://json-schema.org/draft/2019-09/schema",
    "https://json-schema.org/draft/2019-09/schema#",
    "http://json-schema.org/draft-07/schema",
    "http://json-schema.org/draft-07/schema#",
    "http://json-schema.org/draft-06/schema",
    "http://json-schema.org/draft-06/schema#",
})  # draft-04 (whose "id" is also a common property name) always goes to jsonschema


_URI_KEYS = frozenset({"$id", "$ref", "$dynamicRef", "$recursiveRef", "$anchor",
                       "$dynamicAnchor", "$vocabulary"})
_LOCAL_REF = re.compile(r"#(?:/[A-Za-z0-9_.~%$-]*)*")


def _fast_meta_ok(schema: dict[str, Any]) -> bool:
    """True when jsonschema_rs finds ``schema`` valid against its (known) metaschema.

    A False answer proves nothing: the caller then asks jsonschema, which also explains.
    """
    if jsonschema_rs is None or schema.get("$schema") not in _FAST_META:
        return False
    # The metaschemas' own formats (regex, uri-reference) are not checked by jsonschema_rs: check
    # regular expressions with Python's re (as jsonschema does) and leave URIs to jsonschema.
    for node in _walk_schema(schema):
        for key in _URI_KEYS.intersection(node):
            value = node[key]
            if not (isinstance(value, str) and _LOCAL_REF.fullmatch(value)):
                return False
        patterns = list(node["patternProperties"]) if isinstance(
            node.get("patternProperties"), dict) else []
        if isinstance(node.get("pattern"), str):
            patterns.append(node["pattern"])
        for pattern in patterns:
            try:
                re.compile(pattern)
            except (re.error, RecursionError, OverflowError):
                return False
    try:
        return bool(jsonschema_rs.meta.is_valid(schema))
    except Exception:  # noqa: BLE001 - anything odd: let jsonschema decide
        return False


# ---------------------------------------------------------------------------------------------
# Records, results
# ---------------------------------------------------------------------------------------------


def _truncate(message: str, limit: int = MESSAGE_LIMIT) -> str:
    return message if len(message) <= limit else message[: limit - 1] + "…"


@dataclass
class RecordError:
    """One problem with one record: where it is (index, line, JSON path) and what is wrong."""

    index: int
    line: int | None
    path: str
    message: str

    def __post_init__(self) -> None:
        self.message = _truncate(self.message)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        where = f"record {self.index}"
        if self.line is not None:
            where += f" (line {self.line})"
        return f"{where} at {self.path}: {self.message}"


@dataclass
class ValidationResult:
    """The verdict on one output file.

    ``error_count`` counts invalid records (for ``target="document"``: 1 when the document is
    invalid); ``errors`` holds the first few errors (a record may contribute several).
    ``digest`` is a BLAKE2b-128 hex digest over the records in order: the trimmed bytes of each
    JSONL line, or each record's canonical JSON for a JSON document (or with
    ``canonical_digest=True``).
    """

    valid: bool
    records: int
    errors: list[RecordError] = field(default_factory=list)
    error_count: int = 0
    expected: int | None = None
    count_ok: bool = True
    problem: str | None = None
    format: str = "jsonl"
    digest: str = ""
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "valid": self.valid,
            "records": self.records,
            "errors": [e.to_dict() for e in self.errors],
            "error_count": self.error_count,
            "expected": self.expected,
            "count_ok": self.count_ok,
            "problem": self.problem,
            "format": self.format,
            "digest": self.digest,
            "notes": list(self.notes),
        }

    def describe_first_error(self) -> str:
        """A one-line description of the first error (or the problem), e.g. for a summary."""
        if self.errors:
            return self.errors[0].describe()
        return self.problem or ""


# ---------------------------------------------------------------------------------------------
# Schema loading
# ---------------------------------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON (NaN, Infinity and -Infinity are not allowed)")


def _schema_path(error: jsonschema.exceptions._Error) -> str:
    json_path = getattr(error, "json_path", None)
    if json_path is None:  # pragma: no cover - jsonschema < 4.0
        json_path = "$" + "".join(
            f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path
        )
    if json_path == "$":
        return "(root)"
    return json_path[2:] if json_path.startswith("$.") else json_path[1:]


def load_schema(path: Path) -> dict[str, Any]:
    """Read a JSON (or YAML) schema and check it against its own ``$schema`` metaschema."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(
            f"schema file {path} does not exist",
            hint=f"check the `schema` option ({RELATIVE_PATHS})",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(
            f"cannot read schema file {path}: {exc}", hint="save the schema as UTF-8 text"
        ) from None

    schema: Any
    if path.suffix.lower() in (".yml", ".yaml"):
        import yaml

        try:
            schema = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else f"{path}"
            problem = getattr(exc, "problem", None) or str(exc)
            raise InputError(
                f"{where}: schema is not valid YAML: {problem}",
                hint="fix the YAML syntax at that position (indentation is the usual cause)",
            ) from None
    else:
        try:
            schema = json.loads(text, parse_constant=_reject_constant)
        except json.JSONDecodeError as exc:
            raise InputError(
                f"{path}:{exc.lineno}:{exc.colno}: schema is not valid JSON: {exc.msg}",
                hint="fix the JSON syntax at that position "
                "(a trailing comma or a missing quote is the usual cause)",
            ) from None
        except ValueError as exc:
            raise InputError(
                f"{path}: schema is not valid JSON: {exc}", hint="use a finite number instead"
            ) from None

    if not isinstance(schema, dict):
        raise InputError(
            f"{path}: a schema must be a JSON object, found {type(schema).__name__}",
            hint='start the schema with "{", e.g. {"type": "object", "properties": {...}}',
        )

    sentinel: Any = object()
    meta = schema.get("$schema")
    if meta is not None and not isinstance(meta, str):
        raise InputError(
            f"{path}: $schema must be a string URI, found {type(meta).__name__}",
            hint='use e.g. "https://json-schema.org/draft/2020-12/schema"',
        )
    if _fast_meta_ok(schema):
        return schema
    import jsonschema
    import jsonschema.exceptions
    import jsonschema.validators

    cls: Any = jsonschema.validators.validator_for(schema, default=sentinel)
    if cls is sentinel:
        if meta is None:
            cls = jsonschema.Draft202012Validator
        else:
            raise InputError(
                f"{path}: unknown $schema {meta!r}",
                hint="use a JSON Schema draft URI such as "
                '"https://json-schema.org/draft/2020-12/schema" or '
                '"http://json-schema.org/draft-07/schema#", or drop $schema for 2020-12',
            )
    try:
        cls.check_schema(schema)
    except jsonschema.exceptions.SchemaError as exc:
        raise InputError(
            f"{path}: schema is invalid at {_schema_path(exc)}: {_truncate(exc.message)}",
            hint=f"fix that keyword; the schema must follow {meta or 'JSON Schema draft 2020-12'}",
        ) from None
    return schema


# ---------------------------------------------------------------------------------------------
# Record validation
# ---------------------------------------------------------------------------------------------


def _walk_schema(node: Any) -> Iterator[dict[str, Any]]:
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _fast_lenient_features(schema: Any) -> list[str]:
    """Keywords where jsonschema_rs is known to accept what jsonschema rejects."""
    found: set[str] = set()
    for node in _walk_schema(schema):
        fmt = node.get("format")
        if isinstance(fmt, str) and fmt in _FAST_LENIENT_FORMATS:
            found.add(f"format {fmt}")
        mult = node.get("multipleOf")
        if isinstance(mult, float) and not mult.is_integer():
            found.add("fractional multipleOf")
    return sorted(found)


def _sort_key(error: jsonschema.exceptions.ValidationError) -> tuple[Any, ...]:
    return tuple((0, p, "") if isinstance(p, int) else (1, 0, str(p)) for p in error.absolute_path)


class RecordValidator:
    """Decide validity fast (jsonschema_rs) and explain failures precisely (jsonschema)."""

    def __init__(self, schema: dict[str, Any], *, fast: bool = True) -> None:
        self.schema = schema
        self.notes: list[str] = []
        self._noted: set[str] = set()
        self._slow_validator: Any = None  # built on first use (importing jsonschema is slow)
        self._fast: Any = None
        self.confirm = False
        if fast:
            if jsonschema_rs is None:  # pragma: no cover
                self.note(
                    "fast validator unavailable: jsonschema_rs is not installed; using jsonschema"
                )
            else:
                try:
                    self._fast = jsonschema_rs.validator_for(
                        schema, validate_formats=True, offline=True
                    )
                except Exception as exc:  # noqa: BLE001 - any compile failure means fall back
                    first = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
                    self.note(
                        f"fast validator unavailable: {_truncate(first, 200)}; using jsonschema"
                    )
        if self._fast is not None:
            lenient = _fast_lenient_features(schema)
            if lenient:
                self.confirm = True
                self.note(
                    "schema uses " + ", ".join(lenient) + ", where jsonschema_rs accepts values "
                    "jsonschema rejects; confirming accepted records with jsonschema (slower)"
                )

    @property
    def _slow(self) -> Any:
        """The jsonschema validator (the reference, and the one that explains failures)."""
        if self._slow_validator is None:
            import jsonschema
            import jsonschema.validators

            cls: Any = jsonschema.validators.validator_for(
                self.schema, default=jsonschema.Draft202012Validator
            )
            self._slow_validator = cls(self.schema, format_checker=cls.FORMAT_CHECKER)
        return self._slow_validator

    @property
    def fast(self) -> bool:
        """True when the compiled validator is in use."""
        return self._fast is not None

    def note(self, text: str) -> None:
        """Record a note once."""
        if text not in self._noted:
            self._noted.add(text)
            self.notes.append(text)

    # -- the slow, explaining side ------------------------------------------------------------

    def _slow_errors(self, instance: Any) -> list[jsonschema.exceptions.ValidationError]:
        import referencing.exceptions

        collected: list[jsonschema.exceptions.ValidationError] = []
        try:
            for error in self._slow.iter_errors(instance):
                collected.append(error)
                if len(collected) >= _EXPLAIN_SCAN:
                    break
        except referencing.exceptions.Unresolvable as exc:
            raise InputError(
                f"schema reference cannot be resolved: {exc}",
                hint="bundle every $ref target into the schema under $defs",
            ) from None
        collected.sort(key=_sort_key)
        return collected

    def explain(
        self, instance: Any, index: int, line: int | None = None, *, limit: int = EXPLAIN_LIMIT
    ) -> list[RecordError]:
        """Up to ``limit`` errors for one instance, sorted by path (empty when it is valid)."""
        errors = self._slow_errors(instance)
        return [
            RecordError(index, line, getattr(e, "json_path", "$"), e.message)
            for e in errors[:limit]
        ]

    errors = explain  # the name in docs/INTERNALS.md

    # -- verdicts --------------------------------------------------------------------------

    def check(
        self, instance: Any, index: int, line: int | None = None, *, limit: int = EXPLAIN_LIMIT
    ) -> list[RecordError]:
        """Errors for one instance (empty when valid), with both validators reconciled."""
        fast = self._fast
        if fast is not None:
            try:
                ok = fast.is_valid(instance)
            except Exception as exc:  # noqa: BLE001 - e.g. a value the Rust side cannot take
                self.note(
                    f"fast validator failed on record {index} ({_truncate(str(exc), 120)}); "
                    "using jsonschema for such records"
                )
                return self.explain(instance, index, line, limit=limit)
            if ok and not self.confirm:
                return []
            found = self.explain(instance, index, line, limit=limit)
            if not ok and not found:
                self.note(
                    f"validators disagree on record {index}: jsonschema_rs rejects it, jsonschema "
                    "accepts it; trusting jsonschema (later disagreements are handled the same way)"
                )
            elif ok and found:
                self.note(
                    f"validators disagree on record {index}: jsonschema_rs accepts it, jsonschema "
                    "rejects it; trusting jsonschema"
                )
            return found
        return self.explain(instance, index, line, limit=limit)

    def is_valid(self, instance: Any) -> bool:
        """True when the instance passes the schema (jsonschema decides any disagreement)."""
        fast = self._fast
        if fast is not None:
            try:
                ok = fast.is_valid(instance)
            except Exception:  # noqa: BLE001
                return bool(self._slow.is_valid(instance))
            if ok and not self.confirm:
                return True
        return not self._slow_errors(instance)


# ---------------------------------------------------------------------------------------------
# Streaming
# ---------------------------------------------------------------------------------------------


Consumer = Callable[[int, Any], None]


class StreamValidator:
    """Validate JSONL lines one at a time, keeping only bounded state.

    State: the record count, the first ``max_errors`` errors, the error count and a running
    BLAKE2b digest of the records (the trimmed bytes of each line; ``canonical_digest=True``
    hashes each record's canonical JSON instead, which is slower). ``consumers`` are called as
    ``consumer(index, obj)`` for every record that parses, whether or not it is valid.
    """

    def __init__(
        self,
        validator: RecordValidator | None,
        *,
        target: str = "record",
        max_errors: int = 5,
        fail_fast: bool = False,
        canonical_digest: bool = False,
        consumers: Iterable[Consumer] = (),
    ) -> None:
        if target not in ("record", "document"):
            raise ValueError(f"target must be 'record' or 'document', not {target!r}")
        self.validator = validator if target == "record" else None
        self._notes_from = validator
        self.target = target
        self.max_errors = max_errors
        self.fail_fast = fail_fast
        self.canonical_digest = canonical_digest
        self.consumers: list[Consumer] = list(consumers)
        self.records = 0
        self.error_count = 0
        self.parse_errors = 0
        self.errors: list[RecordError] = []
        self.stopped = False
        self.last_line = 0
        self.notes: list[str] = []
        self._hash = hashlib.blake2b(digest_size=16)
        self._decode = json.JSONDecoder(parse_constant=_reject_constant).decode
        self._encode = json.JSONEncoder(
            sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode

    # -- bookkeeping -------------------------------------------------------------------------

    def _add(self, errors: list[RecordError]) -> RecordError:
        self.error_count += 1
        if len(self.errors) < self.max_errors:
            self.errors.extend(errors[: max(1, self.max_errors - len(self.errors))])
        if self.fail_fast:
            self.stopped = True
        return errors[0]

    def _parse_error(self, raw: bytes, line_no: int, exc: BaseException) -> RecordError | None:
        """Handle a line that did not parse: blank lines are skipped, others are errors."""
        if not raw.strip() or raw.strip() == _BOM:
            return None
        index = self.records
        self.records += 1
        self.parse_errors += 1
        if isinstance(exc, UnicodeDecodeError):
            message = f"line {line_no} is not valid UTF-8 (byte {exc.start})"
        elif isinstance(exc, json.JSONDecodeError):
            message = f"invalid JSON on line {line_no}: {exc.msg} (column {exc.colno})"
        else:
            message = f"invalid JSON on line {line_no}: {exc}"
        return self._add([RecordError(index, line_no, "$", message)])

    def _record(self, obj: Any, raw: bytes | None, line_no: int | None) -> RecordError | None:
        index = self.records
        self.records += 1
        if self.canonical_digest or raw is None:
            self._hash.update(self._encode(obj).encode("utf-8", "surrogatepass") + b"\n")
        else:
            self._hash.update(raw.strip() + b"\n")
        for consumer in self.consumers:
            consumer(index, obj)
        validator = self.validator
        if validator is not None:
            found = validator.check(obj, index, line_no)
            if found:
                return self._add(found)
        return None

    # -- public API --------------------------------------------------------------------------

    def feed(self, line: bytes, line_no: int | None = None) -> RecordError | None:
        """Validate one complete JSONL line; returns its first error, or None."""
        if line_no is None:
            line_no = self.last_line + 1
        self.last_line = line_no
        if self.stopped:
            return None
        if line_no == 1 and line.startswith(_BOM):
            line = line[3:]
        try:
            obj = self._decode(line.decode("utf-8"))
        except (ValueError, RecursionError) as exc:  # also UnicodeDecodeError, NaN/Infinity
            return self._parse_error(line, line_no, exc)
        return self._record(obj, line, line_no)

    def feed_value(self, obj: Any, line_no: int | None = None) -> RecordError | None:
        """Validate one already-parsed record (an element of a JSON array document)."""
        if self.stopped:
            return None
        return self._record(obj, None, line_no)

    def feed_lines(self, lines: Iterable[bytes], first_line_no: int) -> int:
        """Validate many complete lines; returns the next line number. The hot path."""
        decode = self._decode
        validator = self.validator
        fast_ok: Callable[[Any], bool] | None = None
        if validator is not None and validator._fast is not None and not validator.confirm:
            fast_ok = validator._fast.is_valid
        update = self._hash.update
        consumers = self.consumers
        per_line = self.canonical_digest or bool(consumers)
        line_no = first_line_no - 1
        if per_line or validator is None or fast_ok is None:
            for line in lines:
                line_no += 1
                if self.stopped:
                    break
                self.feed(line, line_no)
            self.last_line = max(self.last_line, line_no)
            return line_no + 1
        records = self.records
        # orjson parses the bytes directly and is as strict as ``decode`` (NaN and Infinity are
        # errors); anything it refuses (a BOM, a blank line, an integer beyond 64 bits, bad
        # JSON) takes the slow path, which decides with the stdlib parser and explains.
        fast_loads = _fast_loads
        for line in lines:
            line_no += 1
            try:
                obj = fast_loads(line) if fast_loads is not None else decode(line.decode())
            except (ValueError, RecursionError):
                # Slow path: blank line, BOM, parse error.
                self.records = records
                self.feed(line, line_no)
                records = self.records
                if self.stopped:
                    break
                continue
            try:
                ok = fast_ok(obj)
            except Exception:  # noqa: BLE001 - let check() note it and use jsonschema
                ok = False
            update(line.strip() + b"\n")
            if ok:
                records += 1
                continue
            found = validator.check(obj, records, line_no)
            records += 1
            if found:
                self.records = records
                self._add(found)
                if self.stopped:
                    break
        self.records = records
        self.last_line = max(self.last_line, line_no)
        return line_no + 1

    @property
    def digest(self) -> str:
        return self._hash.hexdigest()

    def result(
        self, *, expected: int | None = None, fmt: str = "jsonl", problem: str | None = None
    ) -> ValidationResult:
        """Freeze the current state into a ValidationResult."""
        count_ok = True
        problems = [problem] if problem else []
        if expected is not None and self.records != expected:
            count_ok = False
            problems.append(_count_message(expected, self.records))
        notes = list(self._notes_from.notes) if self._notes_from is not None else []
        notes += [n for n in self.notes if n not in notes]
        return ValidationResult(
            valid=self.error_count == 0 and count_ok and problem is None,
            records=self.records,
            errors=list(self.errors),
            error_count=self.error_count,
            expected=expected,
            count_ok=count_ok,
            problem="; ".join(problems) or None,
            format=fmt,
            digest=self.digest,
            notes=notes,
        )


def _count_message(expected: int, found: int) -> str:
    noun = "record" if expected == 1 else "records"
    return f"expected {expected} {noun} (one per input example), found {found}"


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------


def _iter_chunks(path: Path, skip: int) -> Iterator[bytes]:
    with path.open("rb") as fh:
        fh.seek(skip)
        while True:
            chunk = fh.read(_CHUNK)
            if not chunk:
                return
            yield chunk


def _detect_format(path: Path) -> tuple[str, int]:
    """Return ("empty"|"jsonl"|"json", bytes to skip for a BOM)."""
    with path.open("rb") as fh:
        first = fh.readline()
        skip = 3 if first.startswith(_BOM) else 0
        first = first[skip:]
        # Skip leading blank lines.
        while first and not first.strip():
            first = fh.readline()
        if not first:
            return "empty", skip
        head = first.lstrip()
        if head.startswith(b"["):
            return "json", skip
        if head.startswith(b"{"):
            try:
                json.loads(first.decode("utf-8"), parse_constant=_reject_constant)
            except json.JSONDecodeError:
                # An incomplete first line: a pretty-printed document, unless the next line
                # starts another record.
                second = fh.readline()
                return ("jsonl" if second.startswith(b"{") else "json"), skip
            except ValueError:  # bad UTF-8 or NaN: a complete but bad record
                pass
            return "jsonl", skip
        return "jsonl", skip


def _stream_jsonl(stream: StreamValidator, path: Path, skip: int) -> tuple[bytes, int]:
    """Feed every complete line; return the trailing partial line and its line number."""
    rest = b""
    line_no = 1
    for chunk in _iter_chunks(path, skip):
        lines = (rest + chunk).split(b"\n")
        rest = lines.pop()
        line_no = stream.feed_lines(lines, line_no)
        if stream.stopped:
            return b"", line_no
    return rest, line_no


def _count_remaining(path: Path, skip: int, stream: StreamValidator) -> None:
    """After a fail-fast stop, note how many records were left unchecked."""
    # Deliberately cheap: count non-blank lines after the last one checked.
    remaining = 0
    line_no = 0
    rest = b""
    for chunk in _iter_chunks(path, skip):
        lines = (rest + chunk).split(b"\n")
        rest = lines.pop()
        for line in lines:
            line_no += 1
            if line_no > stream.last_line and line.strip():
                remaining += 1
    if rest.strip() and line_no + 1 > stream.last_line:
        remaining += 1
    stream.notes.append(
        f"stopped at the first invalid record (fail-fast); {remaining} later "
        f"record{'s' if remaining != 1 else ''} not checked"
    )


def validate_output(
    path: Path,
    validator: RecordValidator | None,
    *,
    expected: int | None,
    target: str = "record",
    max_errors: int = 5,
    fail_fast: bool = False,
    canonical_digest: bool = False,
    consumers: Iterable[Consumer] = (),
) -> ValidationResult:
    """Parse a stage's output file, check every record (or the document) and the count."""
    path = Path(path)
    stream = StreamValidator(
        validator,
        target=target,
        max_errors=max_errors,
        fail_fast=fail_fast,
        canonical_digest=canonical_digest,
        consumers=consumers,
    )
    if not path.is_file():
        return stream.result(expected=expected, problem=f"output file {path} was not written")
    fmt, skip = _detect_format(path)
    if fmt == "empty":
        return stream.result(expected=expected)

    if fmt == "jsonl" and target == "record":
        rest, line_no = _stream_jsonl(stream, path, skip)
        if rest.strip() and not stream.stopped:
            err = stream.feed(rest, line_no)
            if err is not None and err.message.startswith("invalid JSON"):
                stream.notes.append(
                    f"the last line ({line_no}) has no newline and does not parse: "
                    "the script may have been stopped while writing it"
                )
        if stream.stopped:
            _count_remaining(path, skip, stream)
        return stream.result(expected=expected, fmt="jsonl")

    # A JSON document, or JSONL validated as one document: load it whole.
    document: Any
    if fmt == "jsonl":
        values: list[Any] = []
        stream.consumers.append(lambda _i, obj: values.append(obj))
        rest, line_no = _stream_jsonl(stream, path, skip)
        if rest.strip():
            stream.feed(rest, line_no)
        stream.consumers.pop()
        if stream.error_count:  # parse errors: no document to validate
            return stream.result(expected=expected, fmt="jsonl")
        document = values
    else:
        raw = path.read_bytes()[skip:]
        try:
            document = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
        except json.JSONDecodeError as exc:
            return stream.result(
                expected=expected,
                fmt="json",
                problem=f"output file {path} is not valid JSON: {exc.msg} "
                f"(line {exc.lineno}, column {exc.colno})",
            )
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError, NaN/Infinity, depth
            return stream.result(
                expected=expected,
                fmt="json",
                problem=f"output file {path} is not valid JSON: {exc}",
            )
        if target == "record":
            items = document if isinstance(document, list) else [document]
            for item in items:
                stream.feed_value(item)
                if stream.stopped:
                    stream.notes.append(
                        "stopped at the first invalid record (fail-fast); "
                        f"{len(items) - stream.records} later records not checked"
                    )
                    break
            result = stream.result(expected=expected, fmt="json")
            result.records = len(items)
            if expected is not None:
                result.count_ok = len(items) == expected
                result.problem = None if result.count_ok else _count_message(expected, len(items))
                result.valid = result.error_count == 0 and result.count_ok
            return result
        for item in document if isinstance(document, list) else [document]:
            if stream.consumers or canonical_digest:
                stream.feed_value(item)
            else:
                stream._hash.update(stream._encode(item).encode("utf-8", "surrogatepass") + b"\n")

    # target == "document": validate the whole document once.
    records = len(document) if isinstance(document, list) else 1
    stream.records = records
    if validator is not None:
        found = validator.check(document, 0, None, limit=max_errors)
        if found:
            stream.error_count = 1
            stream.errors = found[:max_errors]
    count_ok = True
    problem = None
    if expected is not None:
        if isinstance(document, list):
            count_ok = records == expected
            problem = None if count_ok else _count_message(expected, records)
        else:
            stream.notes.append("the document is not a list, so the record count was not checked")
    result = stream.result(expected=None, fmt=fmt)
    result.expected = expected
    result.count_ok = count_ok
    result.problem = problem
    result.valid = result.error_count == 0 and count_ok
    return result
