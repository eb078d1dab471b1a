"""template.yaml: linted by cfn-lint and SAM, and the properties the rest of the project relies on."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import get_args

import pytest
from cfnlint.schema import PROVIDER_SCHEMA_MANAGER

from feedcore.api.resolvers import security_schemes
from feedcore.feed.config import parse_ranking_config
from feedcore.ingestion.privacy import ANSWER_MARGIN_MS
from feedcore.ingestion.retention import MAX_KEEP_DAYS, RetentionRequest
from feedcore.scoring.trigger import scheduled_task_from_event
from feedcore.settings import FanoutSettings, FeedSettings, IngestSettings, MetricsProvider
from feedlocal.embedded import SERVER_SETTINGS
from tests.conftest import load_function

from .support import REPO_ROOT, TEMPLATE, describe, require_sam_cli, resolved, run, sam_env

LAYER = {"Ref": "FeedCoreLayer"}
# Logical id -> (the folder under functions/, the function's POWERTOOLS_SERVICE_NAME).
FUNCTIONS = {
    "IngestEventsFunction": ("ingest_events", "ingest_events"),
    "IngestQueueFunction": ("ingest_events", "ingest_queue"),
    "RecomputeScoresFunction": ("recompute_scores", "recompute_scores"),
    "RecomputeShardFunction": ("recompute_scores", "recompute_shards"),
    "AssembleFeedFunction": ("assemble_feed", "assemble_feed"),
    "MigrateSchemaFunction": ("migrate_schema", "migrate_schema"),
}
# Logical id -> the code folder whose resolver (`app`) serves its routes.
API_FUNCTIONS = {"IngestEventsFunction": "ingest_events", "AssembleFeedFunction": "assemble_feed"}


def _routes_in_code(function: str) -> set[tuple[str, str]]:
    resolver = load_function(function).app
    document = json.loads(resolver.get_openapi_json_schema(security_schemes=security_schemes()))
    return {(method.upper(), path) for path, methods in document["paths"].items() for method in methods}


def _functions(template: dict) -> dict[str, dict]:
    return {
        name: resource.get("Properties", {})
        for name, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }


def _effective(template: dict, props: dict, key: str):
    """A function property after SAM's Globals are applied (scalars: the function's value wins)."""
    return props.get(key, template.get("Globals", {}).get("Function", {}).get(key))


def _queue_mapping(template: dict, function: str) -> dict:
    """The properties of the one event source mapping that feeds `function` (declared as a resource, not as a SAM
    SQS event: test_security.py says why), which must be its only trigger."""
    assert not _functions(template)[function].get("Events"), f"{function}: SAM events besides its mapping"
    (mapping,) = [
        r["Properties"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::Lambda::EventSourceMapping" and r["Properties"]["FunctionName"] == {"Ref": function}
    ]
    return mapping


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def _policy_statements(template: dict):
    """(where, statement) for every inline IAM statement: SAM function policies and IAM resources."""
    for name, props in _functions(template).items():
        for policy in props.get("Policies", []):
            # A conditional policy (Fn::If) holds a policy in each branch.
            branches = policy["Fn::If"][1:] if isinstance(policy, dict) and "Fn::If" in policy else [policy]
            for branch in branches:
                if isinstance(branch, dict) and "Statement" in branch:
                    for statement in _as_list(branch["Statement"]):
                        yield name, statement
    for name, resource in template["Resources"].items():
        if resource["Type"].startswith("AWS::IAM::"):
            props = resource.get("Properties", {})
            documents = [props.get("PolicyDocument")] + [p.get("PolicyDocument") for p in props.get("Policies", [])]
            for document in filter(None, documents):
                for statement in _as_list(document.get("Statement", [])):
                    yield name, statement


def test_cfn_lint_passes():
    cfn_lint = Path(sys.executable).parent / "cfn-lint"
    assert cfn_lint.is_file(), f"cfn-lint is not installed next to {sys.executable}: run `make install`"
    proc = run([str(cfn_lint), str(TEMPLATE)])
    assert proc.returncode == 0, describe(proc)


def test_sam_validate_lint_passes():
    proc = run(
        [
            str(require_sam_cli()),
            "validate",
            "--lint",
            "--template-file",
            str(TEMPLATE),
            "--region",
            "us-east-1",
        ],
        env=sam_env(),
    )
    assert proc.returncode == 0, describe(proc)


def test_the_functions_exist(template):
    assert set(_functions(template)) == set(FUNCTIONS)


def test_the_database_log_expires_and_its_group_exists_before_the_instance_exports_to_it(template):
    stack = resolved(template, DatabaseInstanceName="feed-prod")
    resources = stack["Resources"]
    database = resources["Database"]["Properties"]
    (group,) = [
        name for name, r in resources.items() if name.startswith("Database") and r["Type"] == "AWS::Logs::LogGroup"
    ]

    assert database["DBInstanceIdentifier"] == {"Ref": "DatabaseInstanceName"}
    assert database["EnableCloudwatchLogsExports"] == ["postgresql"]
    assert resources[group]["Properties"] == {
        "LogGroupName": {"Fn::Sub": "/aws/rds/instance/${DatabaseInstanceName}/postgresql"},
        "RetentionInDays": {"Ref": "LogRetentionDays"},
    }
    # RDS creates the group at the instance's first log line if it is not there yet (without expiry), and
    # CloudFormation could then not create it: the group comes first.
    assert group in _prerequisites(resources, "Database")


def test_a_stack_whose_database_cloudformation_named_keeps_it(template):
    """Naming an instance CloudFormation named replaces it with an empty one: such a stack passes GENERATED, and a
    stack that passes nothing is refused before anything changes (the parameter has no default)."""
    parameter = template["Parameters"]["DatabaseInstanceName"]
    stack = resolved(template, DatabaseInstanceName="GENERATED")

    assert "Default" not in parameter
    assert "DBInstanceIdentifier" not in stack["Resources"]["Database"]["Properties"]
    assert not any(r["Type"] == "AWS::Logs::LogGroup" and "rds" in json.dumps(r) for r in stack["Resources"].values())
    pattern = re.compile(parameter["AllowedPattern"])
    assert all(pattern.fullmatch(name) for name in ("GENERATED", "feed-prod", "f", "feed-2-eu"))
    # RDS refuses these (it would lower-case an upper-case name, and the log group would then be another)
    assert not any(pattern.fullmatch(name) for name in ("", "Feed", "feed--prod", "feed-", "1feed", "generated-"))


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_function_runs_python312_with_the_layer(template, name):
    props = _functions(template)[name]
    assert _effective(template, props, "Runtime") == "python3.12"
    # SAM concatenates list-valued Globals with the function's own list.
    layers = template["Globals"]["Function"].get("Layers", []) + props.get("Layers", [])
    assert LAYER in layers


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_handler_points_to_an_existing_file(template, name):
    props = _functions(template)[name]
    code_uri = _effective(template, props, "CodeUri")
    folder, _ = FUNCTIONS[name]
    assert Path(code_uri) == Path("functions", folder)
    module, _, function = _effective(template, props, "Handler").rpartition(".")
    assert module == "app", f"{name}: handlers live in functions/<name>/app.py"
    assert callable(getattr(load_function(folder), function, None)), f"{name}: no {function} in {folder}/app.py"


PROXY_DB_USERS = "arn:${AWS::Partition}:rds-db:${AWS::Region}:${AWS::AccountId}:dbuser:${ProxyId}/"
PROXY_ID = {"ProxyId": {"Fn::Select": [6, {"Fn::Split": [":", {"Fn::GetAtt": ["DatabaseProxy", "DBProxyArn"]}]}]}}


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_function_names_its_service_and_connects_only_as_its_proxy_user(template, name):
    props = _functions(template)[name]
    assert props["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"] == FUNCTIONS[name][1]
    statements = [s for where, s in _policy_statements(template) if where == name]
    connects = [s for s in statements if s.get("Sid") == "ConnectToDatabaseProxy"]
    # Each one user at the proxy: a function's own; the schema migrations', which log in to the instance with the
    # master's password, the probe user they check the proxy's IAM path with.
    assert len(connects) == 1
    for connect in connects:
        assert connect["Effect"] == "Allow" and connect["Action"] == "rds-db:connect"
        user_arn, proxy_id = connect["Resource"]["Fn::Sub"]
        assert proxy_id == PROXY_ID and user_arn.startswith(PROXY_DB_USERS)  # which user: test_database_users.py
    assert not [s for s in statements if "rds-db:connect" in _as_list(s["Action"]) and s not in connects]
    # Only the recompute reads the model score files (under their prefix) and sends user shards; only the feed
    # its cursor key and its ranking config; only the schema migrations the master's secret.
    others = [s for s in statements if s.get("Sid") != "ConnectToDatabaseProxy"]
    # What Lambda's polling of an SQS queue needs (AWSLambdaSQSQueueExecutionRole's actions, on one queue).
    consume = {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"}
    allowed = {
        "IngestQueueFunction": consume,
        "RecomputeShardFunction": consume,
        "RecomputeScoresFunction": {"s3:ListBucket", "s3:GetObject", "sqs:SendMessage"},
        "AssembleFeedFunction": {
            "secretsmanager:GetSecretValue", "appconfig:StartConfigurationSession", "appconfig:GetLatestConfiguration"
        },
        "MigrateSchemaFunction": {"secretsmanager:GetSecretValue"},
    }  # fmt: skip
    assert {a for s in others for a in _as_list(s["Action"])} <= allowed.get(name, set())


def test_no_policy_statement_has_a_wildcard_action(template):
    statements = list(_policy_statements(template))
    assert statements, "no inline IAM statements found: the checker is looking in the wrong place"
    for where, statement in statements:
        for action in _as_list(statement.get("Action", [])):
            assert action != "*" and not action.endswith(":*"), f"{where}: wildcard action {action!r}"
        assert "NotAction" not in statement, f"{where}: NotAction grants everything else"
        assert statement.get("Resource") != "*", f"{where}: {statement.get('Sid')} applies to every resource"


def test_environment_names_the_proxy_and_iam_auth_never_a_password(template):
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["DB_HOST"] == {"Fn::GetAtt": ["DatabaseProxy", "Endpoint"]}
    assert variables["DB_IAM_AUTH"] == "true"
    assert variables["DB_STATEMENT_TIMEOUT_MS"] == {"Ref": "DbStatementTimeoutMs"}
    functions = _functions(template)
    every_variable = set(variables).union(
        *(props.get("Environment", {}).get("Variables", {}) for props in functions.values())
    )
    # AUTH_DEV_TOKENS makes the functions trust unsigned local tokens: never in a deployed stack.
    assert not {"DB_PASSWORD", "DATABASE_URL", "AUTH_DEV_TOKENS"} & every_variable
    # A secret of database credentials: the master's, to the schema migrations alone (test_database_users.py).
    readers = [name for name, props in functions.items() if "DB_SECRET_ARN" in props["Environment"]["Variables"]]
    assert readers == ["MigrateSchemaFunction"]
    assert functions["MigrateSchemaFunction"]["Environment"]["Variables"]["DB_IAM_AUTH"] == "false"


def _log_group(resources: dict, function: str) -> str:
    """The logical id of the stack's log group that `function` writes to: the one its LoggingConfig names, or the
    one named like Lambda's default group (/aws/lambda/<function name>)."""
    named = resources[function]["Properties"].get("LoggingConfig", {}).get("LogGroup")
    if named is not None:
        return named["Ref"]
    (group,) = [
        name
        for name, r in resources.items()
        if r["Type"] == "AWS::Logs::LogGroup"
        and r["Properties"].get("LogGroupName") == {"Fn::Sub": f"/aws/lambda/${{{function}}}"}
    ]
    return group


