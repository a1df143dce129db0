"""SIGHUP with changed [models]: the pose model is swapped live, the vitals model needs a restart."""

from __future__ import annotations

import asyncio
import copy

from csi_edge.app.reload import Reloader
from csi_edge.config import GatewayConfig
from csi_edge.service import build_gateway


def test_a_new_pose_model_is_loaded_live_and_a_new_vitals_model_asks_for_a_restart():
    cfg = GatewayConfig()
    cfg.ingest.udp = ["127.0.0.1:0"]
    cfg.sinks.console = False
    cfg.models.pose = cfg.models.vitals = ""
    gw = build_gateway(cfg)
    try:
        assert gw.pose is None
        new = copy.deepcopy(cfg)
        new.models.pose = "csi-edge-pose"
        new.models.vitals = "csi-edge-vitals"
        said = asyncio.run(Reloader(gw, lambda: new)())
        assert "models reloaded" in said and gw.pose is not None
        assert "models.vitals" in said and "restart" in said
        assert gw.config.models.vitals == "" and gw.vitals_model is None
        assert len(gw.tracker.rows) == 0
    finally:
        close = getattr(gw.estimators, "close", None)
        if close is not None:
            close()
