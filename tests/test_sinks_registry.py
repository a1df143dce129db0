"""The sink registry: one list, and a new sink is one builder line in it."""

from __future__ import annotations

from csi_edge import sinks
from csi_edge.config import GatewayConfig


def test_registry_lists_every_sink_and_builds_only_the_configured_ones(tmp_path) -> None:
    assert list(sinks.SINKS) == ["console", "jsonl", "http", "mqtt"]
    cfg = GatewayConfig()
    cfg.sinks.console = False
    cfg.sinks.jsonl = str(tmp_path / "r.jsonl")
    built = sinks.build_sinks(cfg)
    try:
        assert [type(s).__name__ for s in built] == ["JsonlSink"]
    finally:
        for s in built:
            s.close()


def test_a_registered_sink_is_built_from_the_config(monkeypatch) -> None:
    """One line in SINKS is enough: the registry, the service's builder and a reload's
    rebuild-only-this-key all pick it up, and it gets the gateway's context."""
    from csi_edge import service

    made = []

    class Probe:
        def publish(self, reports) -> None: ...

        def close(self) -> None: ...

    def probe(cfg, ctx):
        made.append((cfg, ctx))
        return Probe()

    monkeypatch.setitem(sinks.SINKS, "probe", probe)
    cfg = GatewayConfig()
    cfg.sinks.console = False
    built = sinks.build_sinks(cfg)
    assert [type(s).__name__ for s in built] == ["Probe"] and made[0][0] is cfg

    def totals() -> str:
        return "totals"

    def status() -> dict:
        return {}

    by_key = service.build_sink_map(cfg, None, totals, status)
    assert list(by_key) == ["probe"]
    assert made[-1][1] == sinks.SinkContext(None, totals, status)
    cfg.sinks.console = True
    assert list(service.build_sink_map(cfg, only={"probe"})) == ["probe"]  # console not rebuilt
    assert list(service.build_sink_map(cfg, only={"console"})) == ["console"]
