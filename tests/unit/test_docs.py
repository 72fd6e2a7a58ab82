"""The README's documented options and example config match the shipped options schema."""

from __future__ import annotations

import re
from pathlib import Path

import jsonschema
import yaml

from scaleup_ci.config import OPTIONS, SCHEMA, load_config

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _example_yaml() -> str:
    m = re.search(r"```yaml\n# scaleup.yml\n(.*?)```", README, re.S)
    assert m, "README has no scaleup.yml example"
    return m.group(1)


def test_readme_example_config_validates_against_options_schema() -> None:
    """The documented scaleup.yml is valid against the options schema as the tool reads it."""
    data = yaml.load(_example_yaml(), Loader=yaml.BaseLoader)
    jsonschema.validate(data, SCHEMA)


def test_readme_example_config_loads(tmp_path: Path) -> None:
    """The documented scaleup.yml loads through load_config with the values it shows."""
    (tmp_path / "scaleup.yml").write_text(_example_yaml(), encoding="utf-8")
    cfg = load_config({}, {}, config_path=None, cwd=tmp_path)
    assert cfg.time_budget == 25 * 60
    assert cfg.sample == "random" and cfg.seed == 42
    assert cfg.stages == ("mini", "10", "50", "100", "200", "max")


def test_readme_documents_every_option() -> None:
    """Every option in the schema has a row in the README's options table."""
    for name in OPTIONS:
        assert f"| `{name}` |" in README, f"README does not document {name}"


def test_readme_opens_with_the_two_commands() -> None:
    """The README's first two code blocks are the demo command and the test command."""
    blocks = re.findall(r"```sh\n(.*?)```", README, re.S)
    assert "scaleup-ci demo" in blocks[0]
    assert "pytest" in blocks[1]
