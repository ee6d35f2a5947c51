"""The bundled tools/github.yaml against a fake api.github.com, and its listing through the real stdio command."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote

import pytest
from mcp import Client, StdioServerParameters
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from mcp_server._catalog import load_catalog
from mcp_server._errors import ToolError
from mcp_server._pipeline import Outcome, Pipeline, ToolSuccess
from mcp_server._registry import Registry
from mcp_server._vault import Vault
from tests._upstream import FakeUpstream, Recorded, UpstreamThread
from tests.conftest import PASSPHRASE, server_command

BUNDLED_MANIFEST = Path(__file__).resolve().parents[1] / "tools" / "github.yaml"
GH_TOKEN = "ghp_R4nd0mT0k3nV4lu3F0rT3st1ngOnly0123"
DOCS = "https://docs.github.com/rest"
ALL_TOOLS = {
    "github_get_authenticated_user",
    "github_get_user",
    "github_list_user_repos",
    "github_list_org_repos",
    "github_get_repo",
    "github_search_repos",
    "github_list_issues",
    "github_get_issue",
    "github_create_issue",
    "github_create_issue_comment",
    "github_list_pull_requests",
}

# ------------------------------------------------------------------ a fake api.github.com


def user_json(login: str, user_id: int, kind: str = "User") -> dict[str, Any]:
    return {
        "login": login,
        "id": user_id,
        "node_id": "MDQ6VXNlcjE=",
        "avatar_url": f"https://avatars.githubusercontent.com/u/{user_id}?v=4",
        "url": f"https://api.github.com/users/{login}",
        "html_url": f"https://github.com/{login}",
        "repos_url": f"https://api.github.com/users/{login}/repos",
        "type": kind,
        "site_admin": False,
        "name": "The Octocat",
        "company": "@github",
        "blog": "https://github.blog",
        "location": "San Francisco",
        "email": None,
        "hireable": None,
        "bio": None,
        "twitter_username": None,
        "public_repos": 8,
        "public_gists": 8,
        "followers": 9999,
        "following": 9,
        "created_at": "2011-01-25T18:44:36Z",
        "updated_at": "2024-01-22T12:13:12Z",
    }


def repo_json(owner: str, name: str) -> dict[str, Any]:
    return {
        "id": 1296269,
        "node_id": "MDEwOlJlcG9zaXRvcnkxMjk2MjY5",
        "name": name,
        "full_name": f"{owner}/{name}",
        "private": False,
        "owner": {"login": owner, "id": 583231, "type": "User", "site_admin": False},
        "html_url": f"https://github.com/{owner}/{name}",
        "description": "My first repository on GitHub!",
        "fork": False,
        "url": f"https://api.github.com/repos/{owner}/{name}",
        "created_at": "2011-01-26T19:01:12Z",
        "updated_at": "2024-01-22T12:13:12Z",
        "pushed_at": "2024-01-20T10:00:00Z",
        "homepage": "",
        "size": 1,
        "stargazers_count": 2600,
        "watchers_count": 2600,
        "language": None,
        "has_issues": True,
        "forks_count": 2300,
        "archived": False,
        "disabled": False,
        "open_issues_count": 1300,
        "license": None,
        "allow_forking": True,
        "topics": [],
        "visibility": "public",
        "forks": 2300,
        "open_issues": 1300,
        "watchers": 2600,
        "default_branch": "master",
    }


def issue_json(owner: str, repo: str, number: int, title: str, body: str | None = None) -> dict[str, Any]:
    return {
        "id": 1,
        "node_id": "MDU6SXNzdWUx",
        "url": f"https://api.github.com/repos/{owner}/{repo}/issues/{number}",
        "html_url": f"https://github.com/{owner}/{repo}/issues/{number}",
        "number": number,
        "state": "open",
        "state_reason": None,
        "title": title,
        "body": body,
        "user": {"login": "octocat", "id": 1},
        "labels": [],
        "assignees": [],
        "milestone": None,
        "locked": False,
        "comments": 0,
        "created_at": "2024-04-22T13:33:48Z",
        "updated_at": "2024-04-22T13:33:48Z",
        "closed_at": None,
        "author_association": "OWNER",
    }


def gh_error(status: int, message: str, headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    return JSONResponse(
        {"message": message, **extra, "documentation_url": DOCS, "status": str(status)},
        status_code=status,
        headers=headers,
    )


@dataclass
class FakeGitHub(FakeUpstream):
    """Routes on the raw path's segments, decoded one by one, as GitHub itself does (so `a%2Fb` is one name)."""

    users: tuple[str, ...] = ("octocat", "github")

    async def _handle(self, request: Request) -> Response:
        body = await request.body()
        raw_path = request.scope["raw_path"].decode("latin-1")
        self.requests.append(
            Recorded(
                method=request.method,
                raw_path=raw_path,
                query=request.scope["query_string"].decode("latin-1"),
                headers={k.lower(): v for k, v in request.headers.items()},
                body=body,
            )
        )
        if not request.headers.get("user-agent"):
            return gh_error(
                403,
                "Request forbidden by administrative rules. "
                "Please make sure your request has a User-Agent header "
                "(https://docs.github.com/en/rest/overview/resources-in-the-rest-api#user-agent-required).",
            )
        if request.headers.get("authorization") != f"Bearer {GH_TOKEN}":
            return gh_error(401, "Bad credentials")
        query = dict(parse_qsl(request.scope["query_string"].decode("latin-1"), keep_blank_values=True))
        parts = [unquote(p) for p in raw_path.strip("/").split("/")]
        route = (request.method, *parts)
        limits = {"x-ratelimit-limit": "5000", "x-ratelimit-remaining": "4999", "x-ratelimit-resource": "core"}
        match route:
            case ("GET", "user"):
                return JSONResponse(user_json("octocat", 1), headers=limits)
            case ("GET", "users", login) if login in self.users:
                return JSONResponse(user_json(login, 2), headers=limits)
            case ("GET", "users", login, "repos") if login in self.users:
                return JSONResponse([repo_json(login, "Hello-World"), repo_json(login, "Spoon-Knife")])
            case ("GET", "orgs", "busy-org", "repos"):
                message = (
                    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. "
                    "If you reach out to GitHub Support for help, please include the request ID 0000:1111:2222."
                )
                return JSONResponse(
                    {
                        "message": message,
                        "documentation_url": "https://docs.github.com/free-pro-team@latest/rest/using-the-rest-api/"
                        "rate-limits-for-the-rest-api#about-secondary-rate-limits",
                    },
                    status_code=403,
                    headers={"retry-after": "60", "x-ratelimit-remaining": "4990"},
                )
            case ("GET", "orgs", org, "repos") if org in self.users:
                return JSONResponse([repo_json(org, ".github")])
            case ("GET", "repos", "octocat", "Hello-World"):
                return JSONResponse(repo_json("octocat", "Hello-World"))
            case ("GET", "search", "repositories"):
                return JSONResponse(
                    {"total_count": 1, "incomplete_results": False, "items": [repo_json("octocat", query["q"])]}
                )
            case ("GET", "repos", owner, repo, "issues"):
                # Five issues, newest first, paged as GitHub does: a Link header (here in GitHub's
                # /repositories/{id} form, which it often uses) names the next and last pages.
                per_page, page = int(query.get("per_page", "30")), int(query.get("page", "1"))
                numbers = list(range(1347, 1342, -1))[(page - 1) * per_page : page * per_page]
                last = (5 + per_page - 1) // per_page
                link = f"<https://api.github.com/repositories/1296269/issues?per_page={per_page}&page={{}}>"
                links = ([f'{link.format(page + 1)}; rel="next"'] if page < last else []) + [
                    f'{link.format(last)}; rel="last"'
                ]
                issues = [issue_json(owner, repo, number, "Found a bug") for number in numbers]
                return JSONResponse(issues, headers={"link": ", ".join(links)})
            case ("GET", "repos", owner, repo, "issues", number) if number.isdigit():
                return JSONResponse(issue_json(owner, repo, int(number), "Found a bug"))
            case ("POST", "repos", owner, repo, "issues"):
                sent = json.loads(body)
                unknown = [login for login in sent.get("assignees", []) if login not in self.users]
                if unknown:
                    return gh_error(
                        422,
                        "Validation Failed",
                        errors=[{"value": unknown[0], "resource": "Issue", "field": "assignees", "code": "invalid"}],
                    )
                issue = issue_json(owner, repo, 1348, sent["title"], sent.get("body"))
                issue["labels"] = [{"name": name, "color": "f29513"} for name in sent.get("labels", [])]
                issue["assignees"] = [{"login": login} for login in sent.get("assignees", [])]
                return JSONResponse(issue, status_code=201, headers={"location": issue["url"]})
            case ("POST", "repos", owner, repo, "issues", number, "comments"):
                comment = {
                    "id": 1,
                    "node_id": "MDEyOklzc3VlQ29tbWVudDE=",
                    "html_url": f"https://github.com/{owner}/{repo}/issues/{number}#issuecomment-1",
                    "body": json.loads(body)["body"],
                    "user": {"login": "octocat", "id": 1},
                    "created_at": "2011-04-14T16:00:49Z",
                    "updated_at": "2011-04-14T16:00:49Z",
                    "author_association": "COLLABORATOR",
                }
                return JSONResponse(comment, status_code=201)
            case ("GET", "repos", owner, repo, "pulls"):
                return JSONResponse([{"number": 1347, "state": "open", "title": "Amazing new feature", "draft": False}])
            case _:
                return gh_error(404, "Not Found")