def _prerequisites(resources: dict, name: str) -> set[str]:
    """Every resource CloudFormation creates before `name`: its DependsOn, Ref, Fn::GetAtt and Fn::Sub references,
    and theirs."""

    def direct(node: object) -> set[str]:
        if isinstance(node, list):
            return set().union(*map(direct, node)) if node else set()
        if not isinstance(node, dict):
            return set()
        found = set().union(*map(direct, node.values())) if node else set()
        if isinstance(node.get("Ref"), str):
            found.add(node["Ref"])
        if isinstance(node.get("Fn::GetAtt"), list):
            found.add(node["Fn::GetAtt"][0])
        sub = node.get("Fn::Sub")
        if sub is not None:
            text = sub if isinstance(sub, str) else sub[0]
            found |= {v.split(".")[0] for v in re.findall(r"\$\{([^!}][^}]*)\}", text)}
        return found & set(resources)

    seen: set[str] = set()
    todo = [name]
    while todo:
        resource = resources[todo.pop()]
        for dependency in direct(resource.get("Properties", {})) | set(_as_list(resource.get("DependsOn", []))):
            if dependency not in seen:
                seen.add(dependency)
                todo.append(dependency)
    return seen


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_function_has_a_log_group_with_retention(template, name):
    group = template["Resources"][_log_group(template["Resources"], name)]["Properties"]
    assert group["RetentionInDays"] == {"Ref": "LogRetentionDays"}


