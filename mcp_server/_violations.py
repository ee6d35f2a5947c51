"""Typed access to jsonschema's violations, shared by the manifest and the argument checks."""

from __future__ import annotations

import threading
from collections.abc import Mapping
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


class QuickCheck:
    """A schema's "this instance conforms" verdict from jsonschema-rs, compiled on the first call that needs it.

    Every tool call validates its arguments; most conform, and jsonschema-rs says so in a few microseconds
    where the Python validator takes tens. Only an instance it rejects goes on to the Python validator, whose
    messages and `best_match` the errors are built from, and whose verdict stands: where the two disagree
    (formats the Python side does not check, regex dialects), the call is judged exactly as before.
    """

    __slots__ = ("_compiled", "_failed", "_lock", "_schema")

    def __init__(self, schema: Mapping[str, Any]) -> None:
        self._schema = schema
        self._compiled: Any = None
        self._failed = False
        self._lock = threading.Lock()

    def conforms(self, instance: Any) -> bool:
        """True when `instance` certainly conforms; False means "ask the Python validator"."""
        compiled = self._compiled
        if compiled is None:
            if self._failed:
                return False
            compiled = self._compile()
            if compiled is None:
                return False
        try:
            return bool(compiled.is_valid(instance))
        except Exception:  # a value jsonschema-rs cannot take (an int beyond 64 bits): the slow path decides
            return False

    def _compile(self) -> Any:
        with self._lock:
            if self._compiled is None and not self._failed:
                import jsonschema_rs  # off the start-up path: a server that is never called never loads it

                try:
                    self._compiled = jsonschema_rs.Draft202012Validator(dict(self._schema), validate_formats=True)
                except Exception:  # a pattern its regex engine refuses: the Python validator alone, as before
                    self._failed = True
            return self._compiled
