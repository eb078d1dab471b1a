"""template.yaml: each function logs in to the database as a user of its own, member of its function's role
(migration 0061), with IAM end to end: an IAM token of the function's role at RDS Proxy, and one of the proxy's
role at the database; no function user has a password or a secret. Only the schema migrations log in as the
master user, to the instance itself, with the password RDS keeps and rotates."""

from __future__ import annotations

import re

import pytest

from feedcore.db.migrations import PACKAGED_MIGRATIONS
from feedcore.db.roles import FUNCTION_ROLES
from feedcore.settings import DatabaseSettings, ProxyProbeSettings

from .test_template import _as_list, _functions, _policy_statements

# Logical id -> (its database user, the role the user is given).
FUNCTION_USERS = {
    "IngestEventsFunction": ("ingest_events", "feed_ingest_events"),
    "IngestQueueFunction": ("ingest_queue", "feed_ingest_queue"),
    "AssembleFeedFunction": ("assemble_feed", "feed_assemble_feed"),
    "RecomputeScoresFunction": ("recompute_scores", "feed_recompute_scores"),
    "RecomputeShardFunction": ("recompute_shards", "feed_recompute_shards"),
}
MIGRATOR = "MigrateSchemaFunction"
# The user the schema resource logs in as through the proxy to check the functions' way in (feedcore.db.proxy_probe).
PROBE_USER = "feed_probe"
MASTER_SECRET = {"Fn::GetAtt": ["Database", "MasterUserSecret.SecretArn"]}


def _proxy_user_arn(user: str | dict) -> dict:
    return {
        "Fn::Sub": [
            f"arn:${{AWS::Partition}}:rds-db:${{AWS::Region}}:${{AWS::AccountId}}:dbuser:${{ProxyId}}/{user}",
            {"ProxyId": {"Fn::Select": [6, {"Fn::Split": [":", {"Fn::GetAtt": ["DatabaseProxy", "DBProxyArn"]}]}]}},
        ]
    }


def _settings_at_start(template: dict, name: str) -> DatabaseSettings:
    """The function's database settings as it starts: what the template resolves at deploy time stands as a
    placeholder (and no DATABASE_URL, which the test session may have exported, as none is deployed)."""
    variables = (
        template["Globals"]["Function"]["Environment"]["Variables"]
        | (_functions(template)[name]["Environment"]["Variables"])
    )
    resolved = {"DB_NAME": "feed", "DB_STATEMENT_TIMEOUT_MS": "2000", "DATABASE_URL": None}
    resolved |= {key: f"{key.lower()}.example" for key in ("DB_HOST", "DB_SECRET_ARN") if key in variables}
    resolved |= {"DB_PORT": "5432"}
    return DatabaseSettings.model_validate({key.lower(): value for key, value in (variables | resolved).items()})


def _database_users_the_proxy_may_log_in_as(template: dict) -> list[str]:
    prefix = "arn:${AWS::Partition}:rds-db:${AWS::Region}:${AWS::AccountId}:dbuser:${Database.DbiResourceId}/"
    role = template["Resources"]["DatabaseProxyRole"]["Properties"]
    (statement,) = [s for policy in role["Policies"] for s in policy["PolicyDocument"]["Statement"]]
    assert statement["Effect"] == "Allow" and statement["Action"] == "rds-db:connect"
    users = []
    for arn in _as_list(statement["Resource"]):
        assert arn["Fn::Sub"].startswith(prefix), arn  # the instance's users, not another database's
        users.append(arn["Fn::Sub"].removeprefix(prefix))
    return users


def test_the_roles_are_those_the_migration_creates():
    (migration,) = PACKAGED_MIGRATIONS.glob("0061_*.sql")
    created = re.search(r"FOREACH v_role IN ARRAY ARRAY\[([^\]]*)\]", migration.read_text())
    assert created and set(re.findall(r"'(\w+)'", created[1])) == FUNCTION_ROLES
    assert {role for _, role in FUNCTION_USERS.values()} == FUNCTION_ROLES


def test_each_function_logs_in_as_a_user_of_its_own_and_only_the_migrations_as_the_master(template):
    assert "DB_USER" not in template["Globals"]["Function"]["Environment"]["Variables"]
    functions = _functions(template)
    users = {name: props["Environment"]["Variables"].get("DB_USER") for name, props in functions.items()}
    assert users == {name: user for name, (user, _) in FUNCTION_USERS.items()} | {MIGRATOR: None}
    # The migrations: the instance itself, as the user RDS's secret names, with its password.
    migrator = _functions(template)[MIGRATOR]["Environment"]["Variables"]
    assert migrator["DB_SECRET_ARN"] == MASTER_SECRET
    assert migrator["DB_HOST"] == {"Fn::GetAtt": ["Database", "Endpoint.Address"]}
    assert "DB_PORT" not in migrator  # the Globals' 5432: the proxy's port, and the instance's (its default)
    settings = _settings_at_start(template, MIGRATOR)
    assert not settings.through_rds_proxy and settings.db_secret_arn == "db_secret_arn.example"


