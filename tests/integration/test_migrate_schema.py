"""The schema custom resource answers CloudFormation's Create, Update and Delete, also when it fails.

Requests are shaped like CloudFormation's; answers are PUT over HTTP to a local server standing in for the
presigned S3 ResponseURL; migrations run against a fresh database on the real test server.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from feedcore.cloudformation import ANSWER_MARGIN_MS
from feedcore.db.migrations import PACKAGED_MIGRATIONS, load_migrations, migrate, migrate_when_reachable
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
    assert answer["Data"] == {"Applied": ALL_VERSIONS}
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
    assert answer["Data"] == {"Applied": newest.name.split("_")[0]}


def test_update_with_nothing_pending_succeeds(response_url, db) -> None:
    url, answers = response_url
    event = cloudformation_custom_resource_event(
        "Update", url, properties=LAYER_V2, old_properties=LAYER_V1, physical_resource_id=SCHEMA_RESOURCE_ID
    )
    invoke(event)
    assert the_answer(answers, event)["Data"] == {"Applied": "none"}


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
