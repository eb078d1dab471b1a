"""The schema custom resource answers CloudFormation's Create, Update and Delete, also when it fails.

Requests are shaped like CloudFormation's; answers are PUT over HTTP to a local server standing in for the
presigned S3 ResponseURL; migrations run against a fresh database on the real test server.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg
import pytest
from moto import mock_aws
from psycopg.conninfo import make_conninfo

from feedcore import settings
from feedcore.cloudformation import ANSWER_MARGIN_MS
from feedcore.db import connection
from feedcore.db import proxy_probe as proxy_probe_module
from feedcore.db.migrations import PACKAGED_MIGRATIONS, load_migrations, migrate, migrate_when_reachable
from feedcore.db.proxy_probe import SKIPPED
from feedcore.errors import DatabaseUnavailable
from feedcore.schema import SCHEMA_RESOURCE_ID
from tests.aws_events import LambdaContext, cloudformation_custom_resource_event
from tests.conftest import load_function, scratch_database, use_database

migrate_schema = load_function("migrate_schema")
ALL_VERSIONS = ",".join(m.version for m in load_migrations(PACKAGED_MIGRATIONS))
LAYER_V1 = {"LayerVersion": "arn:aws:lambda:us-east-1:123456789012:layer:feed-feedcore:1"}
LAYER_V2 = {"LayerVersion": "arn:aws:lambda:us-east-1:123456789012:layer:feed-feedcore:2"}


class ResponseRecorder(BaseHTTPRequestHandler):
    """Records each PUT like S3 would accept it."""

    answers: list[tuple[str, dict[str, str], dict]] = []

    def do_PUT(self) -> None:  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.answers.append((self.path, dict(self.headers), json.loads(body)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def response_url() -> Iterator[tuple[str, list]]:
    """A presigned-URL stand-in and the answers PUT to it."""
    answers: list = []
    handler = type("Recorder", (ResponseRecorder,), {"answers": answers})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/cloudformation-response?X-Amz-Signature=abc", answers
    server.shutdown()
    server.server_close()


@pytest.fixture
def empty_database(database_url: str) -> Iterator[str]:
    """A database without any schema; feedcore points at it for the test."""
    with scratch_database(database_url, "feed_cfn") as url:
        use_database(url)
        yield url
    use_database(database_url)


def invoke(event: dict, remaining_ms: int = 60_000) -> dict:
    context = LambdaContext(function_name="migrate_schema", remaining_time_ms=remaining_ms)
    return migrate_schema.lambda_handler(event, context)


def nothing_pending(url: str) -> dict:
    return cloudformation_custom_resource_event(
        "Update", url, properties=LAYER_V2, old_properties=LAYER_V1, physical_resource_id=SCHEMA_RESOURCE_ID
    )


def tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        return {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}


def the_answer(answers: list, event: dict) -> dict:
    """The one answer PUT for `event`, checked for what CloudFormation requires of every answer."""
    assert len(answers) == 1, answers
    path, headers, answer = answers[0]
    assert path == "/cloudformation-response?X-Amz-Signature=abc"
    assert headers.get("Content-Type", "") == ""  # the presigned URL was signed without a content type
    for key in ("StackId", "RequestId", "LogicalResourceId"):
        assert answer[key] == event[key]
    assert answer["Status"] in {"SUCCESS", "FAILED"} and answer["PhysicalResourceId"]
    return answer


def test_create_applies_every_migration(response_url, empty_database) -> None:
    url, answers = response_url
    event = cloudformation_custom_resource_event("Create", url, properties=LAYER_V1)

    invoke(event)

    answer = the_answer(answers, event)
    assert answer["Status"] == "SUCCESS", answer["Reason"]
    assert answer["PhysicalResourceId"] == SCHEMA_RESOURCE_ID
    assert answer["Data"] == {"Applied": ALL_VERSIONS, "ProxyLogin": SKIPPED}
    assert {"events", "event_ids", "items", "item_popularity", "schema_migrations"} <= tables(empty_database)


def test_update_applies_only_what_is_pending_and_keeps_the_physical_id(response_url, empty_database, tmp_path) -> None:
    url, answers = response_url
    *older, newest = sorted(PACKAGED_MIGRATIONS.glob("*.sql"))
    previous_release = tmp_path / "migrations"
    previous_release.mkdir()
    for path in older:
        (previous_release / path.name).write_text(path.read_text())
    with psycopg.connect(empty_database, autocommit=True) as conn:  # the schema the previous release left
        migrate(conn, previous_release)
    event = cloudformation_custom_resource_event(
        "Update", url, properties=LAYER_V2, old_properties=LAYER_V1, physical_resource_id=SCHEMA_RESOURCE_ID
    )

    invoke(event)

    answer = the_answer(answers, event)
    assert answer["Status"] == "SUCCESS", answer["Reason"]
    assert answer["PhysicalResourceId"] == SCHEMA_RESOURCE_ID  # a new id would make CloudFormation delete the old
    assert answer["Data"] == {"Applied": newest.name.split("_")[0], "ProxyLogin": SKIPPED}


def test_update_with_nothing_pending_succeeds_and_says_the_proxy_login_was_not_checked(
    response_url, db, caplog: pytest.LogCaptureFixture
) -> None:
    """Locally (no DB_PROXY_PROBE_HOST: no proxy, no IAM) the check of the proxy login is skipped by configuration,
    and the answer and the log say so."""
    url, answers = response_url
    event = nothing_pending(url)
    invoke(event)
    assert the_answer(answers, event)["Data"] == {"Applied": "none", "ProxyLogin": SKIPPED}
    assert any(r.getMessage() == "the login through RDS Proxy is not checked" for r in caplog.records)


def test_delete_keeps_the_schema_and_its_data(response_url, empty_database) -> None:
    url, answers = response_url
    invoke(cloudformation_custom_resource_event("Create", url, properties=LAYER_V1))
    answers.clear()
    event = cloudformation_custom_resource_event(
        "Delete", url, properties=LAYER_V1, physical_resource_id=SCHEMA_RESOURCE_ID
    )

    invoke(event)

    answer = the_answer(answers, event)
    assert (answer["Status"], answer["PhysicalResourceId"]) == ("SUCCESS", SCHEMA_RESOURCE_ID)
    assert "events" in tables(empty_database)


def test_unreachable_database_answers_failed_before_the_function_times_out(
    response_url, database_url, monkeypatch
) -> None:
    url, answers = response_url
    # A port nobody listens on: every connection attempt is refused.
    use_database(make_conninfo(database_url, port="1", connect_timeout="1"))
    monkeypatch.setattr("feedcore.db.migrations.CONNECT_RETRY_INTERVAL_S", 0.1)
    event = cloudformation_custom_resource_event("Create", url, properties=LAYER_V1)
    started = time.monotonic()
    try:
        # 17 s left: the margin for answering leaves the migration two seconds, too few for a pause, another attempt
        # and a step: the first refusal ends the run.
        invoke(event, remaining_ms=17_000)
    finally:
        use_database(database_url)
    answered_after_s = time.monotonic() - started

    answer = the_answer(answers, event)
    assert answer["Status"] == "FAILED"
    # The retries stop within the budget less the margin kept for answering (2 s here), not when Lambda would end
    # the function (17 s): the answer comes with most of the margin still left, saying why it stopped.
    assert answered_after_s < (17_000 - ANSWER_MARGIN_MS / 2) / 1000, answered_after_s
    assert answered_after_s < 2, answered_after_s  # not after retrying to the end of the migration's two seconds
    assert answer["Reason"].startswith("DatabaseUnavailable: cannot connect to the database: ")
    assert "; not retried: " in answer["Reason"] and "log stream" in answer["Reason"]
    # The rollback's Delete names this id; it must succeed without a database.
    delete = cloudformation_custom_resource_event(
        "Delete", url, properties=LAYER_V1, physical_resource_id=answer["PhysicalResourceId"]
    )
    answers.clear()
    use_database(make_conninfo(database_url, port="1", connect_timeout="1"))
    try:
        invoke(delete)
    finally:
        use_database(database_url)
    assert the_answer(answers, delete)["Status"] == "SUCCESS"


def test_a_run_out_of_time_answers_failed_naming_the_migration_not_applied(
    response_url, empty_database, tmp_path, monkeypatch
) -> None:
    url, answers = response_url
    (tmp_path / "0001_slow.sql").write_text("CREATE TABLE first (a int); SELECT pg_sleep(1.5);")
    (tmp_path / "0002_slow_too.sql").write_text("CREATE TABLE second (a int); SELECT pg_sleep(1.5);")
    monkeypatch.setattr("feedcore.schema.migrate_when_reachable", partial(migrate_when_reachable, directory=tmp_path))
    event = cloudformation_custom_resource_event("Create", url, properties=LAYER_V1)
    started = time.monotonic()

    invoke(event, remaining_ms=ANSWER_MARGIN_MS + 2_200)  # the first migration leaves too little for the second

    assert time.monotonic() - started < 2.2
    answer = the_answer(answers, event)
    assert answer["Status"] == "FAILED"
    assert answer["Reason"].startswith("MigrationRunStopped: stopped before migration 0002_slow_too: ")
    assert "log stream" in answer["Reason"]
    assert tables(empty_database) == {"first", "schema_migrations"}


def test_malformed_request_is_answered_failed(response_url) -> None:
    url, answers = response_url
    event = cloudformation_custom_resource_event("Create", url) | {"RequestType": "Upsert"}
    invoke(event)
    answer = the_answer(answers, event)
    assert answer["Status"] == "FAILED" and "RequestType" in answer["Reason"]


def test_create_and_update_make_each_functions_user_an_iam_login_of_its_role(
    response_url, empty_database, rds_iam
) -> None:
    url, answers = response_url
    suffix = uuid.uuid4().hex[:6]
    users = {role: f"{role}_{suffix}" for role in ("feed_ingest_events", "feed_assemble_feed")}
    login_users = [{"Role": role, "Username": user} for role, user in users.items()]
    with psycopg.connect(empty_database, autocommit=True) as conn:
        # As a stack from before made it: a password, which the proxy logged in with.
        conn.execute(f"CREATE ROLE feed_ingest_events_{suffix} LOGIN PASSWORD 'from-its-secret'")
    create = cloudformation_custom_resource_event("Create", url, properties=LAYER_V1 | {"LoginUsers": login_users})
    invoke(create)
    created = the_answer(answers, create)
    answers.clear()
    update = cloudformation_custom_resource_event(
        "Update", url, properties=LAYER_V2 | {"LoginUsers": login_users},
        old_properties=LAYER_V1 | {"LoginUsers": login_users}, physical_resource_id=SCHEMA_RESOURCE_ID,
    )  # fmt: skip
    invoke(update)
    updated = the_answer(answers, update)

    assert (created["Status"], updated["Status"]) == ("SUCCESS", "SUCCESS"), (created["Reason"], updated["Reason"])
    with psycopg.connect(empty_database, autocommit=True) as conn:
        members = conn.execute(
            "SELECT r.rolname, g.rolname, r.rolcanlogin, a.rolpassword IS NULL FROM pg_auth_members m "
            "JOIN pg_roles r ON r.oid = m.member JOIN pg_authid a ON a.oid = r.oid JOIN pg_roles g ON g.oid = m.roleid "
            "WHERE r.rolname LIKE %s ORDER BY 1, 2",
            (f"%_{suffix}",),
        ).fetchall()
        assert members == [
            (users["feed_assemble_feed"], "feed_assemble_feed", True, True),
            (users["feed_assemble_feed"], "rds_iam", True, True),
            (users["feed_ingest_events"], "feed_ingest_events", True, True),
            (users["feed_ingest_events"], "rds_iam", True, True),
        ]
        for user in users.values():
            conn.execute(f'DROP ROLE "{user}"')


def test_a_login_user_named_as_before_by_its_secret_is_refused(response_url, db) -> None:
    """The properties of a stack from before (a secret per user): answered FAILED, naming the field, not guessed."""
    url, answers = response_url
    login_users = [{"Role": "feed_assemble_feed", "SecretArn": "arn:aws:secretsmanager:us-east-1:1:secret:x"}]
    event = cloudformation_custom_resource_event(
        "Update", url, properties=LAYER_V1 | {"LoginUsers": login_users}, physical_resource_id=SCHEMA_RESOURCE_ID
    )

    invoke(event)

    answer = the_answer(answers, event)
    assert answer["Status"] == "FAILED" and "Username" in answer["Reason"], answer["Reason"]


def test_the_logs_never_hold_the_presigned_response_url(response_url, caplog: pytest.LogCaptureFixture) -> None:
    """Whoever holds the presigned ResponseURL can answer for the stack's request (a SUCCESS for a migration that
    failed): the request is logged without it."""
    url, answers = response_url
    event = cloudformation_custom_resource_event(
        "Delete", url, properties=LAYER_V1, physical_resource_id=SCHEMA_RESOURCE_ID
    )

    invoke(event)

    assert the_answer(answers, event)["Status"] == "SUCCESS"
    logged = "\n".join(str(vars(record)) for record in caplog.records)  # each message with its extra keys
    assert "custom resource request" in logged and event["RequestId"] in logged
    assert "X-Amz-Signature" not in logged


def test_the_login_users_are_given_rds_iam_all_or_none(response_url, db, rds_iam) -> None:
    """A user given rds_iam has lost its password login: a run that fails at the second user leaves the first as it
    was (a stack from before, whose proxy still logs in with its password), not half switched."""
    url, answers = response_url
    first = f"feed_ingest_events_{uuid.uuid4().hex[:6]}"
    (admin,) = db.execute("SELECT current_user").fetchone()  # refused: it administers the database
    db.execute(f"CREATE ROLE {first} LOGIN PASSWORD 'from-its-secret'")
    login_users = [{"Role": "feed_ingest_events", "Username": first}, {"Role": "feed_assemble_feed", "Username": admin}]
    event = cloudformation_custom_resource_event(
        "Update", url, properties=LAYER_V1 | {"LoginUsers": login_users}, physical_resource_id=SCHEMA_RESOURCE_ID
    )
    try:
        invoke(event)

        answer = the_answer(answers, event)
        assert answer["Status"] == "FAILED" and "administers the database" in answer["Reason"], answer["Reason"]
        assert db.execute(
            "SELECT rolpassword IS NOT NULL, pg_has_role(oid, 'rds_iam', 'MEMBER') FROM pg_authid WHERE rolname = %s",
            (first,),
        ).fetchone() == (True, False)
    finally:
        db.execute(f"DROP ROLE {first}")


@pytest.fixture
def proxy_probe(monkeypatch: pytest.MonkeyPatch, rds_iam: str) -> Iterator[str]:
    """The proxy login check configured as in the stack, its proxy at a local port nobody listens on, with
    credentials to sign tokens with; yields the probe user's name (dropped after the test)."""
    user = f"feed_probe_{uuid.uuid4().hex[:6]}"
    with mock_aws():
        monkeypatch.setenv("DB_PROXY_PROBE_HOST", "127.0.0.1")
        monkeypatch.setenv("DB_PROXY_PROBE_USER", user)
        monkeypatch.setenv("DB_PROXY_PROBE_TIMEOUT_S", "1")
        monkeypatch.setenv("DB_PORT", "1")
        monkeypatch.setenv("DB_CONNECT_TIMEOUT_S", "1")
        settings.proxy_probe_settings.cache_clear()
        settings.database_settings.cache_clear()
        connection._rds_client.cache_clear()
        yield user
    settings.proxy_probe_settings.cache_clear()
    settings.database_settings.cache_clear()
    connection._rds_client.cache_clear()
    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as admin:
        admin.execute(f"DROP OWNED BY {user}")  # its CONNECT on the database
        admin.execute(f"DROP ROLE {user}")