@pytest.mark.parametrize("name", sorted(FUNCTION_USERS))
def test_a_functions_iam_token_is_good_for_its_own_user_alone(template, name):
    user, _ = FUNCTION_USERS[name]
    connects = [s for where, s in _policy_statements(template) if where == name and s["Action"] == "rds-db:connect"]
    assert [statement["Resource"] for statement in connects] == [_proxy_user_arn(user)]
    settings = _settings_at_start(template, name)
    assert settings.through_rds_proxy and settings.db_user == user


def test_the_proxy_logs_in_to_the_database_with_iam_as_the_functions_users_and_the_probe_alone(template):
    proxy = template["Resources"]["DatabaseProxy"]["Properties"]
    assert proxy["DefaultAuthScheme"] == "IAM_AUTH" and proxy["RequireTLS"] is True
    assert "Auth" not in proxy  # no secret: nothing for the proxy to read, nothing to rotate
    assert template["Resources"]["Database"]["Properties"]["EnableIAMDatabaseAuthentication"] is True
    # Not the master: its password is its only way in, so a lost IAM path cannot lock it out.
    assert sorted(_database_users_the_proxy_may_log_in_as(template)) == sorted(
        [*(u for u, _ in FUNCTION_USERS.values()), PROBE_USER]
    )


def test_the_migrations_check_the_functions_way_in_through_the_proxy_as_the_probe_user(template):
    """A deploy fails when a login through the proxy with an IAM token does not work, though the migrations
    themselves log in to the instance with the master's password."""
    migrator = _functions(template)[MIGRATOR]["Environment"]["Variables"]
    assert migrator["DB_PROXY_PROBE_HOST"] == {"Fn::GetAtt": ["DatabaseProxy", "Endpoint"]}
    assert migrator["DB_PROXY_PROBE_USER"] == PROBE_USER
    probe = ProxyProbeSettings.model_validate({"host": "proxy.example", "user": migrator["DB_PROXY_PROBE_USER"]})
    assert probe.enabled
    # Its token is good for the probe user alone, at the proxy (as a function's is for its own user).
    connects = [s for where, s in _policy_statements(template) if where == MIGRATOR and s["Action"] == "rds-db:connect"]
    assert [statement["Resource"] for statement in connects] == [_proxy_user_arn(PROBE_USER)]
    # The probe user is none of the functions' (which the resource gives a role).
    assert PROBE_USER not in {user for user, _ in FUNCTION_USERS.values()}


def test_the_schema_resource_creates_each_user_with_its_functions_role(template):
    login_users = template["Resources"]["SchemaMigrations"]["Properties"]["LoginUsers"]
    assert sorted((spec["Username"], spec["Role"]) for spec in login_users) == sorted(FUNCTION_USERS.values())


def test_no_function_user_has_a_secret_and_only_the_migrations_read_the_masters(template):
    secrets = [name for name, r in template["Resources"].items() if r["Type"] == "AWS::SecretsManager::Secret"]
    assert secrets == ["CursorSecret"]
    readers = [
        where
        for where, s in _policy_statements(template)
        if "secretsmanager:GetSecretValue" in _as_list(s["Action"]) and MASTER_SECRET in _as_list(s["Resource"])
    ]
    assert readers == [MIGRATOR]


def test_the_users_get_rds_iam_once_the_proxy_logs_in_with_iam(template):
    """Updating a stack from before: a member of rds_iam can no longer log in with a password, which the proxy did
    until its own update."""
    assert "DatabaseProxy" in _as_list(template["Resources"]["SchemaMigrations"]["DependsOn"])


@pytest.mark.parametrize("name", sorted(FUNCTION_USERS))
def test_a_function_is_created_or_updated_only_once_its_user_exists(template, name):
    depends_on = template["Resources"][name].get("DependsOn", [])
    assert "SchemaMigrations" in _as_list(depends_on)


def test_sam_keeps_the_globals_proxy_settings_from_the_migrations_alone(transformed):
    """SAM merges a function's variables into the Globals' (the function's win): the migrations' must replace the
    proxy's host and IAM login, or they would present the proxy the master's password."""
    functions = {n: r for n, r in transformed["Resources"].items() if r["Type"] == "AWS::Lambda::Function"}
    assert sorted(functions) == sorted([*FUNCTION_USERS, MIGRATOR])
    for name, resource in functions.items():
        variables = resource["Properties"]["Environment"]["Variables"]
        if name == MIGRATOR:
            assert variables["DB_IAM_AUTH"] == "false"
            assert variables["DB_HOST"] == {"Fn::GetAtt": ["Database", "Endpoint.Address"]}
            assert variables["DB_SECRET_ARN"] == MASTER_SECRET and "DB_USER" not in variables
            assert variables["DB_PROXY_PROBE_HOST"] == {"Fn::GetAtt": ["DatabaseProxy", "Endpoint"]}
        else:
            assert variables["DB_IAM_AUTH"] == "true", name
            assert variables["DB_HOST"] == {"Fn::GetAtt": ["DatabaseProxy", "Endpoint"]}, name
            assert "DB_SECRET_ARN" not in variables and "DB_PROXY_PROBE_HOST" not in variables, name
