"""Decrypted secret values and the references manifests use to name them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal, Protocol


class Secret:
    """A decrypted value whose `repr`/`str` never show it; `reveal()` is the one way out.

    Compared by value so tests and callers can check equality without revealing it.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> None:  # type: ignore[override]
        raise TypeError("Secret values are not picklable")


ValueKind = Literal["literal", "secret", "env"]


@dataclass(frozen=True, slots=True)
class ValueRef:
    """A manifest value: a literal, `{secret: NAME}` (the vault) or `{env: NAME}` (the environment)."""

    kind: ValueKind
    value: str

    @property
    def is_sensitive(self) -> bool:
        """Literals are part of the manifest; anything resolved at call time is treated as a secret."""
        return self.kind != "literal"

    def describe(self) -> str:
        if self.kind == "secret":
            return f"vault secret {self.value!r}"
        if self.kind == "env":
            return f"environment variable {self.value}"
        return "literal value"


class SecretStore(Protocol):
    """Where `{secret: NAME}` values live: the encrypted vault file, or HashiCorp Vault.

    Names are ``A-Z a-z 0-9 _ . @ -``; an account's copy of a secret is ``NAME@ACCOUNT``.
    """

    remote: ClassVar[bool]
    """True when reads do network I/O: the pipeline then calls `get` off the event loop."""

    def get(self, name: str) -> Secret | None: ...

    def set(self, name: str, value: str) -> None: ...

    def delete(self, name: str) -> bool: ...

    def names(self) -> list[str]: ...

    def check(self) -> None:
        """Raise `VaultError` unless the store can be read with the key or token it was given."""
        ...

    def describe(self) -> str:
        """Where the secrets are, for messages: `vault file /x/vault.json`, `HashiCorp Vault at https://...`."""
        ...