def test_a_function_the_stack_runs_while_deploying_finds_its_log_group_made(transformed):
    """Publishing a SnapStart version initializes the function, and a custom resource invokes its function, in the
    deploy itself: if they log before CloudFormation has created the function's group, Lambda creates the group
    (without retention) and the stack's create of it fails. Each must come after the group, which therefore cannot
    be named after the function it follows."""
    resources = transformed["Resources"]
    versions = {
        name: r["Properties"]["FunctionName"]["Ref"]
        for name, r in resources.items()
        if r["Type"] == "AWS::Lambda::Version"
    }
    run_while_deploying = {
        name: function for name, function in versions.items() if "SnapStart" in resources[function]["Properties"]
    } | {
        name: r["Properties"]["ServiceToken"]["Fn::GetAtt"][0]
        for name, r in resources.items()
        if r["Type"].startswith("Custom::")
    }
    assert set(run_while_deploying.values()) == {"AssembleFeedFunction", "MigrateSchemaFunction"}
    for name, function in run_while_deploying.items():
        assert _log_group(resources, function) in _prerequisites(resources, name), f"{name} may log before its group"


def test_the_layer_is_named_after_the_stack(transformed):
    """A layer name belongs to the account and region: two stacks there (staging and production) must not
    publish their versions under one name."""
    (layer,) = [r["Properties"] for r in transformed["Resources"].values() if r["Type"] == "AWS::Lambda::LayerVersion"]
    assert layer["LayerName"] == {"Fn::Sub": "${AWS::StackName}-feedcore"}


