"""Typed access to jsonschema's violations, shared by the manifest and the argument checks."""

from __future__ import annotations

from typing import Any, cast

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match  # pyright: ignore[reportUnknownVariableType]


def violations(validator: Draft202012Validator, instance: Any) -> list[ValidationError]:
    """Every violation, most relevant first (jsonschema's `best_match` heuristic)."""
    errors = cast(list[ValidationError], list(validator.iter_errors(instance)))  # pyright: ignore[reportUnknownMemberType]
    if not errors:
        return []
    best = cast(ValidationError, best_match(errors))  # pyright: ignore[reportUnknownVariableType]
    return [best, *(error for error in errors if error is not best)]
