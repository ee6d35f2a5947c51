"""`ToolIndex`: BM25 ranking over GitHub-like tools, tokenization and stemming, determinism and build/search cost."""

from __future__ import annotations

import random
import time
from typing import Any

import pytest

from mcp_server._discovery import ToolIndex, stem, tokenize
from mcp_server._model import Body, Connector, HttpMethod, Operation, Parameter
from mcp_server._registry import ToolSpec, build_tool

STRING: dict[str, Any] = {"type": "string"}
REPO_PATH = "/repos/{owner}/{repo}"


def path_params(path: str) -> list[Parameter]:
    names = [segment[1:-1] for segment in path.split("/") if segment.startswith("{")]
    return [Parameter(name, "path", STRING, required=True) for name in names]


def make_operation(
    name: str,
    method: HttpMethod,
    path: str,
    title: str,
    description: str,
    query: tuple[str, ...] = (),
    body: tuple[str, ...] = (),
) -> Operation:
    parameters = [*path_params(path), *(Parameter(q, "query", STRING) for q in query)]
    request_body = None
    if body:
        request_body = Body({"type": "object", "properties": {prop: STRING for prop in body}})
    return Operation(name, method, path, title, description, tuple(parameters), request_body)


OPERATIONS = [
    make_operation(
        "create_issue",
        "POST",
        f"{REPO_PATH}/issues",
        "Create an issue",
        "Any user with pull access to a repository can create an issue. Issues may be disabled on a repository.",
        body=("title", "body", "assignees", "milestone", "labels"),
    ),
    make_operation(
        "list_issues",
        "GET",
        f"{REPO_PATH}/issues",
        "List repository issues",
        "List issues in a repository. Only open issues will be listed by default.",
        query=("milestone", "state", "assignee", "creator", "labels", "sort", "since", "per_page", "page"),
    ),
    make_operation(
        "get_issue",
        "GET",
        f"{REPO_PATH}/issues/{{issue_number}}",
        "Get an issue",
        "The API returns a 301 Moved Permanently status if the issue was transferred to another repository.",
    ),
    make_operation(
        "update_issue",
        "PATCH",
        f"{REPO_PATH}/issues/{{issue_number}}",
        "Update an issue",
        "Issue owners and users with push access can edit an issue.",
        body=("title", "body", "state", "milestone", "labels", "assignees"),
    ),
    make_operation(
        "lock_issue",
        "PUT",
        f"{REPO_PATH}/issues/{{issue_number}}/lock",
        "Lock an issue",
        "Users with push access can lock an issue or pull request's conversation.",
        body=("lock_reason",),
    ),
    make_operation(
        "create_issue_comment",
        "POST",
        f"{REPO_PATH}/issues/{{issue_number}}/comments",
        "Create an issue comment",
        "You can use the REST API to create comments on issues and pull requests. Every pull request is an issue.",
        body=("body",),
    ),
    make_operation(
        "list_issue_comments",
        "GET",
        f"{REPO_PATH}/issues/{{issue_number}}/comments",
        "List issue comments",
        "You can use the REST API to list comments on issues and pull requests.",
        query=("since", "per_page", "page"),
    ),
    make_operation(
        "add_labels",
        "POST",
        f"{REPO_PATH}/issues/{{issue_number}}/labels",
        "Add labels to an issue",
        "Adds labels to an issue. If you provide an empty array of labels, all labels are removed from the issue.",
        body=("labels",),
    ),
    make_operation(
        "list_labels_for_repo",
        "GET",
        f"{REPO_PATH}/labels",
        "List labels for a repository",
        "Lists all labels for a repository.",
        query=("per_page", "page"),
    ),
    make_operation(
        "get_repo",
        "GET",
        REPO_PATH,
        "Get a repository",
        "The parent and source objects are present when the repository is a fork.",
    ),
    make_operation(
        "update_repo",
        "PATCH",
        REPO_PATH,
        "Update a repository",
        "Note: To edit a repository's topics, use the replace all repository topics endpoint.",
        body=("name", "description", "homepage", "private", "visibility", "default_branch"),
    ),
    make_operation(
        "delete_repo",
        "DELETE",
        REPO_PATH,
        "Delete a repository",
        "Deleting a repository requires admin access.",
    ),
    make_operation(
        "create_for_authenticated_user",
        "POST",
        "/user/repos",
        "Create a repository for the authenticated user",
        "Creates a new repository for the authenticated user.",
        body=("name", "description", "homepage", "private", "auto_init"),
    ),
    make_operation(
        "list_for_org",
        "GET",
        "/orgs/{org}/repos",
        "List organization repositories",
        "Lists repositories for the specified organization.",
        query=("type", "sort", "direction", "per_page", "page"),
    ),
    make_operation(
        "search_repos",
        "GET",
        "/search/repositories",
        "Search repositories",
        "Find repositories via various criteria. This method returns up to 100 results per page.",
        query=("q", "sort", "order", "per_page", "page"),
    ),
    make_operation(
        "search_code",
        "GET",
        "/search/code",
        "Search code",
        "Searches for query terms inside of a file. This method returns up to 100 results per page.",
        query=("q", "sort", "order", "per_page", "page"),
    ),
    make_operation(
        "search_issues_and_pull_requests",
        "GET",
        "/search/issues",
        "Search issues and pull requests",
        "Find issues by state and keyword. This method returns up to 100 results per page.",
        query=("q", "sort", "order", "per_page", "page"),
    ),
    make_operation(
        "list_pull_requests",
        "GET",
        f"{REPO_PATH}/pulls",
        "List pull requests",
        "Lists pull requests in a specified repository. Draft pull requests are available in public repositories.",
        query=("state", "head", "base", "sort", "direction", "per_page", "page"),
    ),
    make_operation(
        "create_pull_request",
        "POST",
        f"{REPO_PATH}/pulls",
        "Create a pull request",
        "Draft pull requests are available in public repositories. To open or update a pull request in a public "
        "repository, you must have write access to the head or the source branch.",
        body=("title", "head", "base", "body", "draft"),
    ),
    make_operation(
        "get_pull_request",
        "GET",
        f"{REPO_PATH}/pulls/{{pull_number}}",
        "Get a pull request",
        "Draft pull requests are available in public repositories. Lists details of a pull request by providing "
        "its number.",
    ),
    make_operation(
        "merge_pull_request",
        "PUT",
        f"{REPO_PATH}/pulls/{{pull_number}}/merge",
        "Merge a pull request",
        "Merges a pull request into the base branch.",
        body=("commit_title", "commit_message", "sha", "merge_method"),
    ),
    make_operation(
        "list_review_comments",
        "GET",
        f"{REPO_PATH}/pulls/{{pull_number}}/comments",
        "List review comments on a pull request",
        "Lists all review comments for a specified pull request.",
        query=("sort", "direction", "since", "per_page", "page"),
    ),
    make_operation(
        "list_commits",
        "GET",
        f"{REPO_PATH}/commits",
        "List commits",
        "Lists commits of a repository, newest first.",
        query=("sha", "path", "author", "since", "until", "per_page", "page"),
    ),
    make_operation(
        "list_branches",
        "GET",
        f"{REPO_PATH}/branches",
        "List branches",
        "Lists the branches of a repository.",
        query=("protected", "per_page", "page"),
    ),
    make_operation(
        "get_content",
        "GET",
        f"{REPO_PATH}/contents/{{path}}",
        "Get repository content",
        "Gets the contents of a file or directory in a repository.",
        query=("ref",),
    ),
    make_operation(
        "create_release",
        "POST",
        f"{REPO_PATH}/releases",
        "Create a release",
        "Users with push access to the repository can create a release.",
        body=("tag_name", "target_commitish", "name", "body", "draft", "prerelease"),
    ),
    make_operation(
        "list_releases",
        "GET",
        f"{REPO_PATH}/releases",
        "List releases",
        "This returns a list of releases, which does not include regular Git tags that have not been associated "
        "with a release.",
        query=("per_page", "page"),
    ),
    make_operation(
        "list_workflow_runs",
        "GET",
        f"{REPO_PATH}/actions/runs",
        "List workflow runs for a repository",
        "Lists all workflow runs for a repository. You can use parameters to narrow the list of results.",
        query=("actor", "branch", "event", "status", "per_page", "page"),
    ),
    make_operation(
        "get_authenticated_user",
        "GET",
        "/user",
        "Get the authenticated user",
        "OAuth app tokens and personal access tokens (classic) need the user scope to include private profile "
        "information.",
    ),
    make_operation(
        "list_gists",
        "GET",
        "/gists",
        "List gists for the authenticated user",
        "Lists the authenticated user's gists or if called anonymously, this endpoint returns all public gists.",
        query=("since", "per_page", "page"),
    ),
    make_operation(
        "star_repo",
        "PUT",
        "/user/starred/{owner}/{repo}",
        "Star a repository for the authenticated user",
        "Note that you'll need to set Content-Length to zero when calling out to this endpoint.",
    ),
]