def test_recompute_and_retention_run_on_eventbridge_scheduler_schedules(template):
    events = _functions(template)["RecomputeScoresFunction"]["Events"]
    assert {name for name, e in events.items() if e["Type"] == "ScheduleV2"} == {"ScoreRefresh", "EventRetention"}
    refresh, retention = events["ScoreRefresh"]["Properties"], events["EventRetention"]["Properties"]
    assert refresh["ScheduleExpression"] == {"Ref": "RecomputeSchedule"}
    assert retention["ScheduleExpression"] == {"Ref": "EventRetentionSchedule"}
    # The handler must accept what each schedule sends, with the parameters' defaults.
    assert scheduled_task_from_event(json.loads(refresh["Input"])).mode == "incremental"
    keep_days = template["Parameters"]["EventRetentionDays"]["Default"]
    sent = retention["Input"]["Fn::Sub"].replace("${EventRetentionDays}", str(keep_days))
    assert scheduled_task_from_event(json.loads(sent)) == RetentionRequest(keep_days=400)
    assert template["Parameters"]["EventRetentionDays"]["MaxValue"] == MAX_KEEP_DAYS  # the contract's bound
    assert retention["State"] == {"Fn::If": ["HasEventRetention", "ENABLED", "DISABLED"]}  # 0 keeps everything
    for schedule in (refresh, retention):
        assert schedule["RetryPolicy"]["MaximumRetryAttempts"] >= 1
        assert schedule["DeadLetterConfig"]["Arn"] == {"Fn::GetAtt": ["RecomputeDeadLetterQueue", "Arn"]}


@pytest.mark.parametrize("name", sorted(API_FUNCTIONS))
def test_api_routes_of_each_function_are_exactly_the_routes_its_code_serves(template, name):
    routes = set()
    for event in _functions(template)[name].get("Events", {}).values():
        if event["Type"] == "Api":
            assert event["Properties"]["RestApiId"] == {"Ref": "FeedApi"}, name
            routes.add((event["Properties"]["Method"].upper(), event["Properties"]["Path"]))
    assert routes == _routes_in_code(API_FUNCTIONS[name])


def test_only_api_functions_have_api_events(template):
    with_api = {
        name
        for name, props in _functions(template).items()
        if any(event["Type"] == "Api" for event in props.get("Events", {}).values())
    }
    assert with_api == set(API_FUNCTIONS)