@pytest.fixture(scope="module")
def github_server() -> Iterator[FakeGitHub]:
    thread = UpstreamThread(FakeGitHub())
    started = thread.start()
    assert isinstance(started, FakeGitHub)
    yield started
    thread.stop()


@pytest.fixture
def github(github_server: FakeGitHub) -> FakeGitHub:
    github_server.requests.clear()
    return github_server


def github_tools(directory: Path, base_url: str) -> Path:
    text = BUNDLED_MANIFEST.read_text()
    assert text.count("base_url: https://api.github.com\n") == 1
    directory.mkdir()
    (directory / "github.yaml").write_text(
        text.replace("base_url: https://api.github.com\n", f"base_url: {base_url}\n")
    )
    return directory


def make_pipeline(tools: Path, vault_path: Path, token: str) -> Pipeline:
    catalog = load_catalog([tools])
    assert not catalog.faults, catalog.faults
    Vault(vault_path, passphrase=PASSPHRASE, use_keyring=False).set("github_token", token)
    registry = Registry.from_catalog(catalog)
    return Pipeline(registry, Vault(vault_path, passphrase=PASSPHRASE, use_keyring=False), environ={})


@pytest.fixture
async def pipeline(tmp_path: Path, github_server: FakeGitHub) -> AsyncIterator[Pipeline]:
    tools = github_tools(tmp_path / "tools", github_server.url)
    async with make_pipeline(tools, tmp_path / "vault.json", GH_TOKEN) as running:
        yield running