def test_a_login_through_the_proxy_that_does_not_work_fails_the_deploy(response_url, db, proxy_probe) -> None:
    """The migrations log in to the instance with the master's password: only this check sees a broken IAM path
    (TLS, a token's policy, rds_iam, the proxy's own login), which would otherwise deploy and fail every request."""
    url, answers = response_url
    event = nothing_pending(url)
    started = time.monotonic()

    invoke(event)

    answer = the_answer(answers, event)
    assert answer["Status"] == "FAILED"
    assert answer["Reason"].startswith(
        f"ProxyLoginFailed: the login through RDS Proxy 127.0.0.1 as '{proxy_probe}' with an IAM token"
    ), answer["Reason"]
    assert time.monotonic() - started < 5  # within DB_PROXY_PROBE_TIMEOUT_S and one connect timeout
    # The probe user was made before the check: in rds_iam, and a member of nothing else.
    assert db.execute(
        "SELECT rolcanlogin, rolpassword IS NULL, array(SELECT g.rolname FROM pg_auth_members m "
        "JOIN pg_roles g ON g.oid = m.roleid WHERE m.member = a.oid) FROM pg_authid a WHERE rolname = %s",
        (proxy_probe,),
    ).fetchone() == (True, True, ["rds_iam"])


def test_the_check_retries_a_refused_login_and_its_user_may_connect_and_read_nothing(
    response_url, db, proxy_probe, database_url, monkeypatch
) -> None:
    url, answers = response_url
    monkeypatch.setenv("DB_PROXY_PROBE_TIMEOUT_S", "30")
    settings.proxy_probe_settings.cache_clear()
    monkeypatch.setattr(proxy_probe_module, "PROBE_RETRY_INTERVAL_S", 0.01)
    logins: list[settings.DatabaseSettings] = []

    def first_refused_then_as_the_probe_user(probe_settings: settings.DatabaseSettings) -> psycopg.Connection:
        """The proxy refuses the first login (a user given rds_iam a moment ago), then lets the probe user in: on the
        test server, which has no TLS and no IAM, by its name alone."""
        logins.append(probe_settings)
        if len(logins) == 1:
            raise DatabaseUnavailable("cannot connect to the database: PAM authentication failed")
        return psycopg.connect(make_conninfo(database_url, user=probe_settings.db_user), autocommit=True)

    monkeypatch.setattr(proxy_probe_module, "connect", first_refused_then_as_the_probe_user)
    event = nothing_pending(url)

    invoke(event)

    answer = the_answer(answers, event)
    assert answer["Status"] == "SUCCESS", answer["Reason"]
    assert answer["Data"]["ProxyLogin"] == f"{proxy_probe} through 127.0.0.1"
    assert len(logins) == 2
    for login in logins:  # with an IAM token, to the proxy, as the probe user
        assert login.through_rds_proxy and (login.db_host, login.db_user) == ("127.0.0.1", proxy_probe)
    with (
        psycopg.connect(make_conninfo(database_url, user=proxy_probe)) as probe,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        probe.execute("SELECT 1 FROM events LIMIT 1")