@pytest.mark.parametrize(
    ("consumer", "queue"), [("IngestQueueFunction", "IngestQueue"), ("RecomputeShardFunction", "ScoreShardQueue")]
)
def test_queue_consumer_reports_partial_failures_and_parks_poison_messages(template, consumer, queue):
    resources = template["Resources"]
    mapping = _queue_mapping(template, consumer)
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": [queue, "Arn"]}
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    redrive = resources[queue]["Properties"]["RedrivePolicy"]
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": [queue.removesuffix("Queue") + "DeadLetterQueue", "Arn"]}
    assert redrive["maxReceiveCount"] >= 2
    # Lambda's advice: six times the function's timeout, plus the time the mapping may spend gathering a batch.
    consumer_timeout = _effective(template, _functions(template)[consumer], "Timeout")
    batching_window = mapping.get("MaximumBatchingWindowInSeconds", 0)
    assert resources[queue]["Properties"]["VisibilityTimeout"] >= 6 * consumer_timeout + batching_window


def test_the_scheduled_recompute_sends_shards_only_to_the_shard_queue_and_starts_with_its_settings(
    template, monkeypatch
):
    functions = _functions(template)
    variables = functions["RecomputeScoresFunction"]["Environment"]["Variables"]
    assert variables["SCORING_FANOUT_QUEUE_URL"] == {"Ref": "ScoreShardQueue"}
    (send,) = [s for where, s in _policy_statements(template) if where == "RecomputeScoresFunction" and
               s["Action"] == "sqs:SendMessage"]  # fmt: skip
    assert send["Resource"] == {"Fn::GetAtt": ["ScoreShardQueue", "Arn"]}
    # Both score with the same weights and half-lives: the shards write the per-user half of the same chunks.
    scoring = {
        name: {k: v for k, v in props["Environment"]["Variables"].items()
               if k.startswith("SCORING_") and not k.startswith("SCORING_FANOUT_")}
        for name, props in functions.items() if name in ("RecomputeScoresFunction", "RecomputeShardFunction")
    }  # fmt: skip
    assert scoring["RecomputeScoresFunction"] == scoring["RecomputeShardFunction"]
    # At most one consumer per shard: the shards of one chunk are what can run at once.
    mapping = _queue_mapping(template, "RecomputeShardFunction")
    assert mapping["ScalingConfig"]["MaximumConcurrency"] == {"Ref": "RecomputeFanoutShards"}
    assert mapping["BatchSize"] == 1
    # The deployed values are valid settings, the resend interval longer than a shard may run.
    parameters = template["Parameters"]
    monkeypatch.setenv("SCORING_FANOUT_QUEUE_URL", "https://sqs.us-east-1.amazonaws.com/123456789012/shards")
    monkeypatch.setenv("SCORING_FANOUT_SHARDS", str(parameters["RecomputeFanoutShards"]["Default"]))
    monkeypatch.setenv("SCORING_FANOUT_MIN_EVENTS", str(parameters["RecomputeFanoutMinEvents"]["Default"]))
    settings = FanoutSettings()
    assert settings.enabled
    assert settings.resend_after_s > _effective(template, functions["RecomputeShardFunction"], "Timeout")


def test_the_longest_erasure_the_settings_allow_ends_within_the_ingest_functions_timeout(template):
    # The erasure answers within INGEST_ERASURE_TIMEOUT_MS: at its largest it must leave the function time to answer.
    (most,) = [m.le for m in IngestSettings.model_fields["erasure_timeout_ms"].metadata if hasattr(m, "le")]
    variables = _functions(template)["IngestEventsFunction"]["Environment"]["Variables"]
    assert "INGEST_ERASURE_TIMEOUT_MS" not in variables or variables["INGEST_ERASURE_TIMEOUT_MS"] <= most
    timeout_ms = _effective(template, _functions(template)["IngestEventsFunction"], "Timeout") * 1000
    assert most + ANSWER_MARGIN_MS <= timeout_ms


def test_api_is_traced_and_throttled(template):
    api = template["Resources"]["FeedApi"]["Properties"]
    assert api["TracingEnabled"] is True
    (settings,) = api["MethodSettings"]
    assert settings["ThrottlingRateLimit"] == {"Ref": "ApiRateLimit"}
    assert settings["ThrottlingBurstLimit"] == {"Ref": "ApiBurstLimit"}
    assert settings["MetricsEnabled"] is True


# The response headers a browser shows a script of another origin without Access-Control-Expose-Headers (Fetch).
CORS_SAFELISTED_RESPONSE_HEADERS = {
    "Cache-Control", "Content-Language", "Content-Length", "Content-Type", "Expires", "Last-Modified", "Pragma"
}  # fmt: skip


