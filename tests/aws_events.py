"""Invocation payloads shaped like the ones AWS sends, and a Lambda context."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

ACCOUNT = "123456789012"
REGION = "us-east-1"


@dataclass
class LambdaContext:
    function_name: str = "test-function"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:test-function"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = "/aws/lambda/test-function"
    log_stream_name: str = "2026/11/26/[$LATEST]0123456789abcdef"
    remaining_time_ms: int = 10_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_time_ms


class CountingDown(LambdaContext):
    """A Lambda context whose remaining time runs down from `seconds`, as the invocation's does."""

    def __init__(self, seconds: float) -> None:
        super().__init__(function_name="ingest_queue")
        self.deadline = time.monotonic() + seconds

    def get_remaining_time_in_millis(self) -> int:
        return int((self.deadline - time.monotonic()) * 1000)


def api_gateway_rest_event(
    method: str,
    path: str,
    *,
    resource: str,
    path_parameters: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    body: Any = None,
    raw_body: str | None = None,
    headers: dict[str, str] | None = None,
    claims: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An API Gateway REST API (payload 1.0) proxy event, as Lambda receives it; `claims` are those of the
    caller's token as the Cognito authorizer passes them (see `cognito_claims`), None when no authorizer ran."""
    request_id = str(uuid.uuid4())
    all_headers = {
        "Accept": "application/json",
        "Host": "abc123.execute-api.us-east-1.amazonaws.com",
        "User-Agent": "pytest",
        "X-Amzn-Trace-Id": "Root=1-67891233-abcdef012345678912345678",
        "X-Forwarded-For": "203.0.113.7",
        "X-Forwarded-Port": "443",
        "X-Forwarded-Proto": "https",
        **({"Content-Type": "application/json"} if body is not None or raw_body is not None else {}),
        **(headers or {}),
    }
    if raw_body is None and body is not None:
        raw_body = json.dumps(body)
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": all_headers,
        "multiValueHeaders": {k: [v] for k, v in all_headers.items()},
        "queryStringParameters": query,
        "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} if query else None,
        "pathParameters": path_parameters,
        "stageVariables": None,
        "requestContext": {
            "accountId": ACCOUNT,
            "apiId": "abc123",
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "abc123",
            "extendedRequestId": "abcDEF=",
            "httpMethod": method,
            "identity": {"sourceIp": "203.0.113.7", "userAgent": "pytest", "accountId": None, "user": None},
            "path": f"/prod{path}",
            "protocol": "HTTP/1.1",
            "requestId": request_id,
            "requestTime": "26/Nov/2026:06:00:00 +0000",
            "requestTimeEpoch": 1795672800000,
            "resourceId": "abcdef",
            "resourcePath": resource,
            "stage": "prod",
            **({"authorizer": {"claims": claims}} if claims is not None else {}),
        },
        "body": raw_body,
        "isBase64Encoded": False,
    }


def cognito_claims(sub: str, *groups: str) -> dict[str, str]:
    """The claims of a user pool ID token as a REST API's Cognito authorizer passes them: every value a string,
    `cognito:groups` present only for a member of a group."""
    claims = {
        "sub": sub,
        "iss": f"https://cognito-idp.{REGION}.amazonaws.com/{REGION}_AbCdEfGhI",
        "aud": "4l1mn0pqrst2uvwx3yz4abcde5",
        "token_use": "id",
        "auth_time": "1795672790",
        "iat": "1795672790",
        "exp": "Thu Nov 26 07:00:00 UTC 2026",
        "email": f"{sub}@example.com",
        "email_verified": "true",
        "cognito:username": sub,
    }
    if groups:
        claims["cognito:groups"] = ",".join(groups)
    return claims


# A service identity (the order service, say) in the admin group: it may send events for any user.
SERVICE_CLAIMS = cognito_claims("order-service", "admin")


def eventbridge_scheduled_event(detail: dict[str, Any] | None = None) -> dict[str, Any]:
    """What an EventBridge schedule rule delivers."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT,
        "time": "2026-11-26T06:00:00Z",
        "region": REGION,
        "resources": [f"arn:aws:events:{REGION}:{ACCOUNT}:rule/recompute-scores"],
        "detail": detail or {},
    }


def sqs_event(*bodies: str) -> dict[str, Any]:
    """What Lambda's SQS event source mapping delivers: one record per message body."""
    return {
        "Records": [
            {
                "messageId": str(uuid.uuid4()),
                "receiptHandle": "AQEB-receipt",
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": "1795672800000",
                    "SenderId": ACCOUNT,
                    "ApproximateFirstReceiveTimestamp": "1795672800001",
                },
                "messageAttributes": {},
                "md5OfBody": "0" * 32,
                "eventSource": "aws:sqs",
                "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:queue",
                "awsRegion": REGION,
            }
            for body in bodies
        ]
    }


def response_headers(response: dict[str, Any]) -> dict[str, str]:
    """The headers of a REST proxy response (Powertools answers with multiValueHeaders)."""
    return {name: values[-1] for name, values in response.get("multiValueHeaders", {}).items()} | response.get(
        "headers", {}
    )


def cloudformation_custom_resource_event(
    request_type: str,
    response_url: str,
    *,
    properties: dict[str, Any] | None = None,
    physical_resource_id: str | None = None,
    old_properties: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What CloudFormation sends a custom resource's function (Create, Update or Delete)."""
    service_token = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:feed-MigrateSchemaFunction-abc123"
    event = {
        "RequestType": request_type,
        "ServiceToken": service_token,
        "ResponseURL": response_url,
        "StackId": f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/feed/5b3b3a40-cb02-11f0-9a7c-0a1b2c3d4e5f",
        "RequestId": str(uuid.uuid4()),
        "LogicalResourceId": "SchemaMigrations",
        "ResourceType": "Custom::SchemaMigrations",
        "ResourceProperties": {"ServiceToken": service_token, **(properties or {})},
    }
    if request_type != "Create":
        event["PhysicalResourceId"] = physical_resource_id
    if request_type == "Update":
        event["OldResourceProperties"] = {"ServiceToken": service_token, **(old_properties or {})}
    return event
