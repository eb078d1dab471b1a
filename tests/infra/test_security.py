"""The security properties of the production stack, read from template.yaml (and from SAM's output where SAM
generates the resources: API methods and roles)."""

from __future__ import annotations

import json

import pytest

from feedcore.observability import METRICS_NAMESPACE

from .support import TEMPLATE, resolved, translate

FUNCTION_SECURITY_GROUP = {"Ref": "FunctionSecurityGroup"}
PROXY_SECURITY_GROUP = {"Ref": "ProxySecurityGroup"}
DATABASE_SECURITY_GROUP = {"Ref": "DatabaseSecurityGroup"}
MIGRATION_SECURITY_GROUP = {"Ref": "MigrationSecurityGroup"}


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def _resources(template: dict, type_: str) -> dict[str, dict]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == type_}


def _rules(template: dict, group: dict, direction: str) -> list[dict]:
    """Every rule of a security group in `direction` (Ingress, Egress): inline ones and AWS::EC2::SecurityGroup<
    direction> resources."""
    name = group["Ref"]
    rules = list(template["Resources"][name]["Properties"].get(f"SecurityGroup{direction}", []))
    rules += [
        r["Properties"]
        for r in _resources(template, f"AWS::EC2::SecurityGroup{direction}").values()
        if r["Properties"]["GroupId"] == group
    ]
    return rules


def _ingress_rules(template: dict, group: dict) -> list[dict]:
    return _rules(template, group, "Ingress")


def _egress_rules(template: dict, group: dict) -> list[dict]:
    return _rules(template, group, "Egress")


def _security_groups(resource: dict) -> list:
    """The security groups a resource runs in (a function's VpcConfig, a proxy's or an instance's groups)."""
    props = resource.get("Properties", {})
    return (
        props.get("VpcConfig", {}).get("SecurityGroupIds", [])
        + props.get("VpcSecurityGroupIds", [])
        + props.get("VPCSecurityGroups", [])
    )


def test_every_function_runs_in_the_private_subnets_with_its_own_security_group(template):
    template = resolved(template)  # a VPC of its own, the default
    resources = template["Resources"]
    vpc_config = template["Globals"]["Function"]["VpcConfig"]
    assert vpc_config["SecurityGroupIds"] == [FUNCTION_SECURITY_GROUP]
    subnets = [resources[ref["Ref"]] for ref in vpc_config["SubnetIds"]]
    assert len(subnets) == 2
    assert all(s["Type"] == "AWS::EC2::Subnet" and s["Properties"]["MapPublicIpOnLaunch"] is False for s in subnets)
    # Two availability zones.
    assert {json.dumps(s["Properties"]["AvailabilityZone"]) for s in subnets} == {
        json.dumps({"Fn::Select": [i, {"Fn::GetAZs": ""}]}) for i in (0, 1)
    }
    for name, function in _resources(template, "AWS::Serverless::Function").items():
        if name == "MigrateSchemaFunction":  # and the group that reaches the database (SAM's output: below)
            assert function["Properties"]["VpcConfig"] == {"SecurityGroupIds": [MIGRATION_SECURITY_GROUP]}
        else:
            assert "VpcConfig" not in function["Properties"], f"{name} overrides the private VpcConfig"


def test_sam_gives_the_migrations_the_functions_subnets_and_group_and_the_databases(template, transformed):
    """SAM adds a function's list of groups to the Globals' (and a list would replace the Globals' subnets)."""
    vpc_config = template["Globals"]["Function"]["VpcConfig"]
    for name, function in _resources(transformed, "AWS::Lambda::Function").items():
        config = function["Properties"]["VpcConfig"]
        assert config["SubnetIds"] == vpc_config["SubnetIds"], name
        groups = [FUNCTION_SECURITY_GROUP] + ([MIGRATION_SECURITY_GROUP] if name == "MigrateSchemaFunction" else [])
        assert config["SecurityGroupIds"] == groups, name


