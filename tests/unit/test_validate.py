"""Tests for scaleup_ci.validate: parsing, schema checks, counts, the differential corpus."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import jsonschema_rs
import pytest

from scaleup_ci.errors import InputError
from scaleup_ci.validate import (
    RecordError,
    RecordValidator,
    StreamValidator,
    ValidationResult,
    load_schema,
    validate_output,
)

CORPUS = Path(__file__).parent / "validate_corpus"
D7 = "http://json-schema.org/draft-07/schema#"
D2020 = "https://json-schema.org/draft/2020-12/schema"

ANSWER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "answer": {"type": "integer"},
        "score": {"type": "number"},
    },
    "required": ["id", "answer"],
}


def write_lines(path: Path, records: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def good(n: int) -> list[dict[str, Any]]:
    return [{"id": f"ex-{i}", "answer": i, "score": i / 2} for i in range(n)]


@pytest.fixture
def validator() -> RecordValidator:
    return RecordValidator(ANSWER_SCHEMA)


# --- JSONL outputs -----------------------------------------------------------------------------


def test_valid_jsonl_passes(tmp_path: Path, validator: RecordValidator) -> None:
    """A JSONL file whose records all match the schema and the count is valid."""
    out = write_lines(tmp_path / "out.jsonl", good(5))
    result = validate_output(out, validator, expected=5)
    assert result.valid
    assert (result.records, result.error_count, result.format) == (5, 0, "jsonl")
    assert result.count_ok and result.problem is None
    assert len(result.digest) == 32


def test_invalid_record_names_index_line_and_path(
    tmp_path: Path, validator: RecordValidator
) -> None:
    """A bad record is reported with its 0-based index, 1-based line and JSON path."""
    records = good(4)
    records[2]["answer"] = "x"
    out = tmp_path / "out.jsonl"
    out.write_text(
        "\n".join(json.dumps(r) for r in records[:2])
        + "\n\n"
        + "\n".join(json.dumps(r) for r in records[2:])
        + "\n"
    )
    result = validate_output(out, validator, expected=4)
    assert not result.valid
    assert result.error_count == 1
    err = result.errors[0]
    assert (err.index, err.line, err.path) == (2, 4, "$.answer")
    assert "'x' is not of type 'integer'" in err.message
    assert result.describe_first_error() == (
        "record 2 (line 4) at $.answer: 'x' is not of type 'integer'"
    )


def test_nested_path_uses_json_path_syntax(tmp_path: Path) -> None:
    """Errors deep in arrays get paths like $.answer[0].x."""
    schema = {"properties": {"answer": {"items": {"properties": {"x": {"type": "integer"}}}}}}
    out = write_lines(tmp_path / "o.jsonl", [{"answer": [{"x": "no"}]}])
    result = validate_output(out, RecordValidator(schema), expected=1)
    assert result.errors[0].path == "$.answer[0].x"


def test_count_mismatch_is_a_problem(tmp_path: Path, validator: RecordValidator) -> None:
    """Fewer records than expected makes the output invalid with a clear message."""
    out = write_lines(tmp_path / "out.jsonl", good(48))
    result = validate_output(out, validator, expected=50)
    assert not result.valid and not result.count_ok
    assert result.problem == "expected 50 records (one per input example), found 48"
    assert result.error_count == 0


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_rejected(
    tmp_path: Path, validator: RecordValidator, constant: str
) -> None:
    """NaN, Infinity and -Infinity are parse errors naming the line and the constant."""
    out = tmp_path / "out.jsonl"
    second = '{"id": "b", "answer": 2, "score": ' + constant + "}"
    out.write_text('{"id": "a", "answer": 1}\n' + second + "\n")
    result = validate_output(out, validator, expected=2)
    assert not result.valid
    err = result.errors[0]
    assert (err.index, err.line) == (1, 2)
    assert constant.lstrip("-") in err.message and "line 2" in err.message


def test_missing_output_is_invalid(tmp_path: Path, validator: RecordValidator) -> None:
    """A script that wrote nothing gets a 'was not written' problem."""
    result = validate_output(tmp_path / "nope.jsonl", validator, expected=3)
    assert not result.valid
    assert result.problem is not None and "was not written" in result.problem


def test_empty_output_has_zero_records(tmp_path: Path, validator: RecordValidator) -> None:
    """An empty file is zero records (valid only when zero were expected)."""
    out = tmp_path / "out.jsonl"
    out.write_bytes(b"")
    assert validate_output(out, validator, expected=None).records == 0
    assert validate_output(out, validator, expected=None).valid
    assert not validate_output(out, validator, expected=2).valid


def test_u2028_inside_a_string_does_not_split(tmp_path: Path, validator: RecordValidator) -> None:
    """U+2028 and U+2029 are legal raw characters in JSON strings, not line breaks."""
    out = tmp_path / "out.jsonl"
    out.write_text(
        json.dumps({"id": "a\u2028b\u2029c\x85d", "answer": 1}, ensure_ascii=False) + "\n",
        encoding="utf-8",
    )
    result = validate_output(out, validator, expected=1)
    assert result.valid and result.records == 1


def test_bom_is_accepted(tmp_path: Path, validator: RecordValidator) -> None:
    """A UTF-8 byte order mark at the start of the file is skipped."""
    out = tmp_path / "out.jsonl"
    out.write_bytes(b"\xef\xbb\xbf" + b"".join(json.dumps(r).encode() + b"\n" for r in good(2)))
    result = validate_output(out, validator, expected=2)
    assert result.valid and result.format == "jsonl"


def test_crlf_line_ends_are_accepted(tmp_path: Path, validator: RecordValidator) -> None:
    """Windows line ends do not break parsing or the digest."""
    crlf = tmp_path / "crlf.jsonl"
    crlf.write_bytes(b"".join(json.dumps(r).encode() + b"\r\n" for r in good(3)))
    lf = write_lines(tmp_path / "lf.jsonl", good(3))
    result = validate_output(crlf, validator, expected=3)
    assert result.valid
    assert result.digest == validate_output(lf, validator, expected=3).digest


def test_fail_fast_stops_after_first_bad_record(tmp_path: Path, validator: RecordValidator) -> None:
    """With fail_fast the first bad record stops validation and later ones are not checked."""
    records: list[Any] = good(10)
    records[3]["answer"] = "bad"
    records[7]["answer"] = "bad"
    out = write_lines(tmp_path / "out.jsonl", records)
    result = validate_output(out, validator, expected=10, fail_fast=True)
    assert not result.valid and result.error_count == 1
    assert result.errors[0].index == 3
    assert any("fail-fast" in n and "6 later records" in n for n in result.notes)
    assert validate_output(out, validator, expected=10).error_count == 2


def test_max_errors_bounds_the_list_not_the_count(
    tmp_path: Path, validator: RecordValidator
) -> None:
    """Only the first max_errors errors are kept, but every error is counted."""
    out = write_lines(tmp_path / "out.jsonl", [{"id": 1, "answer": 1}] * 20)
    result = validate_output(out, validator, expected=20, max_errors=3)
    assert result.error_count == 20 and len(result.errors) == 3


def test_truncated_last_line_is_reported(tmp_path: Path, validator: RecordValidator) -> None:
    """A last line cut off mid-write is a parse error with a note about the missing newline."""
    out = tmp_path / "out.jsonl"
    out.write_text(json.dumps(good(1)[0]) + '\n{"id": "b", "ans')
    result = validate_output(out, validator, expected=2)
    assert not result.valid and result.errors[0].line == 2
    assert any("no newline" in n for n in result.notes)


def test_bad_utf8_is_a_parse_error(tmp_path: Path, validator: RecordValidator) -> None:
    """Invalid UTF-8 bytes are reported on their line rather than crashing."""
    out = tmp_path / "out.jsonl"
    out.write_bytes(b'{"id": "\xff", "answer": 1}\n')
    result = validate_output(out, validator, expected=1)
    assert not result.valid and "UTF-8" in result.errors[0].message


def test_validator_none_checks_parse_and_count(tmp_path: Path) -> None:
    """Without a schema only parsing and the count are checked."""
    out = write_lines(tmp_path / "out.jsonl", [{"anything": True}, [1, 2], "s"])
    assert validate_output(out, None, expected=3).valid
    out.write_text('{"a": 1}\nnot json\n')
    assert not validate_output(out, None, expected=2).valid


def test_long_messages_are_truncated() -> None:
    """Error messages are cut to 300 characters."""
    err = RecordError(0, 1, "$", "x" * 1000)
    assert len(err.message) == 300
    assert err.to_dict() == {"index": 0, "line": 1, "path": "$", "message": err.message}


# --- JSON documents ----------------------------------------------------------------------------


def test_json_array_document_is_a_list_of_records(
    tmp_path: Path, validator: RecordValidator
) -> None:
    """A pretty-printed JSON array is one record per element."""
    records: list[Any] = good(3)
    records[1]["answer"] = None
    out = tmp_path / "out.json"
    out.write_text(json.dumps(records, indent=2))
    result = validate_output(out, validator, expected=3)
    assert result.format == "json" and result.records == 3
    assert not result.valid and result.errors[0].index == 1
    assert result.errors[0].line is None and result.errors[0].path == "$.answer"


def test_single_pretty_object_is_one_document(tmp_path: Path, validator: RecordValidator) -> None:
    """A multi-line JSON object is one record."""
    out = tmp_path / "out.json"
    out.write_text(json.dumps(good(1)[0], indent=2))
    result = validate_output(out, validator, expected=1)
    assert result.valid and result.format == "json" and result.records == 1


def test_broken_json_document_names_line_and_column(
    tmp_path: Path, validator: RecordValidator
) -> None:
    """A malformed JSON document is a problem naming the line and column."""
    out = tmp_path / "out.json"
    out.write_text('[\n  {"id": "a", "answer": 1},\n  {"id": "b",, "answer": 2}\n]')
    result = validate_output(out, validator, expected=2)
    assert not result.valid
    assert result.problem is not None and "line 3" in result.problem


def test_target_document_validates_once(tmp_path: Path) -> None:
    """With target=document the whole file is validated once against the schema."""
    schema = {
        "type": "object",
        "required": ["accuracy", "items"],
        "properties": {"accuracy": {"type": "number", "maximum": 1}},
    }
    out = tmp_path / "out.json"
    out.write_text(json.dumps({"accuracy": 0.9, "items": [1, 2]}, indent=1))
    result = validate_output(out, RecordValidator(schema), expected=None, target="document")
    assert result.valid and result.records == 1
    out.write_text(json.dumps({"accuracy": 1.5, "items": []}, indent=1))
    bad = validate_output(out, RecordValidator(schema), expected=None, target="document")
    assert not bad.valid and bad.errors[0].path == "$.accuracy"


def test_target_document_counts_list_length(tmp_path: Path) -> None:
    """With target=document and a list, the expected count applies to the list length."""
    schema = {"type": "array", "items": {"type": "integer"}}
    out = tmp_path / "out.json"
    out.write_text("[1, 2, 3]")
    result = validate_output(out, RecordValidator(schema), expected=4, target="document")
    assert result.records == 3 and not result.count_ok and not result.valid
    assert validate_output(out, RecordValidator(schema), expected=3, target="document").valid


def test_target_document_with_jsonl_validates_the_list(tmp_path: Path) -> None:
    """With target=document a JSONL file is validated as the list of its records."""
    schema = {"type": "array", "maxItems": 2}
    out = write_lines(tmp_path / "out.jsonl", [1, 2, 3])
    result = validate_output(out, RecordValidator(schema), expected=3, target="document")
    assert not result.valid and result.errors[0].path == "$"


# --- Schemas -----------------------------------------------------------------------------------


def test_load_schema_json_and_yaml(tmp_path: Path) -> None:
    """Schemas load from JSON and from YAML."""
    (tmp_path / "s.json").write_text(json.dumps(ANSWER_SCHEMA))
    (tmp_path / "s.yaml").write_text("type: object\nrequired: [id]\n")
    assert load_schema(tmp_path / "s.json") == ANSWER_SCHEMA
    assert load_schema(tmp_path / "s.yaml") == {"type": "object", "required": ["id"]}


def test_bad_json_schema_names_line_and_column(tmp_path: Path) -> None:
    """A syntax error in the schema file is an InputError with file:line:column."""
    path = tmp_path / "s.json"
    path.write_text('{\n  "type": "object",\n}\n')
    with pytest.raises(InputError) as info:
        load_schema(path)
    # Python 3.13 points at the trailing comma (2:19), earlier versions at the brace (3:1).
    assert re.search(re.escape(str(path)) + r":[23]:\d+", str(info.value)) and info.value.hint


def test_bad_yaml_schema_names_line(tmp_path: Path) -> None:
    """A YAML syntax error names the file and the line."""
    path = tmp_path / "s.yml"
    path.write_text("type: object\nproperties: [\n")
    with pytest.raises(InputError, match=r"s\.yml:\d+:\d+"):
        load_schema(path)


def test_invalid_schema_rejected_with_path(tmp_path: Path) -> None:
    """A schema that breaks its metaschema is rejected naming the path inside it."""
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"properties": {"answer": {"type": "intger"}}}))
    with pytest.raises(InputError) as info:
        load_schema(path)
    assert "properties.answer.type" in info.value.message
    assert str(path) in info.value.message and info.value.hint


def test_unknown_schema_uri_rejected(tmp_path: Path) -> None:
    """An unknown $schema URI is an error rather than a silent default."""
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"$schema": "http://example.com/my-draft", "type": "object"}))
    with pytest.raises(InputError, match="unknown \\$schema"):
        load_schema(path)


def test_missing_schema_file(tmp_path: Path) -> None:
    """A missing schema file is an InputError naming it."""
    with pytest.raises(InputError, match="does not exist"):
        load_schema(tmp_path / "none.json")


def test_draft07_dependencies_honoured(tmp_path: Path) -> None:
    """A draft-07 schema gets draft-07 semantics, e.g. `dependencies`."""
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"$schema": D7, "dependencies": {"card": ["billing"]}}))
    v = RecordValidator(load_schema(path))
    assert v.is_valid({"card": 1, "billing": 2})
    assert not v.is_valid({"card": 1})
    assert v.explain({"card": 1}, 0)[0].message == "'billing' is a dependency of 'card'"


def test_draft2020_prefix_items_and_unevaluated(tmp_path: Path) -> None:
    """Draft 2020-12 keywords prefixItems and unevaluatedProperties are enforced."""
    schema = {
        "$schema": D2020,
        "properties": {
            "pair": {"prefixItems": [{"type": "string"}, {"type": "integer"}], "items": False}
        },
        "unevaluatedProperties": False,
    }
    path = tmp_path / "s.json"
    path.write_text(json.dumps(schema))
    v = RecordValidator(load_schema(path))
    assert v.is_valid({"pair": ["a", 1]})
    assert not v.is_valid({"pair": ["a", "b"]})
    assert not v.is_valid({"pair": ["a", 1, 2]})
    assert not v.is_valid({"pair": ["a", 1], "extra": 1})


def test_format_date_checked() -> None:
    """format: date is asserted, so an impossible date is rejected."""
    v = RecordValidator({"properties": {"d": {"type": "string", "format": "date"}}})
    assert v.is_valid({"d": "2020-12-31"})
    assert not v.is_valid({"d": "2020-13-45"})
    assert "'2020-13-45' is not a 'date'" in v.explain({"d": "2020-13-45"}, 0)[0].message


def test_format_email_checked() -> None:
    """format: email is asserted."""
    v = RecordValidator({"format": "email"})
    assert v.is_valid("someone@example.com")
    assert not v.is_valid("not-an-email")


# --- Fast and slow validators ------------------------------------------------------------------


def test_fast_validator_is_used_for_plain_schemas(validator: RecordValidator) -> None:
    """A plain schema compiles with jsonschema_rs and leaves no notes."""
    assert validator.fast and not validator.confirm and validator.notes == []


def test_fallback_when_fast_validator_cannot_compile() -> None:
    """If jsonschema_rs cannot compile the schema, jsonschema does everything and a note says so."""
    schema = {"properties": {"a": {"type": "integer"}, "b": {"pattern": "^a\\Z"}}}
    v = RecordValidator(schema)  # Python's re knows \Z; the ECMA-style engine does not
    assert not v.fast
    assert v.notes and v.notes[0].startswith("fast validator unavailable:")
    assert v.notes[0].endswith("; using jsonschema")
    assert not v.is_valid({"a": "1"}) and v.is_valid({"a": 1, "b": "a"})
    assert v.explain({"a": "1"}, 0)[0].path == "$.a"


def test_fast_false_uses_jsonschema_only() -> None:
    """fast=False skips the compiled validator."""
    v = RecordValidator(ANSWER_SCHEMA, fast=False)
    assert not v.fast and not v.is_valid({"id": 1, "answer": 1})


def test_disagreement_fast_rejects_trusts_jsonschema(tmp_path: Path) -> None:
    """If jsonschema_rs rejects a record that jsonschema accepts, it is valid and noted."""
    v = RecordValidator({"format": "email"})
    out = write_lines(tmp_path / "out.jsonl", ["a@@b"])
    result = validate_output(out, v, expected=1)
    assert result.valid
    assert any("validators disagree on record 0" in n for n in result.notes)


def test_disagreement_fast_accepts_trusts_jsonschema(tmp_path: Path) -> None:
    """Schemas with known fast-lenient keywords get each accepted record confirmed by jsonschema."""
    v = RecordValidator({"properties": {"t": {"format": "date-time"}}})
    assert v.confirm and any("confirming accepted records" in n for n in v.notes)
    out = write_lines(
        tmp_path / "out.jsonl", [{"t": "2020-01-01T00:00:00Z"}, {"t": "2020-01-01T23:59:60Z"}]
    )
    result = validate_output(out, v, expected=2)
    assert result.error_count == 1 and result.errors[0].index == 1


def test_stream_validator_feed_and_consumers() -> None:
    """StreamValidator.feed validates line by line and hands every parsed record to consumers."""
    seen: list[tuple[int, Any]] = []
    stream = StreamValidator(
        RecordValidator(ANSWER_SCHEMA), consumers=[lambda i, o: seen.append((i, o))]
    )
    assert stream.feed(b'{"id": "a", "answer": 1}', 1) is None
    assert stream.feed(b"   ", 2) is None
    err = stream.feed(b'{"id": "b"}', 3)
    assert err is not None and (err.index, err.line) == (1, 3)
    assert stream.records == 2 and [i for i, _ in seen] == [0, 1]
    result = stream.result(expected=2)
    assert isinstance(result, ValidationResult) and not result.valid and result.error_count == 1
    assert json.loads(json.dumps(result.to_dict()))["errors"][0]["path"] == "$"


def test_digest_canonical_is_independent_of_format(
    tmp_path: Path, validator: RecordValidator
) -> None:
    """With canonical_digest the same records give the same digest as JSONL or a JSON array."""
    records = good(3)
    jl = tmp_path / "a.jsonl"
    jl.write_text(
        "".join(json.dumps(r, indent=None, separators=(", ", ": ")) + "\n" for r in records)
    )
    js = tmp_path / "a.json"
    js.write_text(json.dumps(records, indent=2))
    a = validate_output(jl, validator, expected=3, canonical_digest=True)
    b = validate_output(js, validator, expected=3, canonical_digest=True)
    assert a.digest == b.digest


# --- Differential corpus -----------------------------------------------------------------------


def _corpus_cases() -> list[Any]:
    cases = json.loads((CORPUS / "corpus.json").read_text(encoding="utf-8"))["cases"]
    return [pytest.param(c, id=c["description"]) for c in cases]


def _known_cases() -> list[Any]:
    cases = json.loads((CORPUS / "known_differences.json").read_text(encoding="utf-8"))["cases"]
    return [pytest.param(c, id=c["description"]) for c in cases]


def test_corpus_is_large_enough() -> None:
    """The differential corpus has at least 25 schemas."""
    assert len(_corpus_cases()) >= 25


@pytest.mark.parametrize("case", _corpus_cases())
def test_fast_and_slow_validators_agree(case: dict[str, Any]) -> None:
    """jsonschema_rs and jsonschema give the same (expected) verdict on every corpus instance."""
    schema = case["schema"]
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    slow = cls(schema, format_checker=cls.FORMAT_CHECKER)
    fast = jsonschema_rs.validator_for(schema, validate_formats=True, offline=True)
    ours = RecordValidator(schema)
    for item in case["instances"]:
        data, expected = item["data"], item["valid"]
        assert slow.is_valid(data) == expected, f"jsonschema on {data!r}"
        assert fast.is_valid(data) == expected, f"jsonschema_rs on {data!r}"
        assert ours.is_valid(data) == expected, f"RecordValidator on {data!r}"
        assert bool(ours.check(data, 0)) == (not expected), f"RecordValidator.check on {data!r}"


@pytest.mark.parametrize("case", _known_cases())
def test_known_differences_follow_jsonschema(case: dict[str, Any]) -> None:
    """Where the two libraries truly disagree, RecordValidator gives jsonschema's verdict."""
    schema = case["schema"]
    fast = jsonschema_rs.validator_for(schema, validate_formats=True, offline=True)
    ours = RecordValidator(schema)
    for data in case["instances"]:
        assert fast.is_valid(data) == case["jsonschema_rs"], "difference no longer exists"
        assert ours.is_valid(data) == case["jsonschema"]
        assert (not ours.check(data, 0)) == case["jsonschema"]


