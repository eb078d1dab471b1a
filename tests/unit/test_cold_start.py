"""What a fresh feed function loads at start: the X-Ray SDK (whose recorder builds botocore clients) only
where the Tracer records subsegments, and never the AWS SDK's clients, the OpenAPI models, which only the
OpenAPI document needs, or the events' and the catalog's contract models, which only the other functions need.
Each case imports functions/assemble_feed/app.py in a fresh interpreter."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT

FEED_FUNCTION = REPO_ROOT / "functions" / "assemble_feed" / "app.py"
HEAVY_MODULES = (
    "aws_xray_sdk",
    "boto3",
    "botocore.session",
    "aws_lambda_powertools.event_handler.openapi.models",
    "feedcore.api.event_models",
    "feedcore.api.catalog_models",
)
_LOADED_AFTER_IMPORT = f"""
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("assemble_feed_app", {str(FEED_FUNCTION)!r})
spec.loader.exec_module(importlib.util.module_from_spec(spec))
print(json.dumps([name for name in {HEAVY_MODULES!r} if name in sys.modules]))
"""


def heavy_modules_loaded(**environment: str) -> list[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("LAMBDA_TASK_ROOT", "POWERTOOLS_TRACE_DISABLED")}
    result = subprocess.run(
        [sys.executable, "-c", _LOADED_AFTER_IMPORT],
        env=base | environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "environment",
    [{}, {"LAMBDA_TASK_ROOT": "/var/task", "POWERTOOLS_TRACE_DISABLED": "true"}],
    ids=["outside-lambda", "lambda-with-tracing-disabled"],
)
def test_the_feed_function_starts_without_the_aws_and_xray_sdks(environment: dict[str, str]) -> None:
    assert heavy_modules_loaded(**environment) == []


def test_in_lambda_the_tracer_still_records_with_the_xray_sdk() -> None:
    assert "aws_xray_sdk" in heavy_modules_loaded(LAMBDA_TASK_ROOT="/var/task")


def test_the_feed_function_starts_without_building_the_problem_model() -> None:
    """Problem (every error answer) is built on the first error answer: a page of the feed never needs it."""
    check = f"""
import importlib.util
spec = importlib.util.spec_from_file_location("assemble_feed_app", {str(FEED_FUNCTION)!r})
spec.loader.exec_module(importlib.util.module_from_spec(spec))
from feedcore.api.models import Problem
print(Problem.__pydantic_complete__)
"""
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=60, check=True)

    assert result.stdout.strip().splitlines()[-1] == "False"
