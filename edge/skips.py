"""Counted skips: every input the gateway cannot use is counted under a named reason.

Nothing is dropped silently: decoders and sources call :meth:`SkipCounter.skip` with a short,
stable reason name (``"truncated"``, ``"bad-magic"``, ``"crc-mismatch"``, ...); the counts end up
in summaries (``csi-edge decode --summary``) and the live view, and the first few occurrences of
each reason are logged, then at most one line per reason per ``log_every`` seconds.
"""

from __future__ import annotations

import logging
import time
from collections import Counter

log = logging.getLogger("csi_edge.skips")


class SkipCounter(Counter):
    """A Counter of skip reasons with rate-limited logging."""

    def __init__(self, *args, log_every: float = 10.0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.log_every = log_every
        self._last_log: dict[str, float] = {}

    def skip(self, reason: str, detail: str = "", n: int = 1) -> None:
        """Count ``n`` skipped items under ``reason`` and log it at a bounded rate."""
        self[reason] += n
        now = time.monotonic()
        last = self._last_log.get(reason)
        if last is None or now - last >= self.log_every:
            self._last_log[reason] = now
            log.warning(
                "skipped %s (%d so far)%s", reason, self[reason], f": {detail}" if detail else ""
            )

    def as_dict(self) -> dict[str, int]:
        return {k: int(v) for k, v in sorted(self.items()) if v}
