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


_DIALECT_KEYWORDS = frozenset({"format", "pattern", "patternProperties"})
r"""Where jsonschema-rs and the Python validator judge differently: formats (leap seconds, year 0, ...) and
regexes (ASCII `\d`/`\w`/`\s` against Python's Unicode ones)."""


NON_SCHEMA_KEYWORDS = frozenset({"enum", "const", "default", "examples"})
"""Keywords whose values are instances, not subschemas: a walk over a schema's keywords does not enter them."""


def quick_check_for(schema: Mapping[str, Any]) -> QuickCheck | None:
    """A `QuickCheck` where both validators give the same verdict, else None (the Python validator alone)."""
    return None if _uses_dialect(schema) else QuickCheck(schema)


def _uses_dialect(node: object) -> bool:
    # Conservative: a property *named* "format" also counts, which only costs that tool the fast path.
    if isinstance(node, dict):
        items = cast(dict[str, Any], node)
        for key, value in items.items():
            if key in _DIALECT_KEYWORDS:
                return True
            if key == "multipleOf" and not (isinstance(value, int) and not isinstance(value, bool)):
                return True  # float arithmetic: 0.07 is a multiple of 0.01 for one validator and not the other
            if key not in NON_SCHEMA_KEYWORDS and _uses_dialect(value):
                return True
    elif isinstance(node, list):
        return any(_uses_dialect(item) for item in cast(list[Any], node))
    return False


class QuickCheck:
    """A schema's "this instance conforms" verdict from jsonschema-rs, compiled on the first call that needs it.

    Every tool call validates its arguments; most conform, and jsonschema-rs says so in a few microseconds
    where the Python validator takes tens. Only an instance it rejects goes on to the Python validator, whose
    messages and `best_match` the errors are built from. Built (`quick_check_for`) only for schemas without
    formats, patterns or fractional `multipleOf`, where the two agree, so every call is judged as before.
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