def ok(outcome: Outcome, status: int = 200) -> Any:
    assert isinstance(outcome, ToolSuccess), outcome.to_body()
    assert outcome.status == status and outcome.is_json
    assert GH_TOKEN not in outcome.text
    return outcome.value


def failed(outcome: Outcome, code: str) -> ToolError:
    assert isinstance(outcome, ToolError), outcome
    assert outcome.error_code == code, outcome.to_body()
    assert GH_TOKEN not in json.dumps(outcome.to_body())
    return outcome


def sent(github: FakeGitHub, method: str, raw_path: str, query: str = "", body: Any = None) -> Recorded:
    """The one request the last call made, checked against what api.github.com expects."""
    assert len(github.requests) == 1, [r.raw_path for r in github.requests]
    request = github.requests.pop()
    assert (request.method, request.raw_path, request.query) == (method, raw_path, query)
    headers = request.headers
    assert headers["authorization"] == f"Bearer {GH_TOKEN}"
    assert headers["accept"] == "application/vnd.github+json"
    assert headers["x-github-api-version"] == "2022-11-28"
    assert headers["user-agent"] == "mcp-connectors"
    assert "cookie" not in headers
    if body is None:
        assert request.body == b"" and "content-type" not in headers
    else:
        assert headers["content-type"] == "application/json"
        assert request.json == body
    return request


# ------------------------------------------------------------------ each tool once


