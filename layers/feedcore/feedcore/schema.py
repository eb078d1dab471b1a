"""The database schema on deploy: a CloudFormation custom resource applies the migrations the layer carries."""

from __future__ import annotations

import time

from pydantic import BaseModel, ConfigDict, Field

from feedcore.cloudformation import CustomResourceRequest, CustomResourceResult
from feedcore.db.migrations import migrate_when_reachable
from feedcore.db.proxy_probe import check_proxy_login
from feedcore.db.roles import LoginUser
from feedcore.settings import proxy_probe_settings

# One schema per stack: the id never changes, so an Update never looks like a replacement to CloudFormation
# (which would then send a Delete for the "old" schema).
SCHEMA_RESOURCE_ID = "feed-assembly-schema"


class LoginUserSpec(BaseModel):
    """A function's login user as the template names it: its name (the function's DB_USER) and the group role
    (migration 0061) it is given."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: str = Field(alias="Role")
    username: str = Field(alias="Username", pattern=r"^[a-z_][a-z0-9_]{0,62}$")


class SchemaProperties(BaseModel):
    """The custom resource's properties this function reads (others, such as LayerVersion, only make an
    Update when they change)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    login_users: list[LoginUserSpec] = Field(default_factory=list, alias="LoginUsers")


def apply_schema(request: CustomResourceRequest, time_budget_ms: int) -> CustomResourceResult:
    """Create and Update apply the pending migrations (reported in `Applied`), create the functions' login users and
    the proxy's probe user (or give them their roles again), then log in through RDS Proxy as the probe user
    (reported in `ProxyLogin`, or that it was skipped: feedcore.db.proxy_probe); Delete changes nothing: the schema,
    its roles and its data outlive the resource (the database itself keeps a final snapshot)."""
    if request.request_type == "Delete":
        return CustomResourceResult(physical_resource_id=request.physical_resource_id or SCHEMA_RESOURCE_ID)
    deadline = time.monotonic() + time_budget_ms / 1000
    properties = SchemaProperties.model_validate(request.resource_properties)
    login_users = [LoginUser(username=spec.username, role=spec.role) for spec in properties.login_users]
    probe = proxy_probe_settings()
    applied = migrate_when_reachable(time_budget_ms, login_users=login_users, probe_user=probe.user)
    proxy_login = check_proxy_login(probe, deadline)
    return CustomResourceResult(
        physical_resource_id=SCHEMA_RESOURCE_ID,
        data={"Applied": ",".join(applied) if applied else "none", "ProxyLogin": proxy_login},
    )