# --- the fast metaschema check in load_schema ----------------------------------------------------

BAD_SCHEMAS: list[dict[str, Any]] = [
    {"type": "objec"},
    {"pattern": "["},
    {"patternProperties": {"[": {}}},
    {"$id": "not a uri ::"},
    {"$ref": "#/$defs/a b"},
    {"$anchor": "1bad"},
    {"minimum": "3"},
    {"required": "a"},
    {"items": [{"type": "string"}]},
    {"$schema": D7, "pattern": "(?<"},
    {"$schema": D7, "type": "objec"},
    {"minLength": -1},
    {"multipleOf": 0},
    {"properties": {"a": {"format": 5}}},
    {"$defs": {"a": {"type": "x"}}},
]


def _reference_verdict(schema: dict[str, Any]) -> bool:
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except jsonschema.exceptions.SchemaError:
        return False
    return True


@pytest.mark.parametrize("schema", BAD_SCHEMAS, ids=[json.dumps(s) for s in BAD_SCHEMAS])
def test_fast_meta_check_never_accepts_what_jsonschema_rejects(schema: dict[str, Any]) -> None:
    """load_schema skips jsonschema's metaschema check only when jsonschema_rs accepts the schema
    and no regex or URI keyword could hide a format error; every bad schema still fails."""
    from scaleup_ci.validate import _fast_meta_ok

    assert not _reference_verdict(schema)
    assert not _fast_meta_ok(schema)


