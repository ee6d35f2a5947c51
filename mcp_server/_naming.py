"""Operation names for generated connectors: readable, unique, deterministic and short enough.

A tool name is `<connector>_<operation>` and must fit the strictest client limit (64 characters of
`[A-Za-z0-9_-]`), while an operation name itself must match `^[a-z][a-z0-9_]*$`. Real OpenAPI
documents have operationIds in every casing convention, non-ASCII letters, no operationId at all,
and names far over the limit; this module turns all of that into names a model can read, shortening
step by step (abbreviate, drop filler words, clip words, hash) and never dropping an operation on a
collision.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Sequence

from mcp_server._model import PATH_PLACEHOLDER

OPERATION_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
HASH_LENGTH = 6
"""Hex characters of sha1 kept in a hashed name: 16.7 M values, ample for one connector's operations."""

_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_NON_ALNUM = re.compile(r"[^a-z0-9]+")
# Letters that NFKD does not decompose into ASCII but that have a conventional spelling.
_TRANSLITERATION = str.maketrans("øØđĐłŁðÐ\u0131", "oOdDlLdDi") | str.maketrans(
    {"ß": "ss", "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE", "þ": "th", "Þ": "TH"}
)

ABBREVIATIONS: dict[str, str] = {
    "administrator": "admin",
    "administrators": "admins",
    "application": "app",
    "applications": "apps",
    "attachment": "attach",
    "attachments": "attachs",
    "attribute": "attr",
    "attributes": "attrs",
    "authentication": "auth",
    "authorization": "authz",
    "authorizations": "authzs",
    "certificate": "cert",
    "certificates": "certs",
    "collaborator": "collab",
    "collaborators": "collabs",
    "configuration": "config",
    "configurations": "configs",
    "dependencies": "deps",
    "dependency": "dep",
    "deployment": "deploy",
    "deployments": "deploys",
    "description": "desc",
    "descriptions": "descs",
    "directories": "dirs",
    "directory": "dir",
    "document": "doc",
    "documents": "docs",
    "enterprise": "ent",
    "enterprises": "ents",
    "environment": "env",
    "environments": "envs",
    "identifier": "id",
    "identifiers": "ids",
    "information": "info",
    "installation": "install",
    "installations": "installs",
    "management": "mgmt",
    "message": "msg",
    "messages": "msgs",
    "notification": "notif",
    "notifications": "notifs",
    "organisation": "org",
    "organisations": "orgs",
    "organization": "org",
    "organizations": "orgs",
    "parameter": "param",
    "parameters": "params",
    "permission": "perm",
    "permissions": "perms",
    "properties": "props",
    "property": "prop",
    "reference": "ref",
    "references": "refs",
    "repositories": "repos",
    "repository": "repo",
    "specification": "spec",
    "statistics": "stats",
    "subscription": "sub",
    "subscriptions": "subs",
    "transaction": "txn",
    "transactions": "txns",
    "variable": "var",
    "variables": "vars",
}
FILLER_WORDS = frozenset({"a", "an", "the", "of", "for", "by", "to", "in", "on", "with", "and"})
_CLIPPED_LENGTH = 4


def _transliterate(text: str) -> str:
    """ASCII letters for accented Latin ones; anything else non-ASCII becomes a word break."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_TRANSLITERATION))
    kept = (c for c in decomposed if not unicodedata.combining(c))
    # A break rather than nothing: "get用户list" reads better as get_list than as getlist.
    return "".join(c if c.isascii() else " " for c in kept)


def snake_case(text: str) -> str:
    """An operationId (any convention) as a valid operation name: `getUserRepos` → `get_user_repos`."""
    words = _CAMEL_BOUNDARY.sub("_", _transliterate(text))
    name = _NON_ALNUM.sub("_", words.lower()).strip("_")
    if not name:
        return "op"
    return f"op_{name}" if name[0].isdigit() else name


def fallback_name(method: str, path: str) -> str:
    """A name from method and path for an operation without operationId: `DELETE /items/{id}` → `delete_items_by_id`."""
    readable = PATH_PLACEHOLDER.sub(lambda match: f" by_{match.group(1)} ", path)
    return snake_case(f"{method} {readable}")


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8"), usedforsecurity=False).hexdigest()[:HASH_LENGTH]


def _hashed(name: str, digest: str, budget: int) -> str:
    head = name[: budget - HASH_LENGTH - 1].rstrip("_")
    return f"{head}_{digest}"


def _shorten(candidate: str, budget: int) -> str:
    """The candidate after the first shortening step that makes it fit in `budget` characters."""
    if len(candidate) <= budget:
        return candidate

    def fits(parts: list[str]) -> bool:
        return len("_".join(parts)) <= budget

    words = [ABBREVIATIONS.get(word, word) for word in candidate.split("_") if word]
    if fits(words):
        return "_".join(words)
    # The first word stays: it is usually the verb, and dropping it could leave a leading digit.
    words = words[:1] + [word for word in words[1:] if word not in FILLER_WORDS]
    if fits(words):
        return "_".join(words)
    # Longest words first; among equals the later one, since leading words (verb, resource) say the most.
    for index in sorted(range(len(words)), key=lambda i: (-len(words[i]), -i)):
        if len(words[index]) <= _CLIPPED_LENGTH:
            break
        words[index] = words[index][:_CLIPPED_LENGTH]
        if fits(words):
            return "_".join(words)
    return _hashed("_".join(words), _digest(candidate), budget)


def assign_names(candidates: Sequence[str], *, connector: str, max_length: int = 64) -> list[str]:
    """Unique operation names for `candidates` (snake_case, in a stable order), one per candidate.

    Each name fits `len(connector) + 1 + len(name) <= max_length`. A name that is too long is
    shortened by the first sufficient step of: abbreviating common words, dropping filler words,
    clipping words to 4 letters (longest first), cutting and appending `_` + 6 hex of sha1(candidate).
    When two candidates end up equal, the later one gets `_2`, `_3`... or, if that would not fit, the
    hash form. The result depends only on the arguments.
    """
    budget = max_length - len(connector) - 1
    if budget < HASH_LENGTH + 2:
        raise ValueError(f"connector name {connector!r} leaves no room for operation names within {max_length}")
    for candidate in candidates:
        if not OPERATION_NAME.fullmatch(candidate):
            raise ValueError(f"not an operation name (apply snake_case first): {candidate!r}")

    shortened = [_shorten(candidate, budget) for candidate in candidates]
    # Every name some candidate arrives at is reserved up front, so a suffixed name never takes
    # the natural name of a later candidate (which would then be renamed for no reason of its own).
    unavailable = set(shortened)
    emitted: set[str] = set()
    next_suffix: dict[str, int] = {}
    names: list[str] = []
    for candidate, name in zip(candidates, shortened, strict=True):
        if name in emitted:
            name = _disambiguate(candidate, name, budget, unavailable, next_suffix)
            unavailable.add(name)
        emitted.add(name)
        names.append(name)
    return names


def _disambiguate(candidate: str, name: str, budget: int, unavailable: set[str], next_suffix: dict[str, int]) -> str:
    suffix = next_suffix.get(name, 2)
    while len(suffixed := f"{name}_{suffix}") <= budget:
        suffix += 1
        if suffixed not in unavailable:
            next_suffix[name] = suffix
            return suffixed
    next_suffix[name] = suffix
    # Identical candidates hash alike, so a salt tells apart the third and later copies.
    salt = 0
    while (hashed := _hashed(name, _digest(candidate if salt == 0 else f"{candidate}#{salt}"), budget)) in unavailable:
        salt += 1
    return hashed
