"""`snake_case`, `fallback_name` and `assign_names`: valid, readable, unique, short enough, deterministic."""

from __future__ import annotations

import hashlib
import random
import re

import pytest

from mcp_server._naming import assign_names, fallback_name, snake_case

OPERATION_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def sha6(text: str) -> str:
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:6]


def assert_valid(names: list[str], connector: str, max_length: int = 64) -> None:
    assert len(set(names)) == len(names)
    for name in names:
        assert OPERATION_NAME.fullmatch(name), name
        assert len(connector) + 1 + len(name) <= max_length, name
        if max_length == 64:
            assert TOOL_NAME.fullmatch(f"{connector}_{name}")


# ------------------------------------------------------------------ snake_case


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("getUserRepos", "get_user_repos"),
        ("repos/get-content", "repos_get_content"),
        ("HTTPServerList", "http_server_list"),
        ("v2.listItems", "v2_list_items"),
        ("get_user", "get_user"),
        ("GetUser", "get_user"),
        ("XMLHttpRequest", "xml_http_request"),
        ("listV1Beta1Items", "list_v1_beta1_items"),
        ("getV2Items", "get_v2_items"),
        ("users.list", "users_list"),
        ("Users::List", "users_list"),
        ("get user by id", "get_user_by_id"),
        ("  --get--user--  ", "get_user"),
        ("get__user", "get_user"),
        ("__init__", "init"),
        ("ALLCAPS", "allcaps"),
        ("SCREAMING_SNAKE_CASE", "screaming_snake_case"),
        ("kebab-case-name", "kebab_case_name"),
        ("Über", "uber"),
        ("créerUtilisateur", "creer_utilisateur"),
        ("Straße", "strasse"),
        ("Łódź", "lodz"),
        ("get用户list", "get_list"),
        ("用户列表", "op"),
        ("123abc", "op_123abc"),
        ("2fa/enable", "op_2fa_enable"),
        ("", "op"),
        ("!!!", "op"),
        ("a", "a"),
    ],
)
def test_snake_case(text: str, expected: str) -> None:
    assert snake_case(text) == expected
    assert OPERATION_NAME.fullmatch(snake_case(text))


def test_snake_case_is_idempotent_on_its_output() -> None:
    for text in ("getUserRepos", "HTTPServerList", "v2.listItems", "123abc", "Straße"):
        assert snake_case(snake_case(text)) == snake_case(text)


# ------------------------------------------------------------------ fallback_name


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "/repos/{owner}/{repo}/issues", "get_repos_by_owner_by_repo_issues"),
        ("DELETE", "/items/{id}", "delete_items_by_id"),
        ("POST", "/items", "post_items"),
        ("get", "/", "get"),
        ("GET", "/users/{userId}/avatar.png", "get_users_by_user_id_avatar_png"),
        ("PUT", "/files/{owner}.{name}", "put_files_by_owner_by_name"),
        ("PATCH", "/v1/accounts/{account-id}/", "patch_v1_accounts_by_account_id"),
    ],
)
def test_fallback_name(method: str, path: str, expected: str) -> None:
    assert fallback_name(method, path) == expected


# ------------------------------------------------------------------ assign_names: shortening


def test_short_names_are_unchanged() -> None:
    candidates = ["get_user", "list_repositories_for_organization", "a", "x" * 57]
    assert assign_names(candidates, connector="github") == candidates


def test_step_1_abbreviates_common_words() -> None:
    # 21 characters over a 16-character budget; the abbreviations alone bring it to 15.
    assert assign_names(["get_repository_config"], connector="x", max_length=18) == ["get_repo_config"]
    assert assign_names(["list_organizations"], connector="x", max_length=11) == ["list_orgs"]


def test_step_2_drops_filler_words_once_abbreviating_is_not_enough() -> None:
    candidate = "list_issues_for_the_repository"  # abbreviated: list_issues_for_the_repo (24)
    assert assign_names([candidate], connector="x", max_length=23) == ["list_issues_repo"]


def test_step_2_keeps_the_first_word() -> None:
    assert assign_names(["for_each_item_in_the_list"], connector="x", max_length=20) == ["for_each_item_list"]


def test_step_3_clips_the_longest_words_first_and_stops_when_it_fits() -> None:
    candidate = "get_dependabot_vulnerability_alerts"  # 35 characters, nothing to abbreviate or drop
    # Clipping "vulnerability" (the longest) to "vuln" is enough for a 26-character budget.
    assert assign_names([candidate], connector="x", max_length=28) == ["get_dependabot_vuln_alerts"]
    # Then "dependabot"; "alerts" is not needed.
    assert assign_names([candidate], connector="x", max_length=22) == ["get_depe_vuln_alerts"]
    assert assign_names([candidate], connector="x", max_length=20) == ["get_depe_vuln_aler"]


def test_step_4_cuts_and_appends_a_hash_of_the_original() -> None:
    candidate = "get_dependabot_vulnerability_alerts"
    # Fully clipped is get_depe_vuln_aler (18); a 14-character budget needs the hash form.
    (name,) = assign_names([candidate], connector="x", max_length=16)
    assert name == f"get_dep_{sha6(candidate)}"
    assert len(name) == 14


