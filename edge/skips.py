"""Counted skips: every input the gateway cannot use is counted under a named reason.

Nothing is dropped silently: decoders and sources call :meth:`SkipCounter.skip` with a short,
stable reason name (``"truncated"``, ``"bad-magic"``, ``"crc-mismatch"``, ...); the counts end up
in summaries (``csi-edge decode --summary``) and the live view. The first occurrence of each
reason is logged, then at most one line per reason per interval for the whole process
(:mod:`csi_edge.loglimit`), whichever counter object it was counted in.
"""

from __future__ import annotations

import logging
from collections import Counter

from csi_edge.loglimit import limited

log = logging.getLogger("csi_edge.skips")


class SkipCounter(Counter):
    """A Counter of skip reasons with rate-limited logging."""

    def skip(self, reason: str, detail: str = "", n: int = 1) -> None:
        """Count ``n`` skipped items under ``reason`` and log it at a bounded rate."""
        self[reason] += n
        limited(
            log,
            logging.WARNING,
            f"skip:{reason}",
            "skipped %d %s%s",
            n,
            reason,
            f": {detail}" if detail else "",
            n=n,
        )

    def as_dict(self) -> dict[str, int]:
        return {k: int(v) for k, v in sorted(self.items()) if v}