def test_the_network_has_no_way_to_the_internet(template):
    """No internet or NAT gateway and no routes: the functions reach AWS through VPC endpoints only."""
    types = {r["Type"] for r in template["Resources"].values()}
    assert not types & {"AWS::EC2::InternetGateway", "AWS::EC2::NatGateway", "AWS::EC2::Route", "AWS::EC2::EIP"}
    endpoints = {
        r["Properties"]["ServiceName"]["Fn::Sub"]: r["Properties"]["VpcEndpointType"]
        for r in _resources(template, "AWS::EC2::VPCEndpoint").values()
    }
    assert endpoints == {
        "com.amazonaws.${AWS::Region}.secretsmanager": "Interface",
        "com.amazonaws.${AWS::Region}.appconfigdata": "Interface",
        "com.amazonaws.${AWS::Region}.sqs": "Interface",
        "com.amazonaws.${AWS::Region}.s3": "Gateway",
    }


EXISTING_VPC = {"ExistingVpcId": "vpc-0a1b2c3d4e5f60718", "ExistingSubnetIds": "subnet-0aaa1111,subnet-0bbb2222"}
NETWORK_TYPES = {"AWS::EC2::VPC", "AWS::EC2::Subnet", "AWS::EC2::RouteTable", "AWS::EC2::SubnetRouteTableAssociation"}


def test_an_existing_vpc_hosts_the_functions_the_proxy_and_the_database_in_its_subnets(template):
    stack = resolved(template, **EXISTING_VPC)
    resources = stack["Resources"]
    assert not {r["Type"] for r in resources.values()} & NETWORK_TYPES, "a network was created anyway"
    subnets = ["subnet-0aaa1111", "subnet-0bbb2222"]
    assert stack["Globals"]["Function"]["VpcConfig"]["SubnetIds"] == subnets
    assert resources["DatabaseSubnetGroup"]["Properties"]["SubnetIds"] == subnets
    assert resources["DatabaseProxy"]["Properties"]["VpcSubnetIds"] == subnets
    groups = _resources(stack, "AWS::EC2::SecurityGroup")
    assert {name: g["Properties"]["VpcId"] for name, g in groups.items()} == dict.fromkeys(
        groups, {"Ref": "ExistingVpcId"}
    )
    # The interface endpoints by default (their subnets are the given ones); S3's needs the route tables.
    endpoints = _resources(stack, "AWS::EC2::VPCEndpoint")
    assert {e["Properties"]["VpcEndpointType"] for e in endpoints.values()} == {"Interface"}
    assert all(e["Properties"]["SubnetIds"] == subnets for e in endpoints.values())
    with_routes = resolved(template, **EXISTING_VPC, ExistingRouteTableIds="rtb-0ccc3333")
    s3 = with_routes["Resources"]["S3Endpoint"]["Properties"]
    assert (s3["VpcEndpointType"], s3["RouteTableIds"]) == ("Gateway", ["rtb-0ccc3333"])


def test_an_existing_vpc_with_its_own_endpoints_gets_none_from_the_stack(template):
    stack = resolved(template, **EXISTING_VPC, CreateVpcEndpoints="false", ExistingRouteTableIds="rtb-0ccc3333")
    types = {r["Type"] for r in stack["Resources"].values()}
    assert "AWS::EC2::VPCEndpoint" not in types
    assert "EndpointSecurityGroup" not in stack["Resources"]
    # The default stack's own VPC always gets them, whatever CreateVpcEndpoints says.
    own = resolved(template, CreateVpcEndpoints="false")
    assert len(_resources(own, "AWS::EC2::VPCEndpoint")) == 4
    assert {r["Type"] for r in own["Resources"].values()} >= NETWORK_TYPES


def test_an_existing_vpc_without_subnets_is_refused_before_anything_is_created(template):
    rule = template["Rules"]["ExistingVpcNeedsSubnets"]
    assert rule["RuleCondition"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "ExistingVpcId"}, ""]}]}
    assert rule["Assertions"] == [
        {
            "Assert": {"Fn::Not": [{"Fn::Contains": [{"Ref": "ExistingSubnetIds"}, ""]}]},
            "AssertDescription": "ExistingVpcId needs ExistingSubnetIds (two or more private subnets)",
        }
    ]


QUEUES = [
    "IngestQueue",
    "IngestDeadLetterQueue",
    "RecomputeDeadLetterQueue",
    "ScoreShardQueue",
    "ScoreShardDeadLetterQueue",
]