GITHUB = Connector("github", "https://api.github.com", tuple(OPERATIONS), title="GitHub")


@pytest.fixture(scope="module")
def tools() -> list[ToolSpec]:
    return [build_tool(GITHUB, operation) for operation in OPERATIONS]


@pytest.fixture(scope="module")
def index(tools: list[ToolSpec]) -> ToolIndex:
    return ToolIndex(tools)


def names(results: list[tuple[ToolSpec, float]]) -> list[str]:
    return [tool.name for tool, _ in results]


# ------------------------------------------------------------------ tokenization


def test_tokenize_splits_lowercases_drops_stopwords_and_stems() -> None:
    assert tokenize("Create an issue") == ["creat", "issu"]
    assert tokenize("listPullRequests") == ["list", "pull", "request"]
    assert tokenize("HTTPServer per_page") == ["http", "server", "per", "pag"]
    assert tokenize("the of and") == []
    assert tokenize("") == []


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (("repository", "repositories"), "repository"),
        (("issue", "issues", "issued"), "issu"),
        (("label", "labels", "labeled", "labeling"), "label"),
        (("create", "creates", "created", "creating"), "creat"),
        (("branch", "branches"), "branch"),
        (("status", "statuses"), "status"),
        (("release", "releases", "released"), "releas"),
        (("run", "runs", "running"), "run"),
        (("access", "accesses"), "access"),
    ],
)
def test_stemming_makes_inflections_agree(words: tuple[str, ...], expected: str) -> None:
    assert {stem(word) for word in words} == {expected}


