"""Typed reads of a study file's values: each failure is one line naming the key (:class:`SpecError`)."""

from __future__ import annotations

import math
from pathlib import Path


class SpecError(ValueError):
    """A study file that cannot run: one line naming the key and the fix."""


class Checker:
    """Typed reads of the spec's values, each failure one line naming the key."""

    def __init__(self, where: str):
        self.where = where

    def fail(self, key: str, problem: str, value) -> SpecError:
        return SpecError(f"{self.where}: key {key!r}: {problem}, got {value!r}")

    def text(self, values: dict, key: str) -> str:
        if not isinstance(values[key], str) or not values[key].strip():
            raise self.fail(key, "expected a non-empty string", values[key])
        return values[key]

    def mapping(self, values: dict, key: str) -> dict:
        if values[key] is None:
            return {}
        if not isinstance(values[key], dict):
            raise self.fail(key, "expected a mapping of TIDPOConfig settings", values[key])
        return dict(values[key])

    def integer(self, values: dict, key: str, minimum: int | None = None) -> int:
        value = values[key]
        if isinstance(value, bool) or not isinstance(value, int) or (minimum is not None and value < minimum):
            raise self.fail(key, "expected an integer" + ("" if minimum is None else f" >= {minimum}"), value)
        return value

    def count(self, values: dict, key: str) -> int:
        return self.integer(values, key, minimum=1)

    def number(self, values: dict, key: str) -> float:
        value = values[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise self.fail(key, "expected a finite number", value)
        return float(value)

    def int_list(self, values: dict, key: str, minimum: int, increasing: bool) -> list[int]:
        value = values[key]
        if not isinstance(value, list) or not value:
            example = f"[{minimum}, {minimum + 1}]"
            raise self.fail(key, f"expected a non-empty list of integers >= {minimum}, e.g. {example}", value)
        items = [self.integer({key: v}, key, minimum) for v in value]
        if len(set(items)) != len(items) or (increasing and items != sorted(items)):
            order = "increasing" if increasing else "distinct"
            raise self.fail(key, f"expected {order} values", value)
        return items

    def budgets(self, values: dict) -> list[float]:
        value = values["budgets"]
        if not isinstance(value, list) or not value:
            raise self.fail("budgets", "expected a non-empty list of KL budgets in nats, e.g. [2, 4]", value)
        items = [self.number({"budgets": v}, "budgets") for v in value]
        if any(b <= 0 for b in items):
            raise self.fail("budgets", "expected positive KL budgets (nats)", value)
        return items


def local(value: str, base: Path | None, must_exist: bool = True) -> str:
    """``value`` taken from the spec file's folder when it is a relative path that exists there (or, for an output,
    always when relative); a built-in name, a Hub id or an absolute path as given."""
    if base is None or Path(value).is_absolute():
        return value
    candidate = base / value
    return str(candidate) if candidate.exists() or not must_exist else value