def test_every_queue_refuses_requests_without_tls(template):
    assert set(_resources(template, "AWS::SQS::Queue")) == set(QUEUES)
    policy = resolved(template)["Resources"]["QueuePolicy"]["Properties"]
    assert policy["Queues"] == [{"Ref": q} for q in QUEUES]
    (deny,) = policy["PolicyDocument"]["Statement"]  # and no producers by default
    assert (deny["Effect"], deny["Principal"], deny["Action"]) == ("Deny", "*", "sqs:*")
    assert deny["Resource"] == [{"Fn::GetAtt": [q, "Arn"]} for q in QUEUES]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_the_named_producers_may_send_to_the_ingestion_queue_only(template):
    producers = "arn:aws:iam::111122223333:role/order-service,444455556666"
    statements = resolved(template, IngestQueueProducers=producers)["Resources"]["QueuePolicy"]["Properties"][
        "PolicyDocument"
    ]["Statement"]
    allow = [s for s in statements if s["Effect"] == "Allow"]
    assert allow == [
        {
            "Sid": "ProducersSendEventBatches",
            "Effect": "Allow",
            "Principal": {"AWS": ["arn:aws:iam::111122223333:role/order-service", "444455556666"]},
            "Action": ["sqs:SendMessage", "sqs:GetQueueUrl", "sqs:GetQueueAttributes"],
            "Resource": {"Fn::GetAtt": ["IngestQueue", "Arn"]},
        }
    ]


def test_only_the_functions_reach_the_proxy_and_only_the_proxy_and_the_migrations_reach_the_database(template):
    assert [
        (r["SourceSecurityGroupId"], r["FromPort"], r["ToPort"]) for r in _ingress_rules(template, PROXY_SECURITY_GROUP)
    ] == [(FUNCTION_SECURITY_GROUP, 5432, 5432)]
    assert [
        (r["SourceSecurityGroupId"], r["FromPort"], r["ToPort"])
        for r in _ingress_rules(template, DATABASE_SECURITY_GROUP)
    ] == [(PROXY_SECURITY_GROUP, 5432, 5432), (MIGRATION_SECURITY_GROUP, 5432, 5432)]
    assert _ingress_rules(template, FUNCTION_SECURITY_GROUP) == []
    assert _ingress_rules(template, MIGRATION_SECURITY_GROUP) == []
    # The migrations' group is theirs alone (it is the one way to the database that does not pass the proxy).
    users = [name for name, r in template["Resources"].items() if MIGRATION_SECURITY_GROUP in _security_groups(r)]
    assert users == ["MigrateSchemaFunction"]
    egress = _egress_rules(template, MIGRATION_SECURITY_GROUP)
    assert [(r["DestinationSecurityGroupId"], r["FromPort"], r["ToPort"]) for r in egress] == [
        (DATABASE_SECURITY_GROUP, 5432, 5432)
    ]
    database = template["Resources"]["Database"]["Properties"]
    assert database["VPCSecurityGroups"] == [DATABASE_SECURITY_GROUP]
    assert template["Resources"]["DatabaseProxy"]["Properties"]["VpcSecurityGroupIds"] == [PROXY_SECURITY_GROUP]


def test_database_is_private_encrypted_and_protected_in_production(template):
    resource = template["Resources"]["Database"]
    database = resource["Properties"]
    assert database["Engine"] == "postgres"
    assert database["PubliclyAccessible"] is False
    assert database["StorageEncrypted"] is True
    assert database["MultiAZ"] == {"Fn::If": ["IsProduction", True, False]}
    assert database["DeletionProtection"] == {"Fn::If": ["IsProduction", True, False]}
    assert resource["DeletionPolicy"] == resource["UpdateReplacePolicy"] == "Snapshot"
    # RDS generates the password and keeps it in Secrets Manager; the template never holds one.
    assert database["ManageMasterUserPassword"] is True
    assert "MasterUserPassword" not in database
    # Operators see what runs without a way into the VPC (the CPU alarm's runbook), and its slow statements.
    assert database["EnablePerformanceInsights"] == {"Fn::If": ["IsProduction", True, False]}
    assert database["EnableCloudwatchLogsExports"] == ["postgresql"]
    subnet_group = template["Resources"][database["DBSubnetGroupName"]["Ref"]]["Properties"]
    assert subnet_group["SubnetIds"] == template["Globals"]["Function"]["VpcConfig"]["SubnetIds"]
    # A pinned minor version stops being creatable about a year after its release (RDS stopped creating 16.8 in
    # May 2026): the default names the major version, whose current default minor RDS picks.
    assert database["EngineVersion"] == {"Ref": "DatabaseEngineVersion"}
    assert template["Parameters"]["DatabaseEngineVersion"]["Default"] == "16"
    parameters = template["Resources"][database["DBParameterGroupName"]["Ref"]]["Properties"]
    assert (
        parameters["Family"] == "postgres16"
        and parameters["Parameters"]["rds.force_ssl"] == "1"
        and parameters["Parameters"]["timezone"] == "UTC"
    )


