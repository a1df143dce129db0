"""Where reports go: console, JSONL files, the HTTP live view, MQTT with Home Assistant discovery.

A sink has ``publish(reports)`` (called about once a second from the gateway loop; must not block
for long) and ``close()``. A sink that raises is counted by the gateway (``sink-error:<Sink>``
in its skips) and the other sinks still get the report; a broker that goes away is retried by
the client library, not fatal.
"""

from __future__ import annotations

from csi_edge.report import Sink

__all__ = ["Sink"]
