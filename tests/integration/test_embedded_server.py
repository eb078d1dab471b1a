"""The embedded server (local runs, benchmarks, tests) is made with the settings of the stack's database."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import psycopg

from feedlocal.embedded import SERVER_SETTINGS, embedded_server


def test_a_new_embedded_server_runs_with_the_settings_it_is_made_with() -> None:
    # Not under pytest's tmp_path: a concurrent pytest session resets that tree to mode 0700, which the server's own
    # system user then cannot enter.
    scratch = Path(tempfile.mkdtemp(prefix="feed-settings-"))
    server = embedded_server(scratch / "pgdata", on_exit="delete")
    try:
        with psycopg.connect(server.get_uri(), autocommit=True) as conn:
            running = {
                name: conn.execute("SELECT current_setting(%s)", (name,)).fetchone()[0] for name in SERVER_SETTINGS
            }
    finally:
        server.cleanup()
        shutil.rmtree(scratch, ignore_errors=True)

    # current_setting shows a value in its largest whole unit, as SERVER_SETTINGS writes them ("1GB", "10ms").
    assert running == SERVER_SETTINGS