def test_what_api_gateway_answers_itself_is_problem_json_and_an_unrouted_path_is_404(template):
    responses = template["Resources"]["FeedApi"]["Properties"]["GatewayResponses"]
    assert {"UNAUTHORIZED", "THROTTLED", "MISSING_AUTHENTICATION_TOKEN", "DEFAULT_4XX", "DEFAULT_5XX"} <= set(responses)
    for name, response in responses.items():
        body = response["ResponseTemplates"]["application/json"]
        assert '"type":' in body and '"detail":' in body, name
    assert responses["MISSING_AUTHENTICATION_TOKEN"]["StatusCode"] == 404
    cors_origin = {"Fn::Sub": "'${CorsAllowOrigin}'"}
    assert template["Resources"]["FeedApi"]["Properties"]["Cors"]["AllowOrigin"] == cors_origin
    for name, response in responses.items():
        headers = response["ResponseParameters"]["Headers"]
        assert headers["Content-Type"] == "'application/problem+json'", name
        # Without the origin a browser hides the answer from the web app (a 401 looks like a network error).
        assert headers["Access-Control-Allow-Origin"] == cors_origin, name
    # The authorizer's 401 is the one clients see in the cloud: it names the scheme, as the functions' 401 does.
    assert responses["UNAUTHORIZED"]["ResponseParameters"]["Headers"]["WWW-Authenticate"] == "'Bearer'"
    # A web app of another origin reads a header that is not CORS-safelisted only when the answer exposes it.
    for name, response in responses.items():
        headers = response["ResponseParameters"]["Headers"]
        exposed = headers.get("Access-Control-Expose-Headers", "''").strip("'").split(",")
        cors = {h for h in headers if h.startswith("Access-Control-")}
        unlisted = set(headers) - CORS_SAFELISTED_RESPONSE_HEADERS - cors
        assert unlisted <= set(exposed), f"{name} hides {sorted(unlisted - set(exposed))} from a web app"


def test_the_database_runs_the_recomputes_statements_without_jit_as_they_were_measured(template):
    group = template["Resources"]["DatabaseParameterGroup"]["Properties"]["Parameters"]
    assert group["jit"] == "0"


def test_the_database_flushes_wal_in_the_background_as_the_embedded_server_it_was_measured_on(template):
    group = template["Resources"]["DatabaseParameterGroup"]["Properties"]["Parameters"]
    assert f"{group['wal_writer_delay']}ms" == SERVER_SETTINGS["wal_writer_delay"]
    assert f"{int(group['wal_buffers']) * 8 // 1024}MB" == SERVER_SETTINGS["wal_buffers"]  # 8 kB pages


def test_the_database_log_outlives_the_stack_as_the_databases_final_snapshot_does(template):
    resources = resolved(template, DatabaseInstanceName="feed-prod")["Resources"]

    assert resources["Database"]["DeletionPolicy"] == resources["Database"]["UpdateReplacePolicy"] == "Snapshot"
    assert resources["DatabaseLogGroup"]["DeletionPolicy"] == "Retain"
    assert resources["DatabaseLogGroup"]["UpdateReplacePolicy"] == "Retain"


def _waf_counts(statement: dict, method: str) -> bool:
    """Whether a WAF statement matches a request of `method` (the statements a rate rule's scope-down uses)."""
    if "NotStatement" in statement:
        return not _waf_counts(statement["NotStatement"]["Statement"], method)
    match = statement["ByteMatchStatement"]
    assert match["FieldToMatch"] == {"Method": {}} and match["TextTransformations"] == [{"Priority": 0, "Type": "NONE"}]
    assert match["PositionalConstraint"] == "EXACTLY"
    return method == match["SearchString"]


def test_the_web_acls_rate_rule_neither_counts_nor_blocks_cors_preflights(transformed):
    (rule,) = transformed["Resources"]["ApiWebAcl"]["Properties"]["Rules"]
    scope = rule["Statement"]["RateBasedStatement"]["ScopeDownStatement"]

    # A 429 to a preflight lacks Access-Control-Allow-Methods/Headers: the browser shows a CORS error instead.
    assert not _waf_counts(scope, "OPTIONS")
    assert all(_waf_counts(scope, method) for method in ("GET", "POST", "PUT", "DELETE"))