def test_proxy_requires_tls_and_iam_authentication(template):
    proxy = template["Resources"]["DatabaseProxy"]["Properties"]
    assert proxy["RequireTLS"] is True
    # IAM end to end, for clients and for the proxy's own logins (which users: test_database_users.py).
    assert proxy["DefaultAuthScheme"] == "IAM_AUTH" and "Auth" not in proxy
    target = template["Resources"]["DatabaseProxyTargetGroup"]["Properties"]
    assert target["DBInstanceIdentifiers"] == [{"Ref": "Database"}]
    # Clients send no startup options through the proxy (feedcore.db.connection); the proxy sets the timeout.
    init_query = target["ConnectionPoolConfigurationInfo"]["InitQuery"]
    assert init_query == {"Fn::Sub": "SET statement_timeout = ${DbStatementTimeoutMs}"}


def test_every_api_method_is_behind_the_cognito_authorizer(template, transformed):
    auth = template["Resources"]["FeedApi"]["Properties"]["Auth"]
    assert auth["DefaultAuthorizer"] == "CognitoAuthorizer"
    assert auth["Authorizers"]["CognitoAuthorizer"]["UserPoolArn"] == {
        "Fn::If": ["CreateUserPool", {"Fn::GetAtt": ["UserPool", "Arn"]}, {"Ref": "ExistingUserPoolArn"}]
    }
    # In what SAM generates: every method but the CORS preflights (OPTIONS, answered by API Gateway itself)
    # carries the authorizer.
    paths = transformed["Resources"]["FeedApi"]["Properties"]["Body"]["paths"]
    methods = [
        (path, method, spec) for path, spec_by_method in paths.items() for method, spec in spec_by_method.items()
    ]
    served = [(path, method) for path, method, spec in methods if method != "options"]
    assert len(served) == 5
    for path, method, spec in methods:
        if method == "options":
            assert spec["x-amazon-apigateway-integration"]["type"] == "mock", f"{path}: preflight reaches code"
        else:
            assert spec.get("security") == [{"CognitoAuthorizer": []}], f"{method.upper()} {path} is open"


def test_what_api_gateway_answers_itself_carries_the_cors_origin_as_deployed(transformed):
    """SAM copies each gateway response's headers into the API's body, where CloudFormation resolves the origin."""
    responses = transformed["Resources"]["FeedApi"]["Properties"]["Body"]["x-amazon-apigateway-gateway-responses"]
    assert {"UNAUTHORIZED", "THROTTLED", "DEFAULT_4XX", "DEFAULT_5XX"} <= set(responses)
    origin = {"Fn::Sub": "'${CorsAllowOrigin}'"}
    for name, response in responses.items():
        assert response["responseParameters"]["gatewayresponse.header.Access-Control-Allow-Origin"] == origin, name


# The AWS-managed policies SAM attaches that every function needs: its logs, its traces, its network interfaces.
MANAGED_POLICIES = {
    "service-role/AWSLambdaBasicExecutionRole",
    "AWSXrayWriteOnlyAccess",
    "service-role/AWSLambdaVPCAccessExecutionRole",
}


@pytest.mark.parametrize(
    ("consumer", "queue"), [("IngestQueueFunction", "IngestQueue"), ("RecomputeShardFunction", "ScoreShardQueue")]
)
def test_a_queue_consumer_may_receive_and_delete_only_its_own_queues_messages(transformed, consumer, queue):
    """SAM's SQS event would attach AWSLambdaSQSQueueExecutionRole (sqs:ReceiveMessage and sqs:DeleteMessage on
    every queue of the account): the consumer's own policy names its queue instead."""
    role = transformed["Resources"][f"{consumer}Role"]["Properties"]
    assert {arn.partition(":policy/")[2] for arn in role["ManagedPolicyArns"]} == MANAGED_POLICIES
    sqs = [
        statement
        for policy in role["Policies"]
        for statement in policy["PolicyDocument"]["Statement"]
        if any(action.startswith("sqs:") for action in _as_list(statement["Action"]))
    ]
    assert [statement["Resource"] for statement in sqs] == [{"Fn::GetAtt": [queue, "Arn"]}]
    assert "sqs:ReceiveMessage" in sqs[0]["Action"] and "sqs:DeleteMessage" in sqs[0]["Action"]


