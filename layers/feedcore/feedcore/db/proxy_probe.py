"""The schema resource's check that the functions' way in works: a login through RDS Proxy with an IAM token.

The migrations log in to the instance itself, as its master user with its password, so a deploy that applies them
proves nothing of the path every function takes: TLS to the proxy, an IAM token for a user in rds_iam, the proxy's
own IAM login to the instance with its role. After each run the resource logs in that way as a user of its own (in
rds_iam, with CONNECT and nothing else: feedcore.db.roles.ensure_probe_user) and runs `SELECT 1`; when that does
not work in time, the resource answers FAILED and CloudFormation rolls the deploy back, rather than leaving a stack
that fails every request.
"""

from __future__ import annotations

import time

import psycopg

from feedcore.db.connection import connect
from feedcore.errors import ConfigurationError, DatabaseUnavailable
from feedcore.observability import logger
from feedcore.settings import ProxyProbeSettings, database_settings

# Pause between login attempts: a user given rds_iam a moment ago, a policy just attached to the function's role or
# a target the proxy just registered may refuse logins for a while.
PROBE_RETRY_INTERVAL_S = 3.0
SKIPPED = "skipped: DB_PROXY_PROBE_HOST is not set (no RDS Proxy: a local run)"


class ProxyLoginFailed(Exception):
    """The login through RDS Proxy with an IAM token, the functions' way in, did not work in time."""


def check_proxy_login(probe: ProxyProbeSettings, deadline: float) -> str:
    """Log in through the proxy as the probe user and run `SELECT 1` (`probe_proxy_login`), or, with no probe
    configured, log that the check is skipped. Returns what was checked, for the resource's answer."""
    if not probe.enabled:
        logger.warning("the login through RDS Proxy is not checked", extra={"proxy_login": SKIPPED})
        return SKIPPED
    probe_proxy_login(probe, deadline)
    return f"{probe.user} through {probe.host}"


def probe_proxy_login(probe: ProxyProbeSettings, deadline: float) -> None:
    """Log in to RDS Proxy at `probe.host` as `probe.user` with an IAM token signed by this function's role, over TLS,
    and run `SELECT 1`; retried every PROBE_RETRY_INTERVAL_S for `probe.timeout_s`, and not past `deadline` (a
    `time.monotonic()` time). Raises ProxyLoginFailed naming the proxy, the user and the last error."""
    settings = database_settings().model_copy(
        update={"database_url": None, "db_iam_auth": True, "db_host": probe.host, "db_user": probe.user}
    )
    started = time.monotonic()
    give_up_at = min(deadline, started + probe.timeout_s)
    attempts = 0
    while True:
        attempts += 1
        try:
            with connect(settings) as conn:
                conn.execute("SELECT 1")
            return
        except (DatabaseUnavailable, ConfigurationError, psycopg.Error) as exc:
            error = exc
        # Not retried when the pause and the attempt (up to the connect timeout) would end past the time given.
        if time.monotonic() + PROBE_RETRY_INTERVAL_S + settings.db_connect_timeout_s > give_up_at:
            break
        logger.warning("login through RDS Proxy refused; retrying", extra={"attempt": attempts, "error": str(error)})
        time.sleep(PROBE_RETRY_INTERVAL_S)
    raise ProxyLoginFailed(
        f"the login through RDS Proxy {probe.host} as {probe.user!r} with an IAM token (the functions' way in) did "
        f"not work in {attempts} attempts over {time.monotonic() - started:.0f} s: {error}"
    )