def test_stemming_keeps_short_stems() -> None:
    assert [stem(w) for w in ("use", "uses", "need", "bus", "sing", "red")] == [
        "use",
        "use",
        "need",
        "bus",
        "sing",
        "red",
    ]


# ------------------------------------------------------------------ ranking


def test_create_an_issue_ranks_the_create_issue_tool_first(index: ToolIndex) -> None:
    results = index.search("create an issue")
    assert names(results)[0] == "github_create_issue"
    assert "github_create_issue_comment" in names(results)[1:4]


def test_pull_requests_ranks_list_pull_requests_first(index: ToolIndex) -> None:
    results = index.search("pull requests")
    assert names(results)[0] == "github_list_pull_requests"
    assert {"github_create_pull_request", "github_get_pull_request"} <= set(names(results)[:5])


def test_repository_finds_repository_tools_through_stemming(index: ToolIndex) -> None:
    top = names(index.search("repository", limit=8))
    for expected in ("github_get_repo", "github_update_repo", "github_delete_repo", "github_search_repos"):
        assert expected in top
    # get_repo and delete_repo say "repository" and "repo", never "repositories".
    plural = names(index.search("repositories", limit=len(OPERATIONS)))
    assert {"github_get_repo", "github_delete_repo", "github_search_repos", "github_list_for_org"} <= set(plural)
    # search_repos and list_for_org say "repositories" as written: they come first.
    assert set(plural[:2]) == {"github_search_repos", "github_list_for_org"}


def test_abbreviations_match_the_full_word() -> None:
    assert tokenize("repos repo repository repositories") == ["repository"] * 4
    assert tokenize("orgs organization") == ["organization"] * 2
    assert tokenize("config_id env") == ["configuration", "id", "environment"]


def test_search_repositories_prefers_the_search_tool(index: ToolIndex) -> None:
    assert names(index.search("search repositories"))[0] == "github_search_repos"
    assert names(index.search("find code in files"))[0] == "github_search_code"


def test_parameter_names_are_matched(index: ToolIndex) -> None:
    results = names(index.search("labels"))
    assert results[0] == "github_add_labels"
    # Tools whose only mention of labels is a parameter name.
    assert {"github_list_issues", "github_update_issue", "github_create_issue"} <= set(results)
    assert names(index.search("lock_reason")) == ["github_lock_issue"]
    assert names(index.search("mergeMethod"))[0] == "github_merge_pull_request"


def test_more_queries_rank_sensibly(index: ToolIndex) -> None:
    assert names(index.search("merge a PR branch"))[0] == "github_merge_pull_request"
    assert names(index.search("get the authenticated user"))[0] == "github_get_authenticated_user"
    assert names(index.search("workflow runs"))[0] == "github_list_workflow_runs"
    assert names(index.search("read a file"))[0] == "github_get_content"
    assert names(index.search("publish a release"))[0] == "github_create_release"


