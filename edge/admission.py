"""Who may send: the source allowlist, known nodes only (with an inventory), and node caps.

The gateway listens on every interface by default and a UDP datagram's source is whatever the
sender writes, so nothing a datagram says is trusted by itself (see docs/security.md):

* **allowlist** (``[ingest] allow = ["192.168.10.0/24"]``, ``--udp-allow``): datagrams from
  other addresses are counted under ``sender-not-allowed`` before they are decoded;
* **known nodes only** with an inventory (the gateway passes it when ``[inventory] known_only``
  is set): a (address, node id) the inventory does not know is counted under ``unknown-node``;
* **caps**: at most ``max_nodes`` nodes at once (``node-cap``) and ``max_new_nodes_per_min`` new
  ones per minute (``new-node-rate``): 256 valid-looking frames with random node ids once made
  256 nodes and 1,285 retained Home Assistant topics.

Every refusal is counted, shown in the summary under ``unknown_senders`` and logged once per
interval ("unknown sender ..."); nothing is dropped silently.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from typing import Protocol

from csi_edge.errors import ConfigError
from csi_edge.loglimit import limited

log = logging.getLogger("csi_edge.admission")

MAX_LISTED = 64  # addresses listed one by one in the summary; the rest are "(others)"


class NodeInventory(Protocol):
    """What admission needs from the node inventory (``csi_edge.inventory.Inventory``)."""

    @property
    def configured(self) -> bool: ...

    def match(self, address: str, node_id: int) -> object | None: ...


def parse_allow(entries: Iterable[str], where: str = "ingest.allow") -> list:
    """``["192.168.10.0/24", "10.0.0.7", "fd00::/8"]`` -> networks, with an error naming the entry."""
    nets = []
    for e in entries:
        try:
            nets.append(ipaddress.ip_network(str(e).strip(), strict=False))
        except ValueError:
            raise ConfigError(
                f"{where}: {e!r} is not an address or network; expected e.g. 192.168.10.0/24, "
                "10.0.0.7 or fd00::/8"
            ) from None
    return nets


class SenderFilter:
    """The address allowlist (empty: everyone may send), with a per-address decision cache."""

    def __init__(self, allow: Iterable[str] = ()) -> None:
        self.nets = parse_allow(allow)
        self._cache: dict[str, bool] = {}
        self.refused: Counter = Counter()  # address -> datagrams refused (bounded)

    @property
    def active(self) -> bool:
        return bool(self.nets)

    def allowed(self, address: str) -> bool:
        ok = self._cache.get(address)
        if ok is None:
            try:
                ip = ipaddress.ip_address(address.split("%")[0])
                if ip.version == 6 and ip.ipv4_mapped is not None:
                    ip = ip.ipv4_mapped
                ok = any(ip.version == n.version and ip in n for n in self.nets)
            except ValueError:
                ok = False
            if len(self._cache) >= 65536:  # spoofed sources are unbounded; the cache is not
                self._cache.clear()
            self._cache[address] = ok
        return ok

    def refuse(self, address: str, n: int = 1) -> None:
        _count(self.refused, address, n)
        limited(
            log,
            logging.WARNING,
            "unknown-sender",
            "unknown sender %s: not in ingest.allow (%s); %d datagram(s) counted under "
            "sender-not-allowed",
            address,
            ", ".join(map(str, self.nets)),
            n,
            n=n,
        )


class NodeAdmission:
    """Decides, once per new (address, node id), whether it becomes a node."""

    def __init__(
        self,
        *,
        inventory: NodeInventory | None = None,
        max_nodes: int = 256,
        max_new_per_min: int = 32,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.inventory = inventory
        self.max_nodes = max_nodes
        self.max_new_per_min = max_new_per_min
        self.clock = clock
        self._admitted: deque = deque()  # admission times within the last minute
        self.refused: Counter = Counter()  # "address#id" -> frames refused (bounded)

    def admit(self, address: str, node_id: int, n_nodes: int) -> str | None:
        """None if this new node may join (and counts it), else the skip reason."""
        inv = self.inventory
        if inv is not None and inv.configured and inv.match(address, node_id) is None:
            return "unknown-node"
        if n_nodes >= self.max_nodes:
            return "node-cap"
        now = self.clock()
        while self._admitted and now - self._admitted[0] >= 60.0:
            self._admitted.popleft()
        if len(self._admitted) >= self.max_new_per_min:
            return "new-node-rate"
        self._admitted.append(now)
        return None

    def refuse(self, key: str, reason: str, n: int) -> None:
        _count(self.refused, key, n)
        why = {
            "unknown-node": "not in the node inventory",
            "node-cap": f"already {self.max_nodes} nodes (ingest.max_nodes)",
            "new-node-rate": f"over {self.max_new_per_min} new nodes in a minute "
            "(ingest.max_new_nodes_per_min)",
        }[reason]
        limited(
            log,
            logging.WARNING,
            "unknown-sender",
            "unknown sender %s: %s; %d frame(s) counted under %s",
            key,
            why,
            n,
            reason,
            n=n,
        )


def _count(counter: Counter, key: str, n: int) -> None:
    if key in counter or len(counter) < MAX_LISTED:
        counter[key] += n
    else:
        counter["(others)"] += n
