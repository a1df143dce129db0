"""A log limiter that holds: at most one line per reason per interval, process-wide.

Per-datagram and per-batch events (a skipped datagram, an unknown sender, a kernel drop, a
failing consumer) would flood the log under garbage traffic. The limit is kept here, per
*reason*, for the whole process -- not per counter object: the decoders make a fresh
:class:`~csi_edge.skips.SkipCounter` for every batch, and a limit kept there restarted with
every batch (garbage traffic once produced 84-135 log lines/s). A line that is let through says
how many occurrences there were in total and how many were not logged since the last line.

No logging library does this (``logging`` filters see records one by one, with no per-reason
state and no suppressed counts), hence the small class.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

DEFAULT_INTERVAL_S = 10.0


class LogLimiter:
    """``limiter.log(logger, logging.WARNING, "bad-magic", "skipped %s", "bad-magic")``.

    The first occurrence of a reason is logged; later ones at most once per ``interval_s``,
    with ``[N in total, M not logged since the last line]`` appended.
    """

    def __init__(
        self,
        interval_s: float = DEFAULT_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
        max_reasons: int = 4096,
    ) -> None:
        self.interval_s = interval_s
        self.clock = clock
        self.max_reasons = max_reasons  # reasons are few; the bound protects against a bug
        self._lock = threading.Lock()  # the serial reader thread logs too
        self._state: dict[str, list] = {}  # reason -> [last line t, suppressed, total]

    def allow(self, reason: str, n: int = 1) -> str | None:
        """Count ``n`` occurrences of ``reason``. None if the interval forbids a line now, else
        the suffix for the line (``""`` or the totals), to log however the caller needs."""
        now = self.clock()
        with self._lock:
            st = self._state.get(reason)
            if st is None:
                if len(self._state) >= self.max_reasons:
                    self._state.clear()
                st = self._state[reason] = [None, 0, 0]
            st[2] += n
            if st[0] is not None and now - st[0] < self.interval_s:
                st[1] += n
                return None
            suppressed, total = st[1], st[2]
            st[0], st[1] = now, 0
        if total > n:
            return f" [{total} in total, {suppressed} not logged since the last line]"
        return ""

    def log(
        self, logger: logging.Logger, level: int, reason: str, msg: str, *args, n: int = 1
    ) -> bool:
        """Count ``n`` occurrences of ``reason``; log ``msg % args`` if its interval allows.
        Returns whether a line was written."""
        tail = self.allow(reason, n)
        if tail is None:
            return False
        logger.log(level, msg + tail.replace("%", "%%"), *args)
        return True

    def stats(self) -> dict[str, int]:
        """Occurrences per reason so far (for summaries and tests)."""
        with self._lock:
            return {k: v[2] for k, v in self._state.items()}

    def reset(self) -> None:
        """Forget every reason (tests: each starts with a clean log)."""
        with self._lock:
            self._state.clear()


#: the process-wide limiter every per-datagram / per-batch log line goes through
LIMITER = LogLimiter()


def limited(logger: logging.Logger, level: int, reason: str, msg: str, *args, n: int = 1) -> bool:
    """:meth:`LogLimiter.log` on the process-wide :data:`LIMITER`."""
    return LIMITER.log(logger, level, reason, msg, *args, n=n)
