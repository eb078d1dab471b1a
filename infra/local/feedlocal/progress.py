"""Progress of long local commands, on stderr (stdout keeps the final JSON line of benchmarks and evaluations)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator

# At most one progress line per this many seconds.
_EVERY_S = 2.0


def progress[T](items: Iterable[T], total: int, label: str, unit: str) -> Iterator[T]:
    """Yield `items`, printing `label: done/total unit (percent, elapsed)` now and then, and a summary line
    at the end. `total` counts items."""
    started = last = time.monotonic()
    done = 0
    for item in items:
        yield item
        done += 1
        now = time.monotonic()
        if now - last >= _EVERY_S:
            last = now
            print(f"{label}: {done:,}/{total:,} {unit} ({done / max(total, 1):.0%}, {now - started:.0f} s)",
                  file=sys.stderr, flush=True)  # fmt: skip
    print(f"{label}: {done:,} {unit} in {time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)