def test_a_deploy_that_changes_only_the_layer_moves_the_feeds_alias_to_a_new_version(sam_cli, tmp_path):
    """The feed's code lives in the layer, and the API calls the `live` alias of a SnapStart version: a deploy of a
    new layer (which also migrates the schema) must publish a version with it, or the API keeps serving the old
    code. `sam package` names the uploaded layer after its content; two such names stand in for two builds."""
    source = TEMPLATE.read_text()
    assert source.count("ContentUri: layers/feedcore/") == 1
    versions = []
    for build in ("layer-a", "layer-b"):
        packaged = tmp_path / f"{build}.yaml"
        packaged.write_text(source.replace("ContentUri: layers/feedcore/", f"ContentUri: s3://bucket/{build}.zip"))
        resources = translate(sam_cli, packaged)["Resources"]
        (version,) = [name for name, r in resources.items() if r["Type"] == "AWS::Lambda::Version"]
        alias = resources["AssembleFeedFunctionAliaslive"]["Properties"]
        assert alias["FunctionVersion"] == {"Fn::GetAtt": [version, "Version"]}
        # The superseded version goes once the update completes, its cached snapshot no longer billed.
        assert resources[version]["DeletionPolicy"] == "Delete"
        versions.append(version)
    assert versions[0] != versions[1], "a new layer leaves the feed's alias on the version with the old one"


def test_no_usage_plan_without_a_method_that_requires_its_api_key(transformed):
    """API Gateway applies a usage plan's throttle and quota only to methods that require an API key: a plan
    beside methods that require none limits nobody (its key, unused, was not even an output)."""
    plans = _resources(transformed, "AWS::ApiGateway::UsagePlan")
    paths = transformed["Resources"]["FeedApi"]["Properties"]["Body"]["paths"]
    key_methods = [
        (path, method)
        for path, spec_by_method in paths.items()
        for method, spec in spec_by_method.items()
        if any("api_key" in requirement for requirement in spec.get("security", []))
    ]
    assert not plans or key_methods, f"usage plans {sorted(plans)} apply to no method"


def test_no_generated_role_grants_a_wildcard_action(transformed):
    for name, resource in _resources(transformed, "AWS::IAM::Role").items():
        policies = resource["Properties"].get("Policies", [])
        # A conditional policy (Fn::If) holds a policy, or AWS::NoValue, in each branch.
        policies = [p for policy in policies for p in policy.get("Fn::If", [None, policy])[1:] if "PolicyDocument" in p]
        assert policies, f"{name}: no inline policy found"
        for policy in policies:
            for statement in policy["PolicyDocument"]["Statement"]:
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                assert not [a for a in actions if a == "*" or a.endswith(":*")], f"{name}: {actions}"


def test_schema_migrations_run_on_deploy_after_the_proxy(template):
    migrations = template["Resources"]["SchemaMigrations"]
    assert migrations["Type"] == "Custom::SchemaMigrations"
    assert migrations["Properties"]["ServiceToken"] == {"Fn::GetAtt": ["MigrateSchemaFunction", "Arn"]}
    # A new layer version (which carries the migrations) makes CloudFormation send an Update.
    assert migrations["Properties"]["LayerVersion"] == {"Ref": "FeedCoreLayer"}
    # The proxy with its target (the probe logs in through it) and the way to the database itself: without the
    # ingress the migrations' connections would time out until CloudFormation added it, a race a deploy could lose.
    assert {"DatabaseProxy", "DatabaseProxyTargetGroup", "DatabaseFromMigrationIngress"} <= set(migrations["DependsOn"])
    # CloudFormation waits for an answer as long as the function may run to give it, and not the default hour
    # longer when it crashed without answering.
    timeout_s = template["Resources"]["MigrateSchemaFunction"]["Properties"]["Timeout"]
    assert timeout_s < migrations["Properties"]["ServiceTimeout"] <= timeout_s + 120


