"""Architecture registry: every model ``csi-edge export --arch NAME`` knows how to build.

An :class:`Arch` says how to build the torch module from a config, which graphs (roles) are
exported from it, their input/output names, and how to generate inputs for parity checks.
Torch is imported only when a module is built, so listing the registry is cheap.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Tensor:
    """One graph input: name, shape with 'B' for the batch axis (and 'T' for time), dtype."""

    name: str
    shape: tuple[Any, ...]
    dtype: str = "float32"


@dataclass(frozen=True)
class Graph:
    """One exported graph (a manifest ``files`` role)."""

    role: str
    inputs: tuple[Tensor, ...]
    outputs: tuple[str, ...]
    wrap: Callable[[Any], Any]  # model -> nn.Module whose forward(*inputs) is this graph
    quantize: bool = True  # worth static INT8 (caches and counters are not)
    dynamic: dict[str, dict[int, str]] = field(default_factory=dict)  # extra dynamic axes

    def sample(self, batch: int, rng: np.random.Generator, sizes: dict[str, int]) -> dict:
        """Generated inputs for parity checks ('B' -> batch, named sizes filled in)."""
        out = {}
        for t in self.inputs:
            shape = tuple(batch if d == "B" else sizes.get(d, d) for d in t.shape)
            if t.dtype == "int64":
                out[t.name] = rng.integers(0, 3 * sizes.get("W", 8), size=shape).astype(np.int64)
            else:
                out[t.name] = rng.standard_normal(shape).astype(np.float32)
        return out


@dataclass(frozen=True)
class Arch:
    name: str
    task: str  # "pose" | "vitals"
    build: Callable[[dict], Any]  # config overrides -> torch module
    graphs: tuple[Graph, ...]
    sizes: Callable[[Any], dict[str, int]]  # model -> named dims for sample inputs
    describe: Callable[[Any], dict]  # model -> manifest fields (input/output/temporal)
    primary: str  # role exported to the ``-o MODEL.onnx`` path

    def graph(self, role: str) -> Graph:
        for g in self.graphs:
            if g.role == role:
                return g
        raise KeyError(role)


# -- csi-edge-pose -------------------------------------------------------------------------
def _build_pose(cfg: dict) -> Any:
    from csi_edge.export.arch.pose import CsiEdgePose, PoseConfig

    return CsiEdgePose(PoseConfig(**cfg))


def _pose_step(model: Any) -> Any:
    from csi_edge.export.arch.pose import PoseStepGraph

    return PoseStepGraph(model)


def _pose_encoder(model: Any) -> Any:
    from csi_edge.export.arch.pose import PoseEncoderGraph

    return PoseEncoderGraph(model)


def _pose_describe(model: Any) -> dict:
    c = model.cfg
    return {
        "input": {
            "features": ["amplitude", "phase"],
            "grid": "lltf-ht20",
            "subcarriers": c.features // 2,
            "resample": "linear",
            "window": c.window,
            "sample_rate_hz": 20.0,
            "layout": "frame-major",
        },
        "output": {"layout": "coco17-xy", "confidence": True},
        "temporal": {
            "heads_q": c.heads_q,
            "heads_kv": c.heads_kv,
            "head_dim": c.head_dim,
            "window": c.window,
            "embed_dim": c.embed_dim,
        },
    }


def _pose_sizes(model: Any) -> dict[str, int]:
    c = model.cfg
    return {
        "F": c.features,
        "D": c.embed_dim,
        "Hkv": c.heads_kv,
        "W": c.window,
        "dh": c.head_dim,
        "T": min(c.window + 5, 2 * c.window),
    }


POSE = Arch(
    name="csi-edge-pose",
    task="pose",
    build=_build_pose,
    graphs=(
        Graph("encoder", (Tensor("features", ("B", "F")),), ("embedding",), _pose_encoder),
        Graph(
            "temporal_step",
            (
                Tensor("embedding", ("B", "D")),
                Tensor("k_cache", ("B", "Hkv", "W", "dh")),
                Tensor("v_cache", ("B", "Hkv", "W", "dh")),
                Tensor("count", ("B",), "int64"),
            ),
            ("keypoints", "confidence", "k_cache_out", "v_cache_out"),
            _pose_step,
            quantize=False,
        ),
        Graph(
            "full",
            (Tensor("features", ("B", "T", "F")),),
            ("keypoints", "confidence"),
            lambda m: m,
            dynamic={"features": {1: "time"}, "keypoints": {1: "time"}, "confidence": {1: "time"}},
        ),
    ),
    sizes=_pose_sizes,
    describe=_pose_describe,
    primary="full",
)


# -- csi-edge-vitals -----------------------------------------------------------------------
def _build_vitals(cfg: dict) -> Any:
    from csi_edge.export.arch.vitals import CsiEdgeVitals, VitalsConfig

    return CsiEdgeVitals(VitalsConfig(**cfg))


def _vitals_describe(model: Any) -> dict:
    c = model.cfg
    return {
        "input": {
            "features": ["amplitude"],
            "grid": "lltf-ht20",
            "subcarriers": 52,
            "channels": c.channels,
            "channel_select": "top-band-snr",
            "resample": "linear",
            "window": c.samples,
            "sample_rate_hz": c.sample_rate_hz,
            "layout": "channels-time",
        },
        "output": {
            "layout": "vitals",
            "names": ["breathing_bpm", "presence_logit", "motion_logit"],
            "breathing_bpm": "out * 10 + 20",
        },
    }


VITALS = Arch(
    name="csi-edge-vitals",
    task="vitals",
    build=_build_vitals,
    graphs=(
        Graph(
            "window",
            (Tensor("window", ("B", "C", "S")),),
            ("vitals",),
            lambda m: m,
        ),
    ),
    sizes=lambda m: {"C": m.cfg.channels, "S": m.cfg.samples},
    describe=_vitals_describe,
    primary="window",
)


# -- ruview-pose-v1 ------------------------------------------------------------------------
def _build_ruview(cfg: dict) -> Any:
    if cfg:
        raise ValueError("ruview-pose-v1 has a fixed published layout and takes no config")
    from csi_edge.export.arch.ruview import RuViewPoseV1

    return RuViewPoseV1()


RUVIEW = Arch(
    name="ruview-pose-v1",
    task="pose",
    build=_build_ruview,
    graphs=(Graph("window", (Tensor("csi_window", ("B", 56, 20)),), ("keypoints",), lambda m: m),),
    sizes=lambda m: {},
    describe=lambda m: {
        "input": {
            "features": ["amplitude"],
            "grid": "raw-first-56",
            "subcarriers": 56,
            "resample": "truncate",
            "window": 20,
            "sample_rate_hz": 20.0,
            # frame-major concat reshaped to (56, 20) with no transpose, as RuView's runtime does
            "layout": "frame-major-reshape",
        },
        "output": {"layout": "coco17-xy", "confidence": False},
    },
    primary="window",
)

ARCHS: dict[str, Arch] = {a.name: a for a in (POSE, VITALS, RUVIEW)}


def get_arch(name: str) -> Arch:
    """The registered architecture ``name``; KeyError lists the known names."""
    try:
        return ARCHS[name]
    except KeyError:
        raise KeyError(
            f"unknown architecture {name!r}; known: {', '.join(sorted(ARCHS))}"
        ) from None
