"""The README stays true: every service setting is documented, and the result blocks are the files'."""

from __future__ import annotations

import re
from pathlib import Path

from benchmarks.update_readme import BLOCKS, refresh
from serving.config import ENV_PREFIX, ServingConfig

README = Path(__file__).resolve().parent.parent / "README.md"


def test_every_service_setting_is_in_the_configuration_table() -> None:
    text = README.read_text()
    documented = set(re.findall(rf"`({ENV_PREFIX}[A-Z_]+)`", text))
    expected = {ENV_PREFIX + name.upper() for name in ServingConfig.model_fields}
    assert expected - documented == set()
    assert documented - expected == set()  # no setting documented that the service does not read


def test_result_blocks_are_copied_from_the_results_files() -> None:
    text = README.read_text()
    assert refresh(text) == text, "README is stale: run .venv/bin/python benchmarks/update_readme.py"
    for name, source in BLOCKS.items():
        block = text.split(f"<!-- {name}:start -->\n")[1].split(f"<!-- {name}:end -->")[0]
        assert block.strip() == source.read_text().strip(), f"the {name} block is not {source.name}"


def test_an_empty_block_is_filled() -> None:
    name = next(iter(BLOCKS))
    filled = refresh(f"intro\n<!-- {name}:start -->\n<!-- {name}:end -->\nrest\n")
    assert BLOCKS[name].read_text().strip() in filled
    assert refresh(filled) == filled