async def test_get_authenticated_user(pipeline: Pipeline, github: FakeGitHub) -> None:
    value = ok(await pipeline.invoke("github_get_authenticated_user", {}))
    sent(github, "GET", "/user")
    assert value["login"] == "octocat" and value["type"] == "User"


async def test_get_user(pipeline: Pipeline, github: FakeGitHub) -> None:
    value = ok(await pipeline.invoke("github_get_user", {"username": "github"}))
    sent(github, "GET", "/users/github")
    assert value["login"] == "github" and value["public_repos"] == 8


async def test_list_user_repos(pipeline: Pipeline, github: FakeGitHub) -> None:
    arguments = {
        "username": "octocat",
        "type": "owner",
        "sort": "updated",
        "direction": "asc",
        "per_page": 5,
        "page": 2,
    }
    value = ok(await pipeline.invoke("github_list_user_repos", arguments))
    sent(github, "GET", "/users/octocat/repos", "type=owner&sort=updated&direction=asc&per_page=5&page=2")
    assert [repo["full_name"] for repo in value["items"]] == ["octocat/Hello-World", "octocat/Spoon-Knife"]
    assert value["has_more"] is False and value["next_page"] is None  # no Link header: the last page


async def test_list_org_repos(pipeline: Pipeline, github: FakeGitHub) -> None:
    value = ok(await pipeline.invoke("github_list_org_repos", {"org": "github", "type": "public", "per_page": 100}))
    sent(github, "GET", "/orgs/github/repos", "type=public&per_page=100")
    assert value["items"][0]["full_name"] == "github/.github"


async def test_get_repo(pipeline: Pipeline, github: FakeGitHub) -> None:
    value = ok(await pipeline.invoke("github_get_repo", {"owner": "octocat", "repo": "Hello-World"}))
    sent(github, "GET", "/repos/octocat/Hello-World")
    assert value["full_name"] == "octocat/Hello-World" and value["default_branch"] == "master"


async def test_search_repos(pipeline: Pipeline, github: FakeGitHub) -> None:
    q = 'language:python stars:>1000 "machine learning" pushed:>=2024-01-01'
    arguments = {"q": q, "sort": "stars", "order": "desc", "per_page": 10, "page": 1}
    value = ok(await pipeline.invoke("github_search_repos", arguments))
    sent(
        github,
        "GET",
        "/search/repositories",
        "q=language%3Apython%20stars%3A%3E1000%20%22machine%20learning%22%20pushed%3A%3E%3D2024-01-01"
        "&sort=stars&order=desc&per_page=10&page=1",
    )
    assert value["total_count"] == 1 and value["items"][0]["name"] == q  # GitHub decoded exactly the query we meant


async def test_list_issues(pipeline: Pipeline, github: FakeGitHub) -> None:
    arguments = {
        "owner": "octocat",
        "repo": "Hello-World",
        "state": "all",
        "labels": "bug,ui,@high",
        "assignee": "*",
        "since": "2024-01-31T00:00:00Z",
        "per_page": 50,
    }
    value = ok(await pipeline.invoke("github_list_issues", arguments))
    sent(
        github,
        "GET",
        "/repos/octocat/Hello-World/issues",
        "state=all&labels=bug%2Cui%2C%40high&assignee=%2A&since=2024-01-31T00%3A00%3A00Z&per_page=50",
    )
    assert value["items"][0]["number"] == 1347


async def test_get_issue(pipeline: Pipeline, github: FakeGitHub) -> None:
    value = ok(
        await pipeline.invoke("github_get_issue", {"owner": "octocat", "repo": "Hello-World", "issue_number": 7})
    )
    sent(github, "GET", "/repos/octocat/Hello-World/issues/7")
    assert value["number"] == 7 and value["state"] == "open"