def test_the_per_address_rate_takes_what_waf_takes(template):
    schema = PROVIDER_SCHEMA_MANAGER.get_resource_schema("us-east-1", "AWS::WAFv2::WebACL").schema
    rate_limit = schema["definitions"]["RateLimit"]
    parameter = template["Parameters"]["ApiRateLimitPerIp"]

    assert (parameter["MinValue"], parameter["MaxValue"]) == (rate_limit["minimum"], rate_limit["maximum"])


def test_no_web_acl_unless_asked_for_waf_bills_it(template):
    resources = resolved(template)["Resources"]

    assert not any(r["Type"].startswith("AWS::WAFv2::") for r in resources.values())


def test_the_web_acl_answers_an_address_over_its_rate_with_the_gateways_problem_429(template):
    resources = resolved(template, CreateApiWebAcl="true")["Resources"]
    acl = resources["ApiWebAcl"]["Properties"]
    (rule,) = acl["Rules"]
    rate = rule["Statement"]["RateBasedStatement"]
    response = rule["Action"]["Block"]["CustomResponse"]
    body = acl["CustomResponseBodies"][response["CustomResponseBodyKey"]]
    headers = {h["Name"]: h["Value"] for h in response["ResponseHeaders"]}
    throttled = template["Resources"]["FeedApi"]["Properties"]["GatewayResponses"]["THROTTLED"]

    assert acl["Scope"] == "REGIONAL" and acl["DefaultAction"] == {"Allow": {}}
    assert rate["AggregateKeyType"] == "IP" and rate["Limit"] == {"Ref": "ApiRateLimitPerIp"}
    assert response["ResponseCode"] == 429
    # The problem document API Gateway's own 429 carries (WAF sends it as application/json: it sets no other type).
    assert body["ContentType"] == "APPLICATION_JSON"
    problem = json.loads(body["Content"])
    assert {k: problem[k] for k in ("type", "title", "status")} == {
        k: json.loads(throttled["ResponseTemplates"]["application/json"])[k] for k in ("type", "title", "status")
    }
    # WAF's answer takes precedence over the gateway's: it carries the origin and exposes what is not safelisted.
    assert headers["Access-Control-Allow-Origin"] == {"Ref": "CorsAllowOrigin"}
    unlisted = set(headers) - CORS_SAFELISTED_RESPONSE_HEADERS - {h for h in headers if h.startswith("Access-Control-")}
    assert unlisted == {"Retry-After"} <= set(headers["Access-Control-Expose-Headers"].split(","))
    assert int(template["Parameters"]["ApiRateLimitPerIp"]["Default"]) >= 1000  # room for users behind one address


def test_the_web_acl_guards_the_apis_stage(transformed):
    association = transformed["Resources"]["ApiWebAclAssociation"]

    assert association["Condition"] == "HasApiWebAcl"
    assert association["Properties"]["WebACLArn"] == {"Fn::GetAtt": ["ApiWebAcl", "Arn"]}
    # The stage resource by reference: the association waits for it.
    assert association["Properties"]["ResourceArn"] == {
        "Fn::Sub": "arn:${AWS::Partition}:apigateway:${AWS::Region}::/restapis/${FeedApi}/stages/${FeedApiStage}"
    }
    assert transformed["Resources"]["FeedApiStage"]["Type"] == "AWS::ApiGateway::Stage"


def test_layer_is_built_by_sam_with_python312(template):
    layer = template["Resources"]["FeedCoreLayer"]
    assert layer["Type"] == "AWS::Serverless::LayerVersion"
    assert Path(layer["Properties"]["ContentUri"]) == Path("layers/feedcore")
    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.12"]
    assert layer["Metadata"]["BuildMethod"] == "python3.12"
    # Superseded versions are deleted after an update, not left to fill the region's code storage deploy by deploy.
    assert layer["Properties"]["RetentionPolicy"] == "Delete"
    assert (REPO_ROOT / "layers/feedcore/requirements.txt").is_file()


