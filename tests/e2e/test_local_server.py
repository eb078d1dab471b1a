"""The README's quickstart, end to end: `feedctl demo` serves over HTTP; the printed calls work."""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.conftest import scratch_database

FEEDCTL = str(Path(sys.executable).parent / "feedctl")
STARTUP_TIMEOUT_S = 120
JSON = "application/json"
USER_1 = {"authorization": "Bearer dev:user-1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def e2e_database(database_url: str) -> Iterator[str]:
    """A database of its own, so the other tests' cleanup cannot touch the server's data."""
    with scratch_database(database_url, "feed_e2e") as url:
        yield url


@pytest.fixture(scope="module")
def demo(e2e_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """`feedctl demo` running; yields its base URL and everything it printed before serving."""
    port = free_port()
    env = os.environ | {"DATABASE_URL": e2e_database}
    log = tmp_path_factory.mktemp("demo") / "demo.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [FEEDCTL, "demo", "--users", "40", "--port", str(port)], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            assert server.poll() is None, f"feedctl demo exited:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"feedctl demo did not serve in time:\n{log.read_text()}"
            try:
                httpx.get(f"{base_url}/docs", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        yield base_url, log.read_text()
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:  # a hung server must not outlive the tests
            server.kill()
            server.wait()


def printed_commands(output: str) -> list[str]:
    """The shell commands the demo printed (continuation lines joined)."""
    joined = output.replace("\\\n", " ")
    return [line.strip() for line in joined.splitlines() if line.strip().startswith(("curl ", ".venv/bin/feedctl"))]


def run_curl(command: str) -> dict:
    """Run a printed curl command as a user would (curl must exist; it does on these machines)."""
    result = subprocess.run(shlex.split(command), capture_output=True, text=True, timeout=30, check=True)
    return json.loads(result.stdout)


def section_items(feed: dict) -> dict[str, list[str]]:
    return {s["id"]: [i["item_id"] for i in s["items"]] for s in feed["sections"]}


def test_printed_feed_call_returns_buy_again_and_trending_and_pages_through_the_rest(demo: tuple[str, str]) -> None:
    base_url, output = demo
    commands = printed_commands(output)
    feed = run_curl(commands[0])

    sections = section_items(feed)
    assert sections["buy_again"] and sections["trending"]
    assert feed["variant"] in ("control", "trending_first") and feed["degraded"] is False
    assert all(item["reason"] and item["price"] > 0 for s in feed["sections"] for item in s["items"])
    seen = [item for items in sections.values() for item in items]
    path = f"/v1/users/{feed['user_id']}/feed"
    while feed["next_cursor"]:
        page = {"store_id": feed["store_id"], "cursor": feed["next_cursor"]}
        token = {"authorization": f"Bearer dev:{feed['user_id']}"}
        feed = httpx.get(f"{base_url}{path}", params=page, headers=token).json()
        seen += [item for items in section_items(feed).values() for item in items]
    assert len(seen) == len(set(seen)) > 20  # the whole feed, no item twice


def test_printed_purchase_then_recompute_shows_it_in_buy_again(demo: tuple[str, str], e2e_database: str) -> None:
    _, output = demo
    _, post, recompute, new_user_feed = printed_commands(output)
    item_id = re.search(r'"item_id": "([^"]+)"', post).group(1)

    first, again = run_curl(post), run_curl(post)
    assert (first["accepted"], first["duplicates"], first["rejected"]) == (1, 0, 0)
    assert (again["accepted"], again["duplicates"], again["duplicate_indexes"]) == (0, 1, [0])  # the same batch again
    subprocess.run(
        [FEEDCTL, *shlex.split(recompute)[1:]],
        env=os.environ | {"DATABASE_URL": e2e_database},
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert section_items(run_curl(new_user_feed))["buy_again"] == [item_id]


def test_bad_requests_get_problem_json_over_http(demo: tuple[str, str]) -> None:
    base_url, _ = demo
    malformed = httpx.post(f"{base_url}/v1/events", content=b'{"events": [', headers={"content-type": JSON} | USER_1)
    missing_store = httpx.get(f"{base_url}/v1/users/user-1/feed", headers=USER_1)
    no_route = httpx.get(f"{base_url}/v2/anything", headers=USER_1)
    not_utf8 = httpx.post(
        f"{base_url}/v1/events", content=b'{"events": ["\xff"]}', headers={"content-type": JSON} | USER_1
    )
    header_not_utf8 = httpx.get(
        f"{base_url}/v1/users/user-1/feed?store_id=store-1", headers=USER_1 | {"x-client-name": b"caf\xe9"}
    )

    assert (malformed.status_code, malformed.headers["content-type"]) == (400, "application/problem+json")
    assert missing_store.status_code == 422
    assert missing_store.json()["errors"][0]["field"] == "store_id"
    assert no_route.status_code == 404
    assert (not_utf8.status_code, not_utf8.json()["errors"][0]["field"]) == (400, "body")
    assert (header_not_utf8.status_code, header_not_utf8.headers["content-type"]) == (400, "application/problem+json")
    assert header_not_utf8.json()["errors"][0]["field"] == "headers.x-client-name"


def test_development_tokens_run_the_same_authorization_checks(demo: tuple[str, str]) -> None:
    base_url, _ = demo
    feed = f"{base_url}/v1/users/user-2/feed?store_id=store-1"
    anonymous = httpx.get(feed)
    someone_else = httpx.get(feed, headers=USER_1)
    not_admin = httpx.delete(f"{base_url}/v1/users/user-1", headers=USER_1)

    assert (anonymous.status_code, anonymous.headers["www-authenticate"]) == (401, "Bearer")
    assert (someone_else.status_code, someone_else.headers["content-type"]) == (403, "application/problem+json")
    assert not_admin.status_code == 403
    assert httpx.get(feed, headers={"authorization": "Bearer dev:user-2"}).status_code == 200


def test_openapi_document_lists_the_routes(demo: tuple[str, str]) -> None:
    base_url, _ = demo
    document = httpx.get(f"{base_url}/docs", params={"format": "json"}).json()
    assert {"/v1/events", "/v1/users/{user_id}/feed"} <= set(document["paths"])
    assert "Problem" in document["components"]["schemas"]
    assert "HTTPValidationError" not in document["components"]["schemas"]  # as in openapi.json: no route uses it


def test_a_burst_of_concurrent_requests_is_answered_in_full(demo: tuple[str, str]) -> None:
    # More requests at once than the event loop's default thread pool has workers (6 on 2 vCPUs).
    base_url, _ = demo
    burst = 16

    def feed_status(_: int) -> int:
        return httpx.get(f"{base_url}/v1/users/user-1/feed?store_id=store-1", headers=USER_1, timeout=30).status_code

    with ThreadPoolExecutor(burst) as clients:
        statuses = list(clients.map(feed_status, range(burst)))

    assert statuses == [200] * burst
