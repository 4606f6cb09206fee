"""YAML files users write (a column mapping, contract limits), read with errors naming the file and field."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError


def read_yaml_config(path: Path, kind: str, error: type[ValueError] = ValueError) -> dict[str, object]:
    """The file's top-level `key: value` pairs (empty file -> {}); anything else is an `error` naming it.

    `kind` says what the file is for ("mapping", "limits") and starts every message.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{kind} file not found: {path}")
    if path.is_dir():
        raise error(f"{kind} {path} is a folder, not a YAML file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise error(f"{kind} {path.name} is not a text file") from None
    except OSError as err:
        raise error(f"{kind} {path} cannot be read: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise error(f"{kind} {path.name} is not valid YAML: {_yaml_problem(err)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise error(
            f"{kind} {path.name}: expected 'key: value' lines at the top level, got a {type(data).__name__}"
        )
    return data


def _yaml_problem(err: yaml.YAMLError) -> str:
    """PyYAML's problem and 1-based position, without its echo of the offending text."""
    if isinstance(err, yaml.MarkedYAMLError) and err.problem_mark is not None:
        mark = err.problem_mark
        return f"line {mark.line + 1}, column {mark.column + 1}: {err.problem}"
    return str(err).splitlines()[0]


def describe_validation_error(err: ValidationError) -> str:
    """Every problem pydantic found, each with the dotted field it concerns."""
    problems = []
    for error in err.errors():
        where = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "missing":
            problems.append(f"missing field '{where}'")
        elif error["type"] == "extra_forbidden":
            problems.append(f"unknown field '{where}'")
        elif not where:  # a rule across fields: its message names them
            problems.append(message)
        else:
            problems.append(f"'{where}': {message}")
    return "; ".join(problems)