def test_scores_are_positive_and_descending(index: ToolIndex) -> None:
    results = index.search("list issues for a repository", limit=50)
    scores = [score for _, score in results]
    assert all(score > 0 for score in scores)
    assert scores == sorted(scores, reverse=True)


def test_limit(index: ToolIndex) -> None:
    assert len(index.search("repository", limit=3)) == 3
    assert index.search("repository", limit=0) == []
    assert len(index.search("repository", limit=1000)) < len(OPERATIONS)


@pytest.mark.parametrize("query", ["", "   ", "the", "an of to", "?!", "zzzunknownzzz"])
def test_empty_stopword_only_and_unknown_queries_find_nothing(index: ToolIndex, query: str) -> None:
    assert index.search(query) == []


def test_empty_index() -> None:
    assert ToolIndex([]).search("anything") == []


def test_ties_are_broken_by_name(tools: list[ToolSpec]) -> None:
    twins = [
        build_tool(GITHUB, make_operation(name, "GET", "/x", "Same title", "Same description."))
        for name in ("zeta", "alpha", "mid")
    ]
    results = ToolIndex(twins).search("same")
    assert names(results) == ["github_alpha", "github_mid", "github_zeta"]
    assert len({score for _, score in results}) == 1


def test_deterministic_across_builds_and_input_order(tools: list[ToolSpec]) -> None:
    queries = ["create an issue", "pull requests", "repository", "labels", "list", "search"]
    first = {q: ToolIndex(tools).search(q, limit=30) for q in queries}
    shuffled = list(tools)
    random.Random(3).shuffle(shuffled)
    for query in queries:
        again = ToolIndex(tools).search(query, limit=30)
        assert again == first[query]
        reordered = ToolIndex(shuffled).search(query, limit=30)
        assert names(reordered) == names(first[query])
        assert [s for _, s in reordered] == pytest.approx([s for _, s in first[query]])


# ------------------------------------------------------------------ cost


def synthetic_tools(count: int) -> list[ToolSpec]:
    """`count` tools over a realistic vocabulary, shaped like a large generated catalog."""
    rng = random.Random(11)
    verbs = ["list", "get", "create", "update", "delete", "search", "replace", "cancel", "approve", "merge"]
    nouns = [
        "repository",
        "issue",
        "comment",
        "label",
        "milestone",
        "release",
        "workflow",
        "run",
        "artifact",
        "secret",
        "variable",
        "runner",
        "deployment",
        "environment",
        "branch",
        "commit",
        "tag",
        "team",
        "member",
        "organization",
        "project",
        "card",
        "column",
        "gist",
        "key",
        "hook",
        "invitation",
        "package",
        "pull",
        "request",
        "review",
        "check",
        "suite",
        "alert",
        "codespace",
        "webhook",
    ]
    filler = [
        "the",
        "a",
        "of",
        "for",
        "with",
        "in",
        "by",
        "an",
        "this",
        "is",
        "returns",
        "you",
        "can",
        "use",
        "to",
        "and",
        "when",
        "are",
    ]
    connector = Connector("big", "https://api.example.com", ())
    tools: list[ToolSpec] = []
    for i in range(count):
        verb, noun, other = rng.choice(verbs), rng.choice(nouns), rng.choice(nouns)
        words = [rng.choice(nouns + filler + verbs) for _ in range(rng.randint(10, 40))]
        operation = make_operation(
            f"{verb}_{noun}_{other}_{i}",
            "GET",
            f"/{noun}s/{{{noun}_id}}/{other}s",
            f"{verb.capitalize()} {noun} {other}",
            " ".join(words).capitalize() + ".",
            query=(*rng.sample(nouns, 3), "per_page", "page"),
        )
        tools.append(build_tool(connector, operation))
    return tools


def test_build_and_search_cost_for_5000_tools() -> None:
    tools = synthetic_tools(5000)
    started = time.perf_counter()
    index = ToolIndex(tools)
    build = time.perf_counter() - started

    queries = ["create an issue", "list pull requests for a repository", "secret", "delete deployment environment"]
    started = time.perf_counter()
    rounds = 10
    for _ in range(rounds):
        for query in queries:
            assert index.search(query)
    search = (time.perf_counter() - started) / (rounds * len(queries))

    print(f"\nToolIndex: 5,000 tools built in {build * 1000:.0f} ms; one search takes {search * 1000:.2f} ms")
    assert len(index) == 5000
    assert build < 5.0
    assert search < 0.2
