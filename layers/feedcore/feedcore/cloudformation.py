"""CloudFormation custom resources: the request CloudFormation sends, and the answer it waits for.

CloudFormation waits (up to an hour) for a JSON document PUT to the request's presigned ResponseURL, so a
custom resource function must answer every request, including when its work fails or cannot start.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from feedcore.observability import logger

# CloudFormation refuses answers over 4 KB; the reason is cut well below that.
MAX_REASON_CHARS = 1500
# Time kept back from the invocation's remaining time to answer after the work stops.
ANSWER_MARGIN_MS = 15_000
RESPONSE_TIMEOUT_S = 10


class CustomResourceRequest(BaseModel):
    """The fields of a custom resource request this service uses."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    request_type: Literal["Create", "Update", "Delete"] = Field(alias="RequestType")
    response_url: str = Field(alias="ResponseURL")
    stack_id: str = Field(alias="StackId")
    request_id: str = Field(alias="RequestId")
    logical_resource_id: str = Field(alias="LogicalResourceId")
    physical_resource_id: str | None = Field(default=None, alias="PhysicalResourceId")
    resource_properties: dict[str, Any] = Field(default_factory=dict, alias="ResourceProperties")


class CustomResourceResult(BaseModel):
    """What a successful request reports: the resource's physical id and attributes for Fn::GetAtt."""

    physical_resource_id: str
    data: dict[str, str] = Field(default_factory=dict)


CustomResourceAction = Callable[[CustomResourceRequest, int], CustomResourceResult]


def put_response(url: str, body: bytes) -> None:
    """PUT the answer to the presigned S3 URL (an empty content type, as the URL was signed without one)."""
    request = urllib.request.Request(
        url, data=body, method="PUT", headers={"Content-Type": "", "Content-Length": str(len(body))}
    )
    with urllib.request.urlopen(request, timeout=RESPONSE_TIMEOUT_S) as response:  # noqa: S310 (CloudFormation's URL)
        response.read()


def answer_custom_resource(
    event: dict[str, Any],
    remaining_ms: int,
    log_stream: str,
    action: CustomResourceAction,
) -> dict[str, Any]:
    """Run `action` on CloudFormation's request with the time left less a margin, and always answer:
    SUCCESS with the action's result, or FAILED with the error (the details are in `log_stream`).
    Returns the answer that was sent."""
    try:
        request = CustomResourceRequest.model_validate(event)
    except ValidationError as exc:
        if "ResponseURL" not in event:
            raise  # not from CloudFormation: there is nobody to answer
        logger.exception("malformed custom resource request")
        return _answer(event, "FAILED", event.get("PhysicalResourceId") or log_stream, f"bad request: {exc}", {})
    # The request without its ResponseURL: a presigned URL lets whoever reads it answer for this request.
    logger.info("custom resource request", extra={"request": request.model_dump(exclude={"response_url"})})
    # A failed Create has no resource yet; CloudFormation then sends a Delete for this id, which must succeed.
    physical_id = request.physical_resource_id or log_stream
    try:
        result = action(request, remaining_ms - ANSWER_MARGIN_MS)
    except Exception as exc:
        logger.exception("custom resource request failed", extra={"request_type": request.request_type})
        reason = f"{type(exc).__name__}: {exc} (log stream {log_stream})"
        return _answer(event, "FAILED", physical_id, reason, {})
    return _answer(event, "SUCCESS", result.physical_resource_id, "", result.data)


def _answer(event: dict[str, Any], status: str, physical_id: str, reason: str, data: dict[str, str]) -> dict[str, Any]:
    answer = {
        "Status": status,
        "Reason": reason[:MAX_REASON_CHARS],
        "PhysicalResourceId": physical_id,
        "StackId": event.get("StackId", ""),
        "RequestId": event.get("RequestId", ""),
        "LogicalResourceId": event.get("LogicalResourceId", ""),
        "NoEcho": False,
        "Data": data,
    }
    logger.info("answering CloudFormation", extra={"answer": answer})
    put_response(event["ResponseURL"], json.dumps(answer).encode())
    return answer
