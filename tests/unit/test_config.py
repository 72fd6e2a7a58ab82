"""Tests for scaleup_ci.config: parsing single values, merging sources, friendly errors."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from scaleup_ci import config as cfg
from scaleup_ci.config import (
    OPTIONS,
    SCHEMA,
    Config,
    env_name,
    load_config,
    option_names,
    parse_bool,
    parse_duration,
    parse_percent,
    parse_size,
)
from scaleup_ci.errors import ConfigError

REQUIRED = {"command": "python run.py {input} {output}", "full-file": "data.jsonl"}
KINDS = {"string", "path", "duration", "size", "percent", "bool", "int", "float", "enum", "list"}


def load(
    tmp_path: Path,
    *,
    cli: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
    yml: str | None = None,
    config_path: str | None = None,
) -> Config:
    """Load a config from ``tmp_path``, with the required options on the CLI unless overridden."""
    if yml is not None:
        (tmp_path / "scaleup.yml").write_text(yml, encoding="utf-8")
    merged_cli = dict(REQUIRED) if cli is None else cli
    return load_config(merged_cli, env or {}, config_path=config_path, cwd=tmp_path)


def error_text(exc: pytest.ExceptionInfo[ConfigError]) -> str:
    """The message and hint of a ConfigError, as the user sees them."""
    return str(exc.value)


# ----------------------------------------------------------------------------- the schema


def test_schema_is_valid_draft_2020_12() -> None:
    """The options schema is itself a valid draft 2020-12 schema."""
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"].endswith("2020-12/schema")
    assert SCHEMA["additionalProperties"] is False


@pytest.mark.parametrize("name", list(OPTIONS))
def test_every_option_has_description_kind_and_default(name: str) -> None:
    """Every option has a description, a known x-kind, and a default unless it is optional."""
    spec = OPTIONS[name]
    assert spec["description"].endswith(".")
    assert spec["x-kind"] in KINDS
    no_default = {"command", "full-file", "mini-file", "examples-key", "schema", "shard"}
    assert ("default" in spec) == (name not in no_default)
    if spec["x-kind"] == "enum":
        assert spec.get("enum") or spec.get("x-choices")


@pytest.mark.parametrize("name", [n for n in OPTIONS if "default" in OPTIONS[n]])
def test_every_default_validates_against_its_own_property(name: str) -> None:
    """Each default, as written in the schema, is accepted by the schema and converts cleanly."""
    validator = jsonschema.Draft202012Validator(SCHEMA)
    assert list(validator.iter_errors({name: OPTIONS[name]["default"]})) == []


def test_option_names_are_kebab_case() -> None:
    """Option names are lower-case kebab-case, so flags, inputs and env names derive from them."""
    for name in option_names():
        assert re.fullmatch(r"[a-z]+(-[a-z]+)*", name), name


def test_env_name_uppercases_and_replaces_dashes() -> None:
    """The environment variable for time-budget is SCALEUP_TIME_BUDGET."""
    assert env_name("time-budget") == "SCALEUP_TIME_BUDGET"


def test_defaults_give_documented_values(tmp_path: Path) -> None:
    """With only the required options, every other option takes its documented default."""
    config = load(tmp_path)
    assert config.stages == ("mini", "10", "50", "100", "200", "max")
    assert config.time_budget == 600.0
    assert config.safety_margin == pytest.approx(0.10)
    assert config.reserve is None
    assert config.memory_limit is None
    assert config.cpu_limit is None
    assert config.mock_patterns == ("mock", "fake", "dummy")
    assert config.redact == ()
    assert config.log_max_bytes == 2**30
    assert config.fail_fast is True
    assert config.final_pass is False
    assert config.grace_period == 5.0
    assert config.shard is None
    assert config.expect_records == "per-example"


def test_to_dict_is_json_with_kebab_keys(tmp_path: Path) -> None:
    """to_dict gives every option under its kebab-case name and survives json.dumps."""
    config = load(tmp_path)
    data = json.loads(json.dumps(config.to_dict()))
    assert list(data) == option_names()
    assert data["full-file"] == str(tmp_path / "data.jsonl")
    assert data["stages"][0] == "mini"


# ----------------------------------------------------------------------------- durations


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90.0),
        ("45m", 2700.0),
        ("1h30m", 5400.0),
        ("2h", 7200.0),
        ("1.5m", 90.0),
        ("500ms", 0.5),
        ("90", 90.0),
        ("90.5", 90.5),
        ("1h 30m", 5400.0),
        ("1H30M", 5400.0),
        ("1d", 86400.0),
        (90, 90.0),
        (90.5, 90.5),
    ],
)
def test_parse_duration_accepts_each_form(text: Any, seconds: float) -> None:
    """Each documented duration form converts to the right number of seconds."""
    assert parse_duration(text) == pytest.approx(seconds)


def test_parse_duration_rejects_colon_form_with_hint() -> None:
    """1:30 is ambiguous and rejected, with a hint to write 1m30s or 90s."""
    with pytest.raises(ConfigError) as exc:
        parse_duration("1:30", option="time-budget", source="in scaleup.yml, line 2")
    assert "time-budget" in exc.value.message
    assert "scaleup.yml, line 2" in exc.value.message
    assert exc.value.hint is not None
    assert "1m30s" in exc.value.hint and "90s" in exc.value.hint


@pytest.mark.parametrize("text", ["-5", "-5m", "", "   ", "abc", "5x", "1m30", "30m1h", "m", True])
def test_parse_duration_rejects_bad_values(text: Any) -> None:
    """Negative, empty, misordered and garbage durations are ConfigErrors with a hint."""
    with pytest.raises(ConfigError) as exc:
        parse_duration(text, option="grace-period")
    assert exc.value.message.startswith("grace-period")
    assert exc.value.hint


# ----------------------------------------------------------------------------- sizes


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("2GiB", 2 * 2**30),
        ("2G", 2 * 2**30),
        ("2Gi", 2 * 2**30),
        ("512MiB", 512 * 2**20),
        ("512M", 512 * 2**20),
        ("1.5GB", 1_500_000_000),
        ("1024", 1024),
        ("1024B", 1024),
        ("64kB", 64_000),
        ("64KiB", 64 * 1024),
        ("64k", 64 * 1024),
        ("1TB", 10**12),
        (4096, 4096),
    ],
)
def test_parse_size_accepts_each_form(text: Any, size: int) -> None:
    """Binary units (G, GiB) are powers of 1024; decimal units (GB, kB) are powers of 1000."""
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "-1G", "1.5", "2XB", "GiB", "lots", 1.5])
def test_parse_size_rejects_bad_values(text: Any) -> None:
    """Empty, negative, fractional-byte and unknown-unit sizes are ConfigErrors."""
    with pytest.raises(ConfigError):
        parse_size(text, option="memory-limit")


# ----------------------------------------------------------------------------- percent and bool


@pytest.mark.parametrize(
    ("text", "fraction"), [("10%", 0.10), ("0.1", 0.1), ("0", 0.0), ("2.5%", 0.025), (0.2, 0.2)]
)
def test_parse_percent_accepts_percent_and_fraction(text: Any, fraction: float) -> None:
    """N% and a fraction below 1 both give a fraction."""
    assert parse_percent(text) == pytest.approx(fraction)


def test_parse_percent_rejects_ambiguous_bare_number_with_hint() -> None:
    """A bare 10 is ambiguous (10% or 10x?) and the hint suggests 10%."""
    with pytest.raises(ConfigError) as exc:
        parse_percent("10", option="safety-margin")
    assert exc.value.hint is not None and "10%" in exc.value.hint


@pytest.mark.parametrize("text", ["100%", "150%", "ten", "", "-5%"])
def test_parse_percent_rejects_out_of_range_and_garbage(text: str) -> None:
    """Percentages of 100 or more, negatives and text are rejected."""
    with pytest.raises(ConfigError):
        parse_percent(text)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("true", True),
        ("YES", True),
        ("On", True),
        ("1", True),
        ("false", False),
        ("no", False),
        ("OFF", False),
        ("0", False),
        (True, True),
    ],
)
def test_parse_bool_accepts_common_spellings(text: Any, value: bool) -> None:
    """true/false, yes/no, on/off and 1/0 are read case-insensitively."""
    assert parse_bool(text) is value


@pytest.mark.parametrize("text", ["maybe", "", "2", "y", "tru"])
def test_parse_bool_rejects_anything_else(text: str) -> None:
    """Any other text is an error, not silently false."""
    with pytest.raises(ConfigError):
        parse_bool(text, option="shell")


# ----------------------------------------------------------------------------- precedence


def test_precedence_default_file_env_cli(tmp_path: Path) -> None:
    """CLI beats env beats file beats default, and sources record each origin."""
    yml = "time-budget: 20m\nseed: 1\ngrace-period: 2s\n"
    env = {"SCALEUP_SEED": "2", "SCALEUP_GRACE_PERIOD": "3s"}
    cli = {**REQUIRED, "grace-period": "4s"}
    config = load(tmp_path, yml=yml, env=env, cli=cli)
    assert config.time_budget == 1200.0
    assert config.seed == 2
    assert config.grace_period == 4.0
    assert config.sources["time-budget"] == f"file:{tmp_path / 'scaleup.yml'}"
    assert config.sources["seed"] == "env:SCALEUP_SEED"
    assert config.sources["grace-period"] == "cli"
    assert config.sources["planner"] == "default"


def test_empty_env_value_is_ignored(tmp_path: Path) -> None:
    """An empty SCALEUP_* value (an unset action input) leaves the lower-precedence value alone."""
    config = load(tmp_path, yml="time-budget: 20m\n", env={"SCALEUP_TIME_BUDGET": ""})
    assert config.time_budget == 1200.0
    assert config.sources["time-budget"].startswith("file:")


def test_env_typo_gives_warning_not_error(tmp_path: Path) -> None:
    """SCALEUP_TIME_BUGDET is reported as a likely typo of SCALEUP_TIME_BUDGET in warnings."""
    config = load(tmp_path, env={"SCALEUP_TIME_BUGDET": "5m"})
    assert config.time_budget == 600.0
    assert any("SCALEUP_TIME_BUDGET" in w for w in config.warnings)


def test_stage_env_variables_are_not_typos(tmp_path: Path) -> None:
    """SCALEUP_INPUT, _OUTPUT, _N, _STAGE, _FULL and _DEADLINE never produce warnings."""
    env = {f"SCALEUP_{n}": "x" for n in ("INPUT", "OUTPUT", "N", "STAGE", "FULL", "DEADLINE")}
    assert load(tmp_path, env=env).warnings == ()


def test_required_options_can_come_from_env(tmp_path: Path) -> None:
    """command and full-file may be set through SCALEUP_COMMAND and SCALEUP_FULL_FILE."""
    env = {"SCALEUP_COMMAND": "true", "SCALEUP_FULL_FILE": "d.jsonl"}
    config = load(tmp_path, cli={}, env=env)
    assert config.command == "true"
    assert config.sources["full-file"] == "env:SCALEUP_FULL_FILE"


def test_cli_accepts_python_values_and_skips_none(tmp_path: Path) -> None:
    """CLI values may be Python bools or numbers, and None means 'not passed'."""
    config = load(tmp_path, cli={**REQUIRED, "shell": True, "seed": 7, "planner": None})
    assert config.shell is True
    assert config.seed == 7
    assert config.sources["planner"] == "default"


def test_unknown_cli_option_is_error(tmp_path: Path) -> None:
    """An unknown CLI key is a ConfigError with a did-you-mean."""
    with pytest.raises(ConfigError) as exc:
        load(tmp_path, cli={**REQUIRED, "time-buget": "5m"})
    assert "--time-budget" in error_text(exc)


# ----------------------------------------------------------------------------- the YAML file


def test_unknown_key_suggests_close_match(tmp_path: Path) -> None:
    """A misspelt key is an error with "did you mean 'time-budget'?" and its line."""
    with pytest.raises(ConfigError) as exc:
        load(tmp_path, yml="seed: 1\ntime-budgt: 5m\n")
    assert "did you mean 'time-budget'?" in exc.value.message
    assert "line 2" in exc.value.message


def test_snake_case_key_suggests_kebab_case(tmp_path: Path) -> None:
    """time_budget is rejected with a did-you-mean to time-budget."""
    with pytest.raises(ConfigError) as exc:
        load(tmp_path, yml="time_budget: 5m\n")
    assert "did you mean 'time-budget'?" in exc.value.message


def test_unknown_key_without_match_lists_valid_keys(tmp_path: Path) -> None:
    """A key unlike any option is an error whose hint lists the valid keys."""
    with pytest.raises(ConfigError) as exc:
        load(tmp_path, yml="zzzzqqq: 1\n")
    assert exc.value.hint is not None and "time-budget" in exc.value.hint


def test_duplicate_key_names_key_and_line(tmp_path: Path) -> None:
    """A key written twice is an error naming the key and the line of the second one."""
    with pytest.raises(ConfigError) as exc:
        load(tmp_path, yml="seed: 1\nshell: true\nseed: 2\n")
    assert "'seed'" in exc.value.message
    assert "line 3" in exc.value.message
    assert "line 1" in exc.value.message


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    """A YAML syntax error names the file and the line."""
    with pytest.raises(ConfigError) as exc:
        load(tmp_path, yml="seed: 1\nstages: [mini, 10\nshell: true\n")
    assert "scaleup.yml" in exc.value.message
    assert re.search(r"line \d+", exc.value.message)


def test_top_level_must_be_mapping(tmp_path: Path) -> None:
    """A config file that is a list is an error saying the top level must be a mapping."""
    with pytest.raises(ConfigError) as exc:
        load(tmp_path, yml="- seed\n- 1\n")
    assert "mapping" in exc.value.message


def test_empty_config_file_is_fine(tmp_path: Path) -> None:
    """An empty scaleup.yml means all defaults."""
    assert load(tmp_path, yml="# nothing yet\n").seed == 0


def test_yaml_no_stays_a_string(tmp_path: Path) -> None:
    """`command: no` is the string "no", not false."""
    config = load(tmp_path, cli={"full-file": "d.jsonl"}, yml="command: no\n")
    assert config.command == "no"


def test_yaml_sexagesimal_reaches_duration_parser(tmp_path: Path) -> None:
    """`time-budget: 1:30` reaches the parser as text and is rejected with the 1m30s hint."""
    with pytest.raises(ConfigError) as exc:
        load(tmp_path, yml="seed: 3\ntime-budget: 1:30\n")
    assert "time-budget" in exc.value.message
    assert "line 2" in exc.value.message
    assert "1m30s" in error_text(exc)


def test_yaml_on_is_read_by_bool_kind(tmp_path: Path) -> None:
    """`shell: on` is converted by the bool kind, and `command: on` stays the string "on"."""
    config = load(tmp_path, cli={"full-file": "d.jsonl"}, yml="shell: on\ncommand: on\n")
    assert config.shell is True
    assert config.command == "on"


def test_yaml_list_stages(tmp_path: Path) -> None:
    """stages may be a YAML list as well as a comma-separated string."""
    config = load(tmp_path, yml="stages: [mini, 10, 1000, max]\n")
    assert config.stages == ("mini", "10", "1000", "max")


def test_redact_list_keeps_commas_inside_patterns(tmp_path: Path) -> None:
    """redact from env is split on newlines, so a{1,3} survives as one pattern."""
    config = load(tmp_path, env={"SCALEUP_REDACT": "tok-[a-z]{1,3}\nsecret"})
    assert config.redact == ("tok-[a-z]{1,3}", "secret")


def test_redact_invalid_regex_is_error(tmp_path: Path) -> None:
    """A redact pattern that is not a regular expression is a ConfigError naming it."""
    with pytest.raises(ConfigError) as exc:
        load(tmp_path, yml="redact: ['(unclosed']\n")
    assert "(unclosed" in exc.value.message


def test_explicit_missing_config_path_is_error(tmp_path: Path) -> None:
    """An explicit --config path that does not exist is a ConfigError."""
    with pytest.raises(ConfigError) as exc:
        load(tmp_path, config_path="nope.yml")
    assert "nope.yml" in exc.value.message


def test_devnull_config_path_means_no_file(tmp_path: Path) -> None:
    """config_path=os.devnull skips scaleup.yml even when it exists."""
    config = load(tmp_path, yml="seed: 5\n", config_path=os.devnull)
    assert config.seed == 0
    assert config.config_file is None


def test_scaleup_yaml_is_found_too(tmp_path: Path) -> None:
    """scaleup.yaml is used when scaleup.yml is absent."""
    (tmp_path / "scaleup.yaml").write_text("seed: 9\n", encoding="utf-8")
    config = load(tmp_path)
    assert config.seed == 9
    assert config.config_file == tmp_path / "scaleup.yaml"


# ----------------------------------------------------------------------------- values


@pytest.mark.parametrize(
    ("stages", "offender"),
    [
        ("10,50,20", "'20'"),
        ("max,10", "'10'"),
        ("10,mini", "'mini'"),
        ("mini,0,10", "'0'"),
        ("mini,ten", "'ten'"),
        ("mini,10,10", "'10'"),
        ("mini,-5", "'-5'"),
    ],
)
def test_bad_stage_lists_name_the_offending_item(
    tmp_path: Path, stages: str, offender: str
) -> None:
    """Stages must be mini, positive counts, max, strictly increasing; errors name the item."""
    with pytest.raises(ConfigError) as exc:
        load(tmp_path, env={"SCALEUP_STAGES": stages})
    assert offender in exc.value.message
    assert "SCALEUP_STAGES" in exc.value.message


def test_empty_stage_list_is_error(tmp_path: Path) -> None:
    """An empty stages list is an error."""
    with pytest.raises(ConfigError):
        load(tmp_path, yml="stages: []\n")


@pytest.mark.parametrize(("text", "value"), [("1/4", (1, 4)), ("4/4", (4, 4)), ("2 / 3", (2, 3))])
def test_shard_form_is_parsed(tmp_path: Path, text: str, value: tuple[int, int]) -> None:
    """shard I/N becomes (I, N)."""
    assert load(tmp_path, cli={**REQUIRED, "shard": text}).shard == value


@pytest.mark.parametrize("text", ["0/4", "5/4", "1-4", "1/", "a/b", "1/0"])
def test_bad_shard_is_error(tmp_path: Path, text: str) -> None:
    """shard must be I/N with 1 <= I <= N."""
    with pytest.raises(ConfigError) as exc:
        load(tmp_path, cli={**REQUIRED, "shard": text})
    assert "shard" in exc.value.message


def test_examples_key_must_be_json_pointer(tmp_path: Path) -> None:
    """examples-key without a leading slash is rejected with a hint showing the slash form."""
    with pytest.raises(ConfigError) as exc:
        load(tmp_path, cli={**REQUIRED, "examples-key": "data"})
    assert exc.value.hint is not None and "/data" in exc.value.hint
    assert load(tmp_path, cli={**REQUIRED, "examples-key": "/data"}).examples_key == "/data"


@pytest.mark.parametrize(
    ("text", "value"), [("per-example", "per-example"), ("any", "any"), ("1", 1), ("0", 0)]
)
def test_expect_records_forms(tmp_path: Path, text: str, value: str | int) -> None:
    """expect-records is per-example, any, or a non-negative count."""
    assert load(tmp_path, cli={**REQUIRED, "expect-records": text}).expect_records == value


def test_expect_records_rejects_negative(tmp_path: Path) -> None:
    """A negative record count is rejected."""
    with pytest.raises(ConfigError):
        load(tmp_path, cli={**REQUIRED, "expect-records": "-1"})


@pytest.mark.parametrize(("text", "value"), [("auto", None), ("none", 0), ("4GiB", 4 * 2**30)])
def test_memory_limit_keywords(tmp_path: Path, text: str, value: int | None) -> None:
    """memory-limit: auto is None, none is 0, a size is bytes."""
    assert load(tmp_path, cli={**REQUIRED, "memory-limit": text}).memory_limit == value


@pytest.mark.parametrize(("text", "value"), [("auto", None), ("none", 0.0), ("30m", 1800.0)])
def test_cpu_limit_keywords(tmp_path: Path, text: str, value: float | None) -> None:
    """cpu-limit: auto is None, none is 0.0, a duration is seconds."""
    assert load(tmp_path, cli={**REQUIRED, "cpu-limit": text}).cpu_limit == value


def test_reserve_must_be_less_than_budget(tmp_path: Path) -> None:
    """A reserve as large as the whole budget is an error."""
    with pytest.raises(ConfigError) as exc:
        load(tmp_path, cli={**REQUIRED, "time-budget": "5m", "reserve": "5m"})
    assert "reserve" in exc.value.message


def test_zero_time_budget_is_error(tmp_path: Path) -> None:
    """A zero time budget is rejected."""
    with pytest.raises(ConfigError) as exc:
        load(tmp_path, cli={**REQUIRED, "time-budget": "0s"})
    assert "time-budget" in exc.value.message


def test_bad_enum_suggests_choice(tmp_path: Path) -> None:
    """A misspelt enum value is rejected with a did-you-mean among the choices."""
    with pytest.raises(ConfigError) as exc:
        load(tmp_path, yml="sample: randm\n")
    assert "'random'" in exc.value.message


def test_safety_margin_bare_ten_rejected_from_file(tmp_path: Path) -> None:
    """safety-margin: 10 in the file is rejected with a hint to write 10%."""
    with pytest.raises(ConfigError) as exc:
        load(tmp_path, yml="safety-margin: 10\n")
    assert "safety-margin" in exc.value.message
    assert "10%" in error_text(exc)


def test_several_problems_are_reported_together(tmp_path: Path) -> None:
    """Two bad values give one error that mentions both options."""
    with pytest.raises(ConfigError) as exc:
        load(tmp_path, yml="seed: x\nshell: maybe\n")
    assert "seed" in exc.value.message and "shell" in exc.value.message


def test_mapping_value_is_error(tmp_path: Path) -> None:
    """A nested mapping where a duration belongs is a friendly error, not a crash."""
    with pytest.raises(ConfigError) as exc:
        load(tmp_path, yml="time-budget:\n  minutes: 5\n")
    assert "time-budget" in exc.value.message


def test_command_placeholder_typo_is_an_error(tmp_path: Path) -> None:
    """{inputs} would reach the script as literal text: a ConfigError naming {input}."""
    with pytest.raises(ConfigError) as exc:
        load(tmp_path, cli={**REQUIRED, "command": "run {inputs} {output}"})
    assert "did you mean {input}?" in exc.value.message
    assert "shell: true" in (exc.value.hint or "")


def test_command_placeholder_typo_only_warns_under_a_shell(tmp_path: Path) -> None:
    """With shell: true, braces may be shell syntax: a near miss is only a warning."""
    config = load(tmp_path, cli={**REQUIRED, "command": "run {inputs} {output}", "shell": True})
    assert any("did you mean {input}?" in w for w in config.warnings)


def test_a_distant_brace_word_only_warns(tmp_path: Path) -> None:
    """{outs} only loosely resembles {output}: a warning, and the run goes on."""
    config = load(tmp_path, cli={**REQUIRED, "command": "run {input} {output} {outs}"})
    assert any("{outs} is not a placeholder" in w for w in config.warnings)


# ----------------------------------------------------------------------------- required options


@pytest.mark.parametrize("missing", ["command", "full-file"])
def test_missing_required_option_says_how_to_set_it(tmp_path: Path, missing: str) -> None:
    """A missing required option names the flag, the YAML key and the environment variable."""
    cli = {k: v for k, v in REQUIRED.items() if k != missing}
    with pytest.raises(ConfigError) as exc:
        load(tmp_path, cli=cli)
    text = error_text(exc)
    assert f"--{missing}" in text
    assert f"{missing}:" in text
    assert env_name(missing) in text


def test_empty_command_from_cli_is_error(tmp_path: Path) -> None:
    """An empty command string is rejected."""
    with pytest.raises(ConfigError):
        load(tmp_path, cli={**REQUIRED, "command": "  "})


# ----------------------------------------------------------------------------- paths


def test_file_paths_are_relative_to_config_file(tmp_path: Path) -> None:
    """Paths in the config file resolve against the config file's folder, not cwd."""
    conf_dir = tmp_path / "conf"
    conf_dir.mkdir()
    (conf_dir / "my.yml").write_text(
        "full-file: data/full.jsonl\nschema: ../s.json\nworking-directory: work\n", encoding="utf-8"
    )
    config = load_config({"command": "x"}, {}, config_path="conf/my.yml", cwd=tmp_path)
    assert config.full_file == conf_dir / "data" / "full.jsonl"
    assert config.schema == tmp_path / "s.json"
    assert config.working_directory == conf_dir / "work"


