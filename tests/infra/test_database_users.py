"""template.yaml: each function logs in to the database as a user of its own, member of its function's role
(migration 0061), through RDS Proxy with an IAM token; only the schema migrations log in as the master user."""

from __future__ import annotations

import re

import pytest

from feedcore.db.migrations import PACKAGED_MIGRATIONS
from feedcore.db.roles import FUNCTION_ROLES
from feedcore.settings import DatabaseSettings

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


def _user_secrets(template: dict) -> dict[str, str]:
    """Database user name -> the logical id of the generated secret holding it."""
    found = {}
    for name, resource in template["Resources"].items():
        generate = resource.get("Properties", {}).get("GenerateSecretString", {})
        if resource["Type"] == "AWS::SecretsManager::Secret" and generate.get("GenerateStringKey") == "password":
            username = re.fullmatch(r'\{"username": "([a-z_]+)"\}', generate["SecretStringTemplate"])
            assert username, f"{name}: a database secret names its user and nothing else"
            found[username[1]] = name
    return found


def _proxy_user_arn(user: str | dict) -> dict:
    return {
        "Fn::Sub": [
            f"arn:${{AWS::Partition}}:rds-db:${{AWS::Region}}:${{AWS::AccountId}}:dbuser:${{ProxyId}}/{user}",
            {"ProxyId": {"Fn::Select": [6, {"Fn::Split": [":", {"Fn::GetAtt": ["DatabaseProxy", "DBProxyArn"]}]}]}},
        ]
    }


def test_the_roles_are_those_the_migration_creates():
    (migration,) = PACKAGED_MIGRATIONS.glob("0061_*.sql")
    created = re.search(r"FOREACH v_role IN ARRAY ARRAY\[([^\]]*)\]", migration.read_text())
    assert created and set(re.findall(r"'(\w+)'", created[1])) == FUNCTION_ROLES
    assert {role for _, role in FUNCTION_USERS.values()} == FUNCTION_ROLES


def test_each_function_logs_in_as_a_user_of_its_own_and_only_the_migrations_as_the_master(template):
    assert "DB_USER" not in template["Globals"]["Function"]["Environment"]["Variables"]
    functions = _functions(template)
    users = {name: functions[name]["Environment"]["Variables"]["DB_USER"] for name in functions}
    assert users == {name: user for name, (user, _) in FUNCTION_USERS.items()} | {MIGRATOR: {"Ref": "DatabaseUsername"}}


@pytest.mark.parametrize("name", sorted(FUNCTION_USERS))
def test_a_functions_iam_token_is_good_for_its_own_user_alone(template, name):
    user, _ = FUNCTION_USERS[name]
    connects = [s for where, s in _policy_statements(template) if where == name and s["Action"] == "rds-db:connect"]
    assert [statement["Resource"] for statement in connects] == [_proxy_user_arn(user)]
    variables = (
        template["Globals"]["Function"]["Environment"]["Variables"]
        | (_functions(template)[name]["Environment"]["Variables"])
    )
    # As the function starts: what the template resolves at deploy time stands as a placeholder (and no
    # DATABASE_URL, which the test session may have exported, as none is deployed).
    resolved = {"DB_HOST": "proxy.example", "DB_NAME": "feed", "DB_STATEMENT_TIMEOUT_MS": "2000", "DATABASE_URL": None}
    settings = DatabaseSettings.model_validate({key.lower(): value for key, value in (variables | resolved).items()})
    assert settings.through_rds_proxy and settings.db_user == user


@pytest.mark.parametrize("name", sorted(FUNCTION_USERS))
def test_each_user_is_a_generated_secret_the_proxy_logs_in_with_behind_iam(template, name):
    user, _ = FUNCTION_USERS[name]
    secret = {"Ref": _user_secrets(template)[user]}
    proxy = template["Resources"]["DatabaseProxy"]["Properties"]
    (auth,) = [entry for entry in proxy["Auth"] if entry["SecretArn"] == secret]
    assert (auth["AuthScheme"], auth["IAMAuth"]) == ("SECRETS", "REQUIRED")
    proxy_role = template["Resources"]["DatabaseProxyRole"]["Properties"]
    (reads,) = [s for p in proxy_role["Policies"] for s in p["PolicyDocument"]["Statement"]]
    assert reads["Action"] == "secretsmanager:GetSecretValue" and secret in _as_list(reads["Resource"])


def test_the_schema_resource_creates_each_user_with_its_functions_role(template):
    secrets = _user_secrets(template)
    login_users = template["Resources"]["SchemaMigrations"]["Properties"]["LoginUsers"]
    assert sorted((spec["SecretArn"]["Ref"], spec["Role"]) for spec in login_users) == sorted(
        (secrets[user], role) for user, role in FUNCTION_USERS.values()
    )
    # The proxy knows no user the stack does not create, and the master.
    auth = template["Resources"]["DatabaseProxy"]["Properties"]["Auth"]
    assert [entry["SecretArn"] for entry in auth] == [
        {"Fn::GetAtt": ["Database", "MasterUserSecret.SecretArn"]},
        *(spec["SecretArn"] for spec in login_users),
    ]


def test_only_the_schema_migrations_read_the_users_passwords(template):
    user_secrets = [{"Ref": secret} for secret in _user_secrets(template).values()]
    readers = {
        where: _as_list(s["Resource"])
        for where, s in _policy_statements(template)
        if "secretsmanager:GetSecretValue" in _as_list(s["Action"])
        and any(resource in user_secrets for resource in _as_list(s["Resource"]))
    }
    assert sorted(readers) == ["DatabaseProxyRole", MIGRATOR]
    assert sorted(readers[MIGRATOR], key=str) == sorted(user_secrets, key=str)


@pytest.mark.parametrize("name", sorted(FUNCTION_USERS))
def test_a_function_is_created_or_updated_only_once_its_user_exists(template, name):
    depends_on = template["Resources"][name].get("DependsOn", [])
    assert "SchemaMigrations" in _as_list(depends_on)
