"""Retention's passes: where the pass over `event_ids` or `feeds` has got to (migration 0095)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

import psycopg

# The tables retention deletes from a range of blocks at a time.
PassTable = Literal["event_ids", "feeds"]

# Moves the table's pass from `was` (the row as this run read it, or none) to the new position. Only from there:
# a run that finds the row moved by another (a concurrent run) moves nothing. The row lock it takes makes the
# other run's range wait for this one's to commit, and then find the row moved.
_MOVE_PASS = """
INSERT INTO retention_passes AS p (table_name, cutoff, next_block, end_block)
VALUES (%(table)s, %(cutoff)s, %(next_block)s, %(end_block)s)
ON CONFLICT (table_name) DO UPDATE
SET cutoff = excluded.cutoff, next_block = excluded.next_block, end_block = excluded.end_block, updated_at = now()
WHERE (p.cutoff, p.next_block, p.end_block) = (%(was_cutoff)s, %(was_next_block)s, %(was_end_block)s)
"""


@dataclass(frozen=True, slots=True)
class RetentionPass:
    """A pass deleting the rows older than `cutoff` from a table's blocks [0, end_block); the blocks before
    `next_block` are done."""

    cutoff: datetime
    next_block: int
    end_block: int

    @property
    def complete(self) -> bool:
        """Every block is done: no row older than `cutoff` is left in the table."""
        return self.next_block >= self.end_block

    def advanced(self, blocks: int) -> RetentionPass:
        """The pass once `blocks` more blocks (up to its end) are done."""
        return replace(self, next_block=min(self.next_block + blocks, self.end_block))


def load_pass(conn: psycopg.Connection, table: PassTable) -> RetentionPass | None:
    """The table's last pass, done or not; None when retention never passed over it."""
    row = conn.execute(
        "SELECT cutoff, next_block, end_block FROM retention_passes WHERE table_name = %s", (table,)
    ).fetchone()
    return RetentionPass(*row) if row else None


def move_pass(conn: psycopg.Connection, table: PassTable, was: RetentionPass | None, to: RetentionPass) -> bool:
    """Record the table's pass at `to` if it is still at `was` (None: no pass recorded); False when another run
    moved it since it was read."""
    was_cutoff, was_next_block, was_end_block = (was.cutoff, was.next_block, was.end_block) if was else (None,) * 3
    moved = conn.execute(
        _MOVE_PASS,
        {
            "table": table,
            "cutoff": to.cutoff,
            "next_block": to.next_block,
            "end_block": to.end_block,
            "was_cutoff": was_cutoff,
            "was_next_block": was_next_block,
            "was_end_block": was_end_block,
        },
    )
    return moved.rowcount == 1