def test_outputs(template):
    assert {
        "ApiUrl",
        "UserPoolId",
        "UserPoolClientId",
        "IngestQueueUrl",
        "IngestDeadLetterQueueUrl",
        "RecomputeDeadLetterQueueUrl",
        "ScoreShardQueueUrl",
        "ScoreShardDeadLetterQueueUrl",
        "DatabaseProxyEndpoint",
        "AlarmTopicArn",
        "IngestEventsFunctionArn",
        "AssembleFeedFunctionArn",
        "RecomputeScoresFunctionArn",
        "FeedCoreLayerArn",
    } <= set(template["Outputs"])
    outputs = {name: output["Value"] for name, output in template["Outputs"].items()}
    # Producers in other accounts name the queue's ARN in their own policies.
    assert outputs["IngestQueueArn"] == {"Fn::GetAtt": ["IngestQueue", "Arn"]}
    # A new ranking config is deployed by hand (README, Deploying): the operator needs the three AppConfig ids the
    # feed function reads.
    variables = _functions(template)["AssembleFeedFunction"]["Environment"]["Variables"]
    for output, variable in [
        ("RankingApplicationId", "FEED_APPCONFIG_APPLICATION"),
        ("RankingEnvironmentId", "FEED_APPCONFIG_ENVIRONMENT"),
        ("RankingProfileId", "FEED_APPCONFIG_PROFILE"),
    ]:
        assert outputs[output] == variables[variable], output


def test_the_cursor_key_can_be_rotated_by_hand_without_breaking_pages_in_flight(template):
    """The README's rotation is a put-secret-value on CursorSecretArn: the feed verifies cursors with the secret's
    AWSCURRENT and AWSPREVIOUS versions, so it may read any version, and the key is the secret's whole text."""
    secret = template["Resources"]["CursorSecret"]["Properties"]
    assert template["Outputs"]["CursorSecretArn"]["Value"] == {"Ref": "CursorSecret"}
    assert not {"SecretStringTemplate", "GenerateStringKey"} & set(secret["GenerateSecretString"])
    statements = _functions(template)["AssembleFeedFunction"]["Policies"][0]["Statement"]
    (read,) = [s for s in statements if s["Resource"] == {"Ref": "CursorSecret"}]
    assert read["Action"] == "secretsmanager:GetSecretValue" and "Condition" not in read


def test_metrics_provider_parameter_matches_the_setting(template):
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["METRICS_PROVIDER"] == {"Ref": "MetricsProvider"}
    parameter = template["Parameters"]["MetricsProvider"]
    assert parameter["Default"] == "cloudwatch"
    assert set(parameter["AllowedValues"]) == set(get_args(MetricsProvider))


def test_the_deployed_ranking_config_is_the_packaged_one_and_valid(template):
    hosted = json.loads(template["Resources"]["RankingInitialVersion"]["Properties"]["Content"])
    packaged = REPO_ROOT / "layers" / "feedcore" / "feedcore" / "feed" / "ranking.json"

    assert hosted == json.loads(packaged.read_text())
    parse_ranking_config(hosted, "template.yaml")  # raises on an invalid config
    deployment = template["Resources"]["RankingDeployment"]["Properties"]
    assert deployment["ConfigurationVersion"] == {"Ref": "RankingInitialVersion"}


def test_the_feed_function_starts_with_its_settings(template, monkeypatch):
    """In Lambda, FeedSettings refuses to start without a cursor key: the template must provide one."""
    variables = _functions(template)["AssembleFeedFunction"]["Environment"]["Variables"]
    assert variables["FEED_CURSOR_SECRET_ARN"] == {"Ref": "CursorSecret"}
    assert variables["FEED_APPCONFIG_PROFILE"] == {"Ref": "RankingProfile"}
    for name in variables:
        monkeypatch.setenv(name, "configured-by-cloudformation")
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "assemble_feed")

    settings = FeedSettings()

    assert settings.cursor_secret_arn and settings.appconfig_application


def test_the_feed_function_starts_from_a_snapstart_snapshot_behind_an_alias(template):
    props = _functions(template)["AssembleFeedFunction"]
    # SnapStart applies to published versions only; the alias makes SAM publish one and route the API to it.
    assert props["SnapStart"] == {"ApplyOn": "PublishedVersions"}
    assert props["AutoPublishAlias"]
    # SnapStart excludes provisioned concurrency, EFS and more than 512 MB of ephemeral storage.
    assert "ProvisionedConcurrencyConfig" not in props and "FileSystemConfigs" not in props
    assert _effective(template, props, "EphemeralStorage") in (None, {"Size": 512})
    runtime = _effective(template, props, "Runtime")
    assert tuple(int(part) for part in runtime.removeprefix("python").split(".")) >= (3, 12)  # Python from 3.12


def test_pydantic_does_not_scan_for_plugins_at_start(template):
    assert template["Globals"]["Function"]["Environment"]["Variables"]["PYDANTIC_DISABLE_PLUGINS"] == "__all__"
