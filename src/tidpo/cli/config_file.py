"""``tidpo train --config FILE.yaml``: a YAML file of options, read as parser defaults so that flags override it.

Keys are the parser's flag names; each value is checked and converted as argparse would the same text on the
command line, and a key given twice in one mapping is refused (PyYAML would keep the last one silently).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from tidpo.cli.common import CLIError
from tidpo.cli.options import did_you_mean

# flags of the parser that are no option of the run itself, so never YAML keys
RESERVED = ("help", "config", "accelerate_config")


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (PyYAML keeps the last one silently)."""


def _unique_mapping(loader: _UniqueKeyLoader, node, deep: bool = False) -> dict:
    seen = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor`: keys written after it override on purpose
            continue
        key = loader.construct_object(key_node, deep=deep)
        try:
            duplicate = key in seen
        except TypeError:  # an unhashable key: construct_mapping below says so
            break
        if duplicate:
            raise yaml.constructor.ConstructorError(None, None, f"key {key!r} is given twice", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def yaml_defaults(parser: argparse.ArgumentParser, path: str) -> dict:
    """The options of a ``--config`` YAML file as parser defaults (so command-line flags override them).

    Raises:
        CLIError: the file is missing, is not a YAML mapping, has a key that is no flag, or a value of the wrong type.
    """
    data = _read_mapping(path)
    flags = {opt[2:]: a for opt, a in parser._option_string_actions.items() if opt.startswith("--")}
    for reserved in RESERVED:
        flags.pop(reserved)
    defaults = {}
    for key, value in data.items():
        action = flags.get(str(key))
        if action is None:
            hint = did_you_mean(str(key), flags)
            raise CLIError(f"unknown key {key!r} in {path}{hint} (keys are `tidpo train` flags)")
        if action.nargs == 0:  # --no_<flag>: store_false
            if not isinstance(value, bool):
                raise CLIError(f"{path}: key {key!r} takes true or false, got {value!r}")
            if value:
                defaults[action.dest] = action.const
            continue
        defaults[action.dest] = _convert_yaml_value(action, str(key), value, path)
    return defaults


def _read_mapping(path: str) -> dict:
    """The YAML file's top-level mapping (an empty file is an empty one)."""
    file = Path(path)
    if not file.is_file():
        raise CLIError(f"--config {path}: no such file")
    try:
        data = yaml.load(file.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # safe: no object tags
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark is not None else ""
        what = getattr(err, "problem", None) or " ".join(str(err).split())
        raise CLIError(f"--config {path} is not valid YAML{where}: {what}") from err
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise CLIError(f"--config {path} must be a mapping of option: value, got a {type(data).__name__}")
    return data


def _convert_yaml_value(action: argparse.Action, key: str, value, path: str):
    """A YAML value checked and converted as argparse would the same text on the command line."""
    if value is None or isinstance(value, dict) or (isinstance(value, list) and action.nargs not in ("+", "*")):
        return value  # dict-valued options (e.g. lr_scheduler_kwargs) and list-valued report_to pass through
    convert = action.type or str
    hint = " (quote it: YAML reads no/yes/on/off as booleans)" if isinstance(value, bool) else ""
    items = value if isinstance(value, list) else [value]
    try:
        converted = [convert(item if isinstance(item, str) else str(item)) for item in items]
    except (ValueError, TypeError, argparse.ArgumentTypeError) as err:
        raise CLIError(f"{path}: key {key!r}: {value!r} is not a valid value ({err}){hint}") from err
    if action.choices is not None and any(item not in action.choices for item in converted):
        raise CLIError(f"{path}: key {key!r}: {value!r} is not one of {', '.join(map(str, action.choices))}{hint}")
    # a list-valued flag (nargs "+"/"*") given one YAML scalar is a one-item list, as `--flag value` would be
    return converted if isinstance(value, list) or action.nargs in ("+", "*") else converted[0]