def test_fast_meta_check_agrees_on_the_corpus(tmp_path: Path) -> None:
    """On every corpus schema, a fast 'valid' is also jsonschema's verdict, and load_schema
    accepts or rejects exactly as jsonschema does."""
    from scaleup_ci.validate import _fast_meta_ok

    cases = json.loads((CORPUS / "corpus.json").read_text())["cases"]
    fast_used = 0
    for i, case in enumerate(cases):
        schema = case["schema"]
        reference = _reference_verdict(schema)
        if _fast_meta_ok(schema):
            fast_used += 1
            assert reference, case["description"]
        path = tmp_path / f"s{i}.json"
        path.write_text(json.dumps(schema))
        if reference:
            assert load_schema(path) == schema
        else:
            with pytest.raises(InputError):
                load_schema(path)
    assert fast_used > len(cases) // 2  # the fast path is the common case


def test_record_validator_builds_jsonschema_lazily() -> None:
    """Valid records never need jsonschema (its import costs start-up time); errors do."""
    v = RecordValidator(ANSWER_SCHEMA)
    assert v._slow_validator is None
    assert v.check({"id": "a", "answer": 1}, 0) == []
    assert v._slow_validator is None
    assert v.check({"id": "a"}, 0)
    assert v._slow_validator is not None


def test_integers_beyond_64_bits_are_valid_json(tmp_path: Path) -> None:
    """A record with an integer beyond 64 bits is valid: the fast parser refuses it, the stdlib
    parser accepts it, and the stdlib decides."""
    out = tmp_path / "o.jsonl"
    out.write_text('{"n": 1}\n{"n": ' + str(2**70) + '}\n')
    v = RecordValidator({"type": "object", "properties": {"n": {"type": "integer"}}})
    res = validate_output(out, v, expected=2)
    assert res.valid and res.records == 2
