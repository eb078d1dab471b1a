"""What a fresh feed function loads at start: the X-Ray SDK (whose recorder builds botocore clients) only
where the Tracer records subsegments, and never the AWS SDK's clients, the OpenAPI models, which only the
OpenAPI document needs, or the events' and the catalog's contract models, which only the other functions need;
no model it does not read at start is built, no dataclass made, and the collector is left on.
Each case imports functions/<function>/app.py in a fresh interpreter."""

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


def after_import(function: str, expression: str) -> object:
    """The value of `expression` (JSON) in a fresh interpreter that has imported functions/<function>/app.py."""
    check = f"""
import dataclasses, gc, importlib.util, json, sys
spec = importlib.util.spec_from_file_location("app", {str(REPO_ROOT / "functions")!r} + "/{function}/app.py")
spec.loader.exec_module(importlib.util.module_from_spec(spec))
print(json.dumps({expression}))
"""
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=60, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_feed_function_starts_without_building_the_models_a_page_does_not_read_at_start() -> None:
    """Problem (every error answer) is built on the first error answer; the page's models, which only document it,
    with the route's responses on the first request; the settings of the other functions never."""
    models = {
        "feedcore.api.models": ["Problem", "Feed", "FeedSection", "FeedItem"],
        "feedcore.settings": ["ScoringSettings", "FanoutSettings", "IngestSettings", "ModelScoreSettings"],
    }
    built = (
        f"[m + '.' + n for m, names in {models!r}.items() for n in names"
        " if vars(sys.modules[m])[n].__pydantic_complete__]"
    )

    assert after_import("assemble_feed", built) == []


def test_the_feed_functions_models_and_route_carry_evaluated_annotations() -> None:
    """Annotations kept as text (`from __future__ import annotations`) are compiled and evaluated one by one: by
    pydantic as each model is made, by Powertools for the route's parameters on its first request (together 1.3 % of
    the feed function's cold start in instructions)."""
    modules = ["feedcore.api.models", "feedcore.feed.config", "feedcore.settings"]
    as_text = (
        f"[m + '.' + n for m in {modules!r} for n, v in vars(sys.modules[m]).items()"
        " if isinstance(v, type) and v.__module__ == m"
        " and any(isinstance(a, str) for a in vars(v).get('__annotations__', {}).values())]"
        " + [p for p, a in sys.modules['feedcore.api.feed'].get_feed.__annotations__.items() if isinstance(a, str)]"
    )

    assert after_import("assemble_feed", as_text) == []


def test_the_feed_function_makes_no_dataclass_at_start() -> None:
    """Python 3.12 compiles each method of a dataclass from source when the class is made (~0.5 ms a class, about
    8 % of a cold start with the feed's 27): the feed's records are msgspec Structs."""
    dataclasses_made = (
        "[m + '.' + n for m in list(sys.modules) if m.startswith('feedcore')"
        " for n, v in vars(sys.modules[m]).items() if dataclasses.is_dataclass(v) and v.__module__ == m]"
    )

    assert after_import("assemble_feed", dataclasses_made) == []


@pytest.mark.parametrize("function", ["assemble_feed", "ingest_events"])
def test_a_function_starts_with_the_collector_on_and_what_it_loaded_frozen(function: str) -> None:
    """The handlers load with the collector off (a share of the cold start), then freeze what they loaded and turn
    it back on: a container that never collected would keep every reference cycle its requests leave."""
    enabled, frozen = after_import(function, "[gc.isenabled(), gc.get_freeze_count()]")

    assert enabled and frozen > 10_000