ALARMS = {
    ("AWS/ApiGateway", "5XXError"),
    ("AWS/ApiGateway", "Latency"),
    ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
    ("AWS/SQS", "ApproximateAgeOfOldestMessage"),
    ("AWS/Lambda", "Errors"),
    ("AWS/Lambda", "Duration"),
    ("AWS/Lambda", "Throttles"),
    ("AWS/RDS", "CPUUtilization"),
    ("AWS/RDS", "DatabaseConnections"),
    ("AWS/RDS", "FreeStorageSpace"),
    ("AWS/RDS", "FreeableMemory"),
    (METRICS_NAMESPACE, "RetentionIncomplete"),
}


def _alarm_metrics(alarm: dict) -> list[dict]:
    """The metrics an alarm watches, as (Namespace, MetricName, Dimensions) dicts: its own, or those of its metric
    math."""
    if "Metrics" not in alarm:
        return [alarm]
    return [query["MetricStat"]["Metric"] for query in alarm["Metrics"] if "MetricStat" in query]


def test_cloudwatch_may_publish_to_the_encrypted_alarm_topic(template):
    topic = template["Resources"]["AlarmTopic"]["Properties"]
    assert topic["KmsMasterKeyId"] == {"Ref": "AlarmTopicKey"}  # not alias/aws/sns, which CloudWatch cannot use
    key = template["Resources"]["AlarmTopicKey"]["Properties"]
    assert key["EnableKeyRotation"] is True
    (cloudwatch,) = [
        s for s in key["KeyPolicy"]["Statement"] if s["Principal"].get("Service") == "cloudwatch.amazonaws.com"
    ]
    assert set(cloudwatch["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}


NO_EGRESS = {"IpProtocol": "icmp", "FromPort": 252, "ToPort": 86, "CidrIp": "127.0.0.1/32"}


@pytest.mark.parametrize(
    "parameters", [{}, EXISTING_VPC, EXISTING_VPC | {"CreateVpcEndpoints": "false"}], ids=["own", "existing", "no-ep"]
)
def test_the_proxy_sends_to_the_database_alone_and_reads_no_secret(template, parameters):
    """Its logins are IAM tokens of its role: no Secrets Manager, through an endpoint or a NAT. An inline rule that
    matches nothing stands for none: a group without inline egress gets CloudFormation's allow-all."""
    stack = resolved(template, **parameters)
    rules = _egress_rules(stack, PROXY_SECURITY_GROUP)
    assert [{k: r[k] for k in NO_EGRESS} for r in rules if "CidrIp" in r] == [NO_EGRESS]
    assert [(r["DestinationSecurityGroupId"], r["FromPort"], r["ToPort"]) for r in rules if "CidrIp" not in r] == [
        (DATABASE_SECURITY_GROUP, 5432, 5432)
    ]


@pytest.mark.parametrize("parameters", [{}, EXISTING_VPC], ids=["own VPC", "existing VPC"])
def test_the_endpoints_admit_the_functions_by_security_group_not_by_address_range(template, parameters):
    """In an existing VPC, VpcCidr is whatever the deployer left (its default, most likely): no rule may rely on
    it, or the functions reach no AWS API."""
    stack = resolved(template, **parameters)
    rules = _ingress_rules(stack, {"Ref": "EndpointSecurityGroup"})
    assert sorted((r["SourceSecurityGroupId"]["Ref"], r["FromPort"], r["ToPort"]) for r in rules) == [
        ("FunctionSecurityGroup", 443, 443),
    ]
    uses_of_vpc_cidr = [name for name, r in stack["Resources"].items() if '{"Ref": "VpcCidr"}' in json.dumps(r)]
    assert uses_of_vpc_cidr == (["Vpc"] if not parameters else [])


def test_alarms_cover_errors_latency_dead_letters_recompute_and_database(template):
    alarms = _resources(template, "AWS::CloudWatch::Alarm")
    watched = {(m["Namespace"], m["MetricName"]) for a in alarms.values() for m in _alarm_metrics(a["Properties"])}
    assert watched == ALARMS
    for name, alarm in alarms.items():
        assert alarm["Properties"]["AlarmActions"] == alarm["Properties"]["OKActions"] == [{"Ref": "AlarmTopic"}], name
        # A metric math alarm compares the one series it returns.
        returned = [q for q in alarm["Properties"].get("Metrics", []) if q.get("ReturnData", True)]
        assert len(returned) == (1 if "Metrics" in alarm["Properties"] else 0), name

    def queues(metric: str) -> set[str]:
        return {
            m["Dimensions"][0]["Value"]["Fn::GetAtt"][0]
            for a in alarms.values()
            for m in _alarm_metrics(a["Properties"])
            if (m["Namespace"], m["MetricName"]) == ("AWS/SQS", metric)
        }

    assert queues("ApproximateNumberOfMessagesVisible") == {
        "IngestDeadLetterQueue", "RecomputeDeadLetterQueue", "ScoreShardDeadLetterQueue"
    }  # fmt: skip
    # The producers' queue keeps a batch four days, then drops it: a stalled consumer must be noticed before.
    assert queues("ApproximateAgeOfOldestMessage") == {"IngestQueue"}
    backlog = alarms["IngestQueueBacklogAlarm"]["Properties"]
    retention_s = template["Resources"]["IngestQueue"]["Properties"]["MessageRetentionPeriod"]
    assert backlog["Threshold"] + backlog["Period"] * backlog["EvaluationPeriods"] < retention_s
    latency = alarms["FeedLatencyAlarm"]["Properties"]
    assert latency["ExtendedStatistic"] == "p99"
    assert {"Name": "Resource", "Value": "/v1/users/{user_id}/feed"} in latency["Dimensions"]
    # The recompute's "near its timeout" threshold is 80 % of the function's timeout.
    timeout_ms = template["Resources"]["RecomputeScoresFunction"]["Properties"]["Timeout"] * 1000
    assert alarms["RecomputeNearTimeoutAlarm"]["Properties"]["Threshold"] == 0.8 * timeout_ms
    # Throttling refuses API callers and delays queue messages: watched on each function that answers requests or
    # consumes a queue (the scheduled recompute's refusals reach its dead-letter queue's alarm).
    throttled = {
        m["Dimensions"][0]["Value"]["Ref"]
        for a in alarms.values()
        for m in _alarm_metrics(a["Properties"])
        if m["MetricName"] == "Throttles"
    }
    assert throttled == {
        "IngestEventsFunction", "AssembleFeedFunction", "IngestQueueFunction", "RecomputeShardFunction"
    }  # fmt: skip
    # The database's storage and memory, below thresholds of the deployer's (both depend on the instance's size).
    for alarm, metric, parameter, unit in [
        ("DatabaseFreeStorageAlarm", "FreeStorageSpace", "DatabaseFreeStorageAlarmGiB", 2**30),
        ("DatabaseMemoryAlarm", "FreeableMemory", "DatabaseFreeableMemoryAlarmMiB", 2**20),
    ]:
        properties = alarms[alarm]["Properties"]
        (watched_metric,) = _alarm_metrics(properties)
        assert watched_metric["MetricName"] == metric
        assert watched_metric["Dimensions"] == [{"Name": "DBInstanceIdentifier", "Value": {"Ref": "Database"}}]
        (returned,) = [q for q in properties["Metrics"] if q.get("ReturnData", True)]
        assert returned["Expression"] == f"{properties['Metrics'][0]['Id']} / {unit}"
        assert (properties["Threshold"], properties["ComparisonOperator"]) == ({"Ref": parameter}, "LessThanThreshold")


def test_an_unfinished_retention_alarms_where_its_metric_is_published(template):
    recompute = template["Resources"]["RecomputeScoresFunction"]["Properties"]["Environment"]["Variables"]
    retention = template["Resources"]["RetentionIncompleteAlarm"]["Properties"]
    # EMF puts the service's metrics under its namespace with the function's service name as a dimension.
    assert retention["Dimensions"] == [{"Name": "service", "Value": recompute["POWERTOOLS_SERVICE_NAME"]}]
    # With the Datadog provider the metric never reaches CloudWatch, and there is no alarm to stay silent.
    assert "RetentionIncompleteAlarm" in resolved(template)["Resources"]
    assert "RetentionIncompleteAlarm" not in resolved(template, MetricsProvider="datadog")["Resources"]
