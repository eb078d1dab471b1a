"""The database schema on deploy: a CloudFormation custom resource applies the migrations the layer carries."""

from __future__ import annotations

from feedcore.cloudformation import CustomResourceRequest, CustomResourceResult
from feedcore.db.migrations import migrate_when_reachable

# One schema per stack: the id never changes, so an Update never looks like a replacement to CloudFormation
# (which would then send a Delete for the "old" schema).
SCHEMA_RESOURCE_ID = "feed-assembly-schema"


def apply_schema(request: CustomResourceRequest, time_budget_ms: int) -> CustomResourceResult:
    """Create and Update apply the pending migrations (reported in `Applied`); Delete changes nothing: the
    schema and its data outlive the resource (the database itself keeps a final snapshot)."""
    if request.request_type == "Delete":
        return CustomResourceResult(physical_resource_id=request.physical_resource_id or SCHEMA_RESOURCE_ID)
    applied = migrate_when_reachable(time_budget_ms)
    return CustomResourceResult(
        physical_resource_id=SCHEMA_RESOURCE_ID, data={"Applied": ",".join(applied) if applied else "none"}
    )