def test_cli_and_env_paths_are_relative_to_cwd(tmp_path: Path) -> None:
    """Paths from the CLI and the environment resolve against cwd."""
    config = load(tmp_path, cli=dict(REQUIRED), env={"SCALEUP_OUT_DIR": "out"})
    assert config.full_file == tmp_path / "data.jsonl"
    assert config.out_dir == tmp_path / "out"
    assert config.working_directory == tmp_path


def test_cli_path_objects_are_accepted(tmp_path: Path) -> None:
    """A pathlib.Path passed from argparse is treated like its string."""
    config = load(tmp_path, cli={**REQUIRED, "schema": Path("s.json")})
    assert config.schema == tmp_path / "s.json"


def test_absolute_paths_are_kept(tmp_path: Path) -> None:
    """An absolute path is used as given."""
    target = tmp_path / "elsewhere" / "d.jsonl"
    config = load(tmp_path, cli={**REQUIRED, "full-file": str(target)})
    assert config.full_file == target


# ----------------------------------------------------------------------------- schema vs parsers


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("duration", v)
        for v in ["90s", "45m", "1h30m", "1.5m", "500ms", "90", "1:30", "-5", "abc", "1m30", "5 m"]
    ]
    + [("size", v) for v in ["2GiB", "2G", "1.5GB", "1024", "64kB", "2XB", "GiB", "-1"]]
    + [("percent", v) for v in ["10%", "0.1", "0", "ten", "%"]],
)
def test_schema_pattern_agrees_with_parser_syntax(kind: str, value: str) -> None:
    """The schema's pattern accepts exactly the strings whose syntax the parser accepts."""
    pattern = re.compile(SCHEMA["$defs"][kind]["pattern"])
    parser = {"duration": parse_duration, "size": parse_size, "percent": parse_percent}[kind]
    try:
        parser(value)
        parsed = True
    except ConfigError:
        parsed = False
    assert bool(pattern.fullmatch(value)) == parsed


def test_module_exports_are_stable() -> None:
    """The functions the CLI relies on exist under their documented names."""
    for name in ("OPTIONS", "option_names", "env_name", "load_config", "Config", "field_name"):
        assert hasattr(cfg, name)