def test_real_world_github_operation_id_fits() -> None:
    candidate = snake_case("actions/list-self-hosted-runners-for-repository-and-organization-with-labels")
    assert len("github_" + candidate) > 64
    (name,) = assign_names([candidate], connector="github")
    assert name == "actions_list_self_hosted_runners_repo_org_labels"
    assert TOOL_NAME.fullmatch(f"github_{name}")


def test_a_32_character_connector_still_works() -> None:
    connector = "c" * 32
    candidates = [
        snake_case("actions/list-self-hosted-runners-for-repository-and-organization-with-labels"),
        "get_user",
        "x" * 31,
        "x" * 32,
        "x" * 32,
    ]
    names = assign_names(candidates, connector=connector)
    assert_valid(names, connector)
    assert names[1] == "get_user"
    assert names[2] == "x" * 31


def test_connector_too_long_for_any_name_is_refused() -> None:
    with pytest.raises(ValueError, match="no room"):
        assign_names(["get"], connector="c" * 60)


def test_invalid_candidate_is_refused() -> None:
    with pytest.raises(ValueError, match="snake_case"):
        assign_names(["getUser"], connector="x")


# ------------------------------------------------------------------ assign_names: collisions


def test_collisions_get_numbered_suffixes_in_input_order() -> None:
    names = assign_names(["list_items", "get_item", "list_items", "list_items"], connector="demo")
    assert names == ["list_items", "get_item", "list_items_2", "list_items_3"]


def test_a_suffix_never_takes_another_candidates_own_name() -> None:
    names = assign_names(["list_items", "list_items", "list_items_2"], connector="demo")
    assert names == ["list_items", "list_items_3", "list_items_2"]


def test_candidates_that_shorten_to_the_same_name_are_both_kept() -> None:
    # Both abbreviate to list_repos_for_org_members (26) in a 26-character budget.
    candidates = ["list_repositories_for_organization_members", "list_repos_for_organization_members"]
    names = assign_names(candidates, connector="x", max_length=28)
    assert names[0] == "list_repos_for_org_members"
    # "_2" would not fit: the later one gets the hash form.
    assert names[1] == f"list_repos_for_org_{sha6(candidates[1])}"
    assert_valid(names, "x", 28)


# 99 characters of 3-letter words: nothing to abbreviate, drop or clip, so only the hash form fits.
UNSHORTENABLE = "_".join(["abc"] * 25)
# Connector "demo" leaves 59 characters: 52 of the name (a trailing "_" cut off), "_" and 6 hex.
HASH_HEAD = "_".join(["abc"] * 13)


def test_identical_long_candidates_are_all_kept() -> None:
    names = assign_names([UNSHORTENABLE] * 4, connector="demo")
    assert_valid(names, "demo")
    assert names[0] == f"{HASH_HEAD}_{sha6(UNSHORTENABLE)}"
    # "_2" cannot fit and the plain hash is taken: later copies hash the candidate with a salt.
    assert names[1:] == [f"{HASH_HEAD}_{sha6(f'{UNSHORTENABLE}#{salt}')}" for salt in (1, 2, 3)]


def test_collision_resolution_is_deterministic() -> None:
    candidates = ["list_items", "list_items", UNSHORTENABLE, UNSHORTENABLE, "a" * 70]
    assert assign_names(candidates, connector="demo") == assign_names(list(candidates), connector="demo")


# ------------------------------------------------------------------ assign_names: at scale


# fmt: off
WORDS = (
    "list", "get", "create", "update", "delete", "repository", "repositories", "organization", "organizations",
    "self", "hosted", "runners", "for", "with", "and", "the", "of", "by", "labels", "configuration",
    "environment", "deployment", "protection", "rules", "branch", "secrets", "variables", "installation",
    "permissions", "enterprise", "administrator", "notification", "subscription", "vulnerability",
    "dependabot", "codespaces", "artifacts", "workflow", "attestations", "a", "an", "to", "in", "on",
)
# fmt: on


def random_candidates(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    candidates = ["_".join(rng.choice(WORDS) for _ in range(rng.randint(6, 16))) for _ in range(count)]
    # Exact duplicates and shared long prefixes, as in large documents with generated operationIds.
    candidates += candidates[:50]
    candidates += [candidates[i] + "_" + rng.choice(WORDS) for i in range(50)]
    return candidates


def test_a_thousand_random_long_candidates() -> None:
    candidates = random_candidates(1000, seed=7)
    assert sum(len(c) > 57 for c in candidates) > 500
    for connector in ("github", "c" * 32):
        names = assign_names(candidates, connector=connector)
        assert len(names) == len(candidates)
        assert_valid(names, connector)
        assert assign_names(list(candidates), connector=connector) == names


def test_output_does_not_depend_on_hash_randomization() -> None:
    # Fixed expectations guard against anything per-process (PYTHONHASHSEED, set order) leaking in.
    names = assign_names([UNSHORTENABLE, "list_items", UNSHORTENABLE, "list_items"], connector="demo")
    assert names == [
        f"{HASH_HEAD}_{sha6(UNSHORTENABLE)}",
        "list_items",
        f"{HASH_HEAD}_{sha6(UNSHORTENABLE + '#1')}",
        "list_items_2",
    ]
