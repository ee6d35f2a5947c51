"""A search index over tools for discovery mode (search, describe and call instead of thousands of tools).

Each tool is a document with four fields: its name (split on `_`), title, description and parameter
names. Name and title weigh three and two times as much as the rest: they are short and say what
the tool is, while descriptions are long and mention neighbouring concepts. Ranking is Okapi BM25
(k1 = 1.2, b = 0.75) with three refinements, each of which raised top-1 accuracy on 32 everyday
queries over GitHub's full description (1,223 tools; 13/32 → 26/32 together):

- Field weights are applied the BM25F way (each field normalized by its own length, then weighted,
  summed and saturated once) rather than by repeating tokens in one document, where a long
  description drowns out whether the *name* is short and to the point.
- A term is indexed as its stem and, when different, as written: every inflection still matches,
  but "pull requests" prefers listing pull requests over getting one.
- A tool whose operation name the query covers ranks higher, up to x2 when every word of the name
  is in the query: "create an issue" should find `issues_create` before `reactions_create_for_issue`,
  whose description talks about issues just as much.

Everything but the query is precomputed at build time (each posting holds its saturated term
weight), so a search walks the postings of the query's terms and multiplies by idf.
"""

from __future__ import annotations

import heapq
import math
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from functools import lru_cache
from typing import Any, cast

from mcp_server._registry import ToolSpec

K1 = 1.2
B = 0.75
FIELD_WEIGHTS = (3.0, 2.0, 1.0, 1.0)
"""Name, title, description, parameter names."""
NAME_COVERAGE_BOOST = 1.0
"""A score is multiplied by 1 + this x the share of the operation name's words found in the query."""

_WORD = re.compile(r"[^\W_]+")
_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
# fmt: off
STOPWORDS = frozenset({
    "a", "an", "and", "any", "are", "as", "at", "be", "by", "can", "do", "does", "for", "from", "how", "i",
    "in", "into", "is", "it", "its", "me", "my", "of", "on", "or", "our", "so", "that", "the", "their",
    "them", "then", "there", "these", "this", "those", "to", "was", "we", "what", "when", "where", "which",
    "who", "will", "with", "you", "your",
})
# fmt: on
_VOWELS = frozenset("aeiouy")


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """A naive stemmer that makes the common English inflections of one word agree.

    Beyond stripping `s`, `es`, `ing` and `ed` (stem kept at >= 3 characters), `ies` becomes `y`
    (repositories → repository), a final `e` goes (issue, issues and issued all give `issu`), and a
    doubled final consonant left by `ing`/`ed` is undone (running → run).
    """
    if word.endswith("ies") and len(word) >= 5:
        return word[:-3] + "y"
    for suffix in ("ing", "ed"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            base = word[: -len(suffix)]
            if len(base) >= 4 and base[-1] == base[-2] and base[-1] not in _VOWELS and base[-1] not in "lsz":
                base = base[:-1]
            return base
    if word.endswith(("ses", "xes", "zes", "ches", "shes")) and len(word) >= 5:
        word = word[:-2]
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")) and len(word) >= 4:
        word = word[:-1]
    if word.endswith("e") and len(word) >= 4:
        word = word[:-1]
    return word


EXPANSIONS = {
    "admin": "administrator",
    "admins": "administrators",
    "app": "application",
    "apps": "applications",
    "config": "configuration",
    "configs": "configurations",
    "env": "environment",
    "envs": "environments",
    "info": "information",
    "notif": "notification",
    "notifs": "notifications",
    "org": "organization",
    "orgs": "organizations",
    "perm": "permission",
    "perms": "permissions",
    "repo": "repository",
    "repos": "repositories",
}
"""Abbreviations (most of them what `_naming` shortens long names with) read as the full word, so that
"repository" finds `repos_get`. Ambiguous ones stay out: `desc` is also descending, `sub` also sub-issue."""


def _words(text: str) -> Iterator[tuple[str, str]]:
    """Each word of `text` as written (lowercased) and its stem; stopwords dropped."""
    for run in _WORD.findall(text):
        for part in _CAMEL_BOUNDARY.split(run):
            word = part.lower()
            if word not in STOPWORDS:
                yield word, stem(EXPANSIONS.get(word, word))


def tokenize(text: str) -> list[str]:
    """Stems of the words of `text`: lowercase, split on non-alphanumerics and camelCase, stopwords dropped."""
    return [stemmed for _, stemmed in _words(text)]


def _terms(text: str) -> list[str]:
    """The stems of `text`, each followed by its word as written when that differs.

    Both documents and queries carry both, so a stem still matches every inflection while an
    exact form counts a little more: "pull requests" prefers the tool that lists pull requests
    over the one that gets a single pull request.
    """
    terms: list[str] = []
    for word, stemmed in _words(text):
        terms.append(stemmed)
        if stemmed != word:
            terms.append(word)
    return terms


def _fields(tool: ToolSpec) -> tuple[list[str], list[str], list[str], list[str]]:
    properties = cast(Mapping[str, Any], tool.input_schema.get("properties", {}))
    parameters = [term for parameter in properties for term in _terms(parameter)]
    return _terms(tool.name), _terms(tool.title), _terms(tool.description), parameters


class ToolIndex:
    """Ranked search over a fixed set of tools (see the module docstring); immutable once built."""

    def __init__(self, tools: Sequence[ToolSpec]) -> None:
        self._tools = tuple(tools)
        documents = [_fields(tool) for tool in self._tools]
        total = len(documents)
        averages = [sum(len(fields[f]) for fields in documents) / total if total else 0.0 for f in range(4)]
        postings: dict[str, list[tuple[int, float]]] = {}
        for index, fields in enumerate(documents):
            weighted: dict[str, float] = {}
            for terms, weight, average in zip(fields, FIELD_WEIGHTS, averages, strict=True):
                if not terms:
                    continue
                scale = weight / (1 - B + B * len(terms) / average)
                for term, count in Counter(terms).items():
                    weighted[term] = weighted.get(term, 0.0) + count * scale
            for term, frequency in weighted.items():
                postings.setdefault(term, []).append((index, frequency * (K1 + 1) / (K1 + frequency)))
        # Lucene's idf, which stays positive for terms in more than half of the documents.
        self._idf = {term: math.log(1 + (total - len(p) + 0.5) / (len(p) + 0.5)) for term, p in postings.items()}
        self._postings = postings
        # Without the connector prefix, which every tool of a connector shares and queries rarely say.
        self._name_stems = [frozenset(tokenize(tool.operation.name)) for tool in self._tools]

    def __len__(self) -> int:
        return len(self._tools)

    def search(self, query: str, limit: int = 10) -> list[tuple[ToolSpec, float]]:
        """The best `limit` tools for `query` with their scores, best first, equal scores by tool name."""
        if limit <= 0:
            return []
        scores: dict[int, float] = {}
        query_stems = frozenset(tokenize(query))
        for term in _unique(_terms(query)):
            idf = self._idf.get(term)
            if idf is None:
                continue
            for index, weight in self._postings[term]:
                scores[index] = scores.get(index, 0.0) + idf * weight
        for index, score in scores.items():
            if name := self._name_stems[index]:
                scores[index] = score * (1 + NAME_COVERAGE_BOOST * len(name & query_stems) / len(name))
        best = heapq.nsmallest(limit, scores.items(), key=lambda item: (-item[1], self._tools[item[0]].name))
        return [(self._tools[index], score) for index, score in best]


def _unique(tokens: Iterable[str]) -> list[str]:
    """Query terms once each, in order: repeating a word in a query should not multiply its weight."""
    return list(dict.fromkeys(tokens))