async def test_create_issue(pipeline: Pipeline, github: FakeGitHub) -> None:
    arguments = {
        "owner": "octocat",
        "repo": "Hello-World",
        "title": "Found a bug",
        "body": "I'm having a problem with this. ünïcode ✓",
        "labels": ["bug", "help wanted"],
        "assignees": ["octocat"],
        "milestone": 1,
    }
    value = ok(await pipeline.invoke("github_create_issue", arguments), status=201)
    request = sent(
        github,
        "POST",
        "/repos/octocat/Hello-World/issues",
        body={
            "title": "Found a bug",
            "body": "I'm having a problem with this. ünïcode ✓",
            "labels": ["bug", "help wanted"],
            "assignees": ["octocat"],
            "milestone": 1,
        },
    )
    assert "owner" not in request.json and "repo" not in request.json  # path parameters stay in the path
    assert value["number"] == 1348
    assert value["html_url"] == "https://github.com/octocat/Hello-World/issues/1348"
    assert [label["name"] for label in value["labels"]] == ["bug", "help wanted"]


async def test_create_issue_minimal_body(pipeline: Pipeline, github: FakeGitHub) -> None:
    ok(await pipeline.invoke("github_create_issue", {"owner": "o", "repo": "r", "title": "Only a title"}), status=201)
    sent(github, "POST", "/repos/o/r/issues", body={"title": "Only a title"})


async def test_create_issue_comment(pipeline: Pipeline, github: FakeGitHub) -> None:
    arguments = {"owner": "octocat", "repo": "Hello-World", "issue_number": 1347, "body": "Me too"}
    value = ok(await pipeline.invoke("github_create_issue_comment", arguments), status=201)
    sent(github, "POST", "/repos/octocat/Hello-World/issues/1347/comments", body={"body": "Me too"})
    assert value["html_url"].endswith("/issues/1347#issuecomment-1") and value["body"] == "Me too"


async def test_list_pull_requests(pipeline: Pipeline, github: FakeGitHub) -> None:
    arguments = {
        "owner": "octocat",
        "repo": "Hello-World",
        "state": "open",
        "head": "octocat:new-topic",
        "base": "main",
        "sort": "long-running",
        "per_page": 2,
    }
    value = ok(await pipeline.invoke("github_list_pull_requests", arguments))
    sent(
        github,
        "GET",
        "/repos/octocat/Hello-World/pulls",
        "state=open&head=octocat%3Anew-topic&base=main&sort=long-running&per_page=2",
    )
    assert value["items"][0]["title"] == "Amazing new feature"


async def test_list_issues_follows_the_link_header(pipeline: Pipeline, github: FakeGitHub) -> None:
    first = ok(await pipeline.invoke("github_list_issues", {"owner": "octocat", "repo": "Hello-World", "per_page": 2}))
    assert [issue["number"] for issue in first["items"]] == [1347, 1346]
    assert first["has_more"] is True and first["next_page"] == {"page": 2}
    github.requests.clear()
    arguments = {"owner": "octocat", "repo": "Hello-World", "per_page": 2, "all_pages": True}
    everything = ok(await pipeline.invoke("github_list_issues", arguments))
    assert [issue["number"] for issue in everything["items"]] == [1347, 1346, 1345, 1344, 1343]
    assert everything["pages"] == 3 and everything["truncated"] is False and everything["next_page"] is None
    assert [request.query for request in github.requests] == [
        "per_page=2",
        "per_page=2&page=2",
        "per_page=2&page=3",
    ]


# ------------------------------------------------------------------ encoding, validation and GitHub's errors


async def test_owner_and_repo_are_percent_encoded(pipeline: Pipeline, github: FakeGitHub) -> None:
    outcome = await pipeline.invoke("github_get_repo", {"owner": "my org", "repo": "../a/b?c#d"})
    sent(github, "GET", "/repos/my%20org/..%2Fa%2Fb%3Fc%23d")
    error = failed(outcome, "UPSTREAM_ERROR")
    assert error.details["status"] == 404


async def test_not_found(pipeline: Pipeline, github: FakeGitHub) -> None:
    error = failed(await pipeline.invoke("github_get_user", {"username": "no-such-user-anywhere"}), "UPSTREAM_ERROR")
    assert error.message == "GitHub answered HTTP 404 Not Found: Not Found"
    assert error.details == {
        "status": 404,
        "body": {"message": "Not Found", "documentation_url": DOCS, "status": "404"},
    }


async def test_bad_credentials(tmp_path: Path, github: FakeGitHub) -> None:
    tools = github_tools(tmp_path / "tools", github.url)
    wrong = "ghp_WrongTokenThatGitHubRejects000000"
    async with make_pipeline(tools, tmp_path / "vault.json", wrong) as pipeline:
        error = failed(await pipeline.invoke("github_get_authenticated_user", {}), "AUTH_FAILED")
    assert github.requests[-1].headers["authorization"] == f"Bearer {wrong}"
    assert "Bad credentials" in error.message and error.details["status"] == 401
    assert wrong not in json.dumps(error.to_body())


async def test_missing_token(tmp_path: Path, github: FakeGitHub) -> None:
    tools = github_tools(tmp_path / "tools", github.url)
    registry = Registry.from_catalog(load_catalog([tools]))
    async with Pipeline(
        registry, Vault(tmp_path / "none.json", passphrase=PASSPHRASE, use_keyring=False), environ={}
    ) as p:
        error = failed(await p.invoke("github_get_user", {"username": "octocat"}), "AUTH_MISSING")
    assert "mcp-connectors vault set github_token" in error.message
    assert github.requests == []


async def test_validation_failed(pipeline: Pipeline, github: FakeGitHub) -> None:
    arguments = {"owner": "octocat", "repo": "Hello-World", "title": "Bug", "assignees": ["nobody-here"]}
    error = failed(await pipeline.invoke("github_create_issue", arguments), "UPSTREAM_ERROR")
    assert error.details["status"] == 422
    assert "Validation Failed" in error.message
    assert error.details["body"]["errors"] == [
        {"value": "nobody-here", "resource": "Issue", "field": "assignees", "code": "invalid"}
    ]


async def test_secondary_rate_limit(pipeline: Pipeline, github: FakeGitHub) -> None:
    # GitHub answers secondary rate limits with 403 + Retry-After (not 429): still a rate limit, with its wait.
    error = failed(await pipeline.invoke("github_list_org_repos", {"org": "busy-org"}), "RATE_LIMITED")
    assert error.details["status"] == 403
    assert error.details["retry_after"] == 60
    assert "secondary rate limit" in error.message


@pytest.mark.parametrize(
    ("tool", "arguments", "path"),
    [
        ("github_search_repos", {"q": ""}, "$.q"),
        ("github_list_user_repos", {"username": "octocat", "per_page": 101}, "$.per_page"),
        ("github_get_issue", {"owner": "o", "repo": "r", "issue_number": 0}, "$.issue_number"),
        ("github_create_issue", {"owner": "o", "repo": "r"}, "$"),
        ("github_create_issue_comment", {"owner": "o", "repo": "r", "issue_number": 1, "body": ""}, "$.body"),
        ("github_list_issues", {"owner": "o", "repo": "r", "state": "merged"}, "$.state"),
        ("github_list_issues", {"owner": "o", "repo": "r", "since": "yesterday"}, "$.since"),
    ],
)
async def test_invalid_arguments_stay_local(
    pipeline: Pipeline, github: FakeGitHub, tool: str, arguments: dict[str, Any], path: str
) -> None:
    error = failed(await pipeline.invoke(tool, arguments), "INVALID_ARGUMENTS")
    assert error.details["path"] == path
    assert github.requests == []


# ------------------------------------------------------------------ the listing, through the real stdio command


async def test_stdio_lists_the_github_tools(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_CONNECTORS_")}
    env.update({"MCP_CONNECTORS_VAULT": str(tmp_path / "vault.json"), "MCP_CONNECTORS_VAULT_KEY": PASSPHRASE})
    command, args = server_command()
    async with Client(StdioServerParameters(command=command, args=args, env=env)) as client:
        listing = await client.list_tools()
    tools = {tool.name: tool for tool in listing.tools if tool.name.startswith("github_")}
    assert set(tools) == ALL_TOOLS
    for name, tool in tools.items():
        assert tool.title, name
        assert tool.description and len(tool.description) >= 40, name
        schema = tool.input_schema
        assert schema["type"] == "object"
        for prop, definition in schema.get("properties", {}).items():
            assert isinstance(definition.get("description"), str) and definition["description"], f"{name}.{prop}"
        assert tool.annotations is not None
        assert tool.annotations.read_only_hint is (not name.startswith("github_create_")), name
    assert tools["github_create_issue"].input_schema["required"] == ["owner", "repo", "title"]
