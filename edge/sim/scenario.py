"""Scenarios and the simulator entry point: ``simulate(scenario, seed) -> SimResult``.

A :class:`Scenario` is an activity timeline (empty, standing, sitting, walking, waving) plus a
person's physiology, the radio (SNR, AGC steps, layout) and the delivery timing (rate, jitter,
loss, bursts, reboot). :func:`simulate` renders every node to a :class:`~csi_edge.frames.FrameBatch`
(exactly what a decoder would hand the gateway) with ground truth on a uniform grid.
:class:`NodeContent` is the same model as a ``csi_fn(t, seq) -> int8`` for simulated nodes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

import numpy as np

from csi_edge.frames import FrameBatch, FrameFormat, empty_meta
from csi_edge.sim.channel import NodeChannel
from csi_edge.sim.person import ACTIVITIES, Person, Segment, project
from csi_edge.sim.render import agc_gain, choose_layouts, quantize, reference_rms, rssi_dbm
from csi_edge.sim.timing import Timing, frame_times
from csi_edge.sim.waveforms import Physiology

T0 = 1_767_225_600.0  # 2026-01-01 00:00 UTC: simulated receive times are plausible unix times
_CHUNK = 4096  # frames per channel evaluation: bounds memory at ~T*18*64 complex values


@dataclass
class Scenario:
    """Everything that defines a simulated recording (all fields have working defaults)."""

    segments: list[tuple[str, float]] = field(default_factory=lambda: [("sitting", 60.0)])
    breathing_bpm: float = 15.0
    heart_bpm: float = 70.0
    drift: float = 0.03
    breath_amp_mm: float = 5.0
    heart_amp_mm: float = 0.5
    snr_db: float = 25.0
    body_gain: float = 0.25
    rate_hz: float = 20.0
    jitter: float = 0.15
    loss: float = 0.0
    burst_every_s: float = 0.0
    reboot_at_s: float | None = None
    layout: int | str = 64
    agc_steps_per_min: float = 1.0
    # AGC free-running (not locked by the firmware): every frame's gain jitters by this many
    # dB (normal, 1 sigma) on top of the steps. Real ESP32 captures with the AGC unlocked show
    # ~0.5 dB; 0 is a locked AGC.
    agc_jitter_db: float = 0.0
    # per-frame timing offset: the random phase slope across subcarriers, rad per subcarrier
    # (1 sigma); ESP32 captures show slopes of several tenths of a radian per subcarrier
    timing_slope: float = 0.15
    # the room's own slow, coherent change (csi_edge.sim.channel.NodeChannel.environment), as
    # a fraction of the static channel's RMS; 0 = a perfectly static room
    env_drift: float = 0.0
    n_nodes: int = 1
    channel: int = 6
    truth_rate_hz: float = 10.0

    @property
    def duration_s(self) -> float:
        return float(sum(d for _, d in self.segments))

    def __post_init__(self) -> None:
        self.segments = [(str(a), float(d)) for a, d in self.segments]
        for a, d in self.segments:
            if a not in ACTIVITIES:
                raise ValueError(f"unknown activity {a!r}; expected one of {ACTIVITIES}")
            if d <= 0:
                raise ValueError(f"segment {a!r} needs a positive duration, got {d}")

    def to_dict(self) -> dict:
        return asdict(self)


def preset(name: str, duration_s: float = 60.0, **overrides) -> Scenario:
    """Named scenarios: ``still``, ``empty``, ``enter``, ``motion``, ``walk``, ``activities``."""
    d = float(duration_s)
    timelines = {
        "still": [("sitting", d)],
        "standing": [("standing", d)],
        "empty": [("empty", d)],
        "enter": [
            ("empty", min(20.0, d / 3)),
            ("walking", 5.0),
            ("sitting", max(d - min(20.0, d / 3) - 5.0, 1.0)),
        ],
        "motion": _motion_timeline(d),
        "walk": [("walking", d)],
        "activities": _activity_cycle(d),
        # seated, then swaying without rhythm (no breathing rate may be reported over it)
        "sway": [("sitting", min(20.0, d / 3)), ("swaying", max(d - min(20.0, d / 3), 1.0))],
        # seated, then gets up and leaves: presence must hold, then clear
        "leave": [("sitting", d / 2), ("walking", 3.0), ("empty", max(d / 2 - 3.0, 1.0))],
    }
    if name not in timelines:
        raise ValueError(f"unknown scenario {name!r}; expected one of {sorted(timelines)}")
    return Scenario(segments=timelines[name], **overrides)


PRESETS = (
    "still", "standing", "empty", "enter", "motion", "walk", "activities", "sway", "leave"
)


def _motion_timeline(d: float) -> list[tuple[str, float]]:
    """Sitting still with a waving or walking burst every ~40 s."""
    out, t, i = [], 0.0, 0
    while t < d:
        still = min(35.0, d - t)
        out.append(("sitting", still))
        t += still
        if t >= d:
            break
        burst = min(6.0, d - t)
        out.append(("waving" if i % 2 == 0 else "walking", burst))
        t += burst
        i += 1
    return out


def _activity_cycle(d: float) -> list[tuple[str, float]]:
    """Every activity in turn (for pose training data)."""
    order = ["empty", "standing", "walking", "sitting", "waving", "standing", "sitting"]
    seg = max(d / len(order), 1.0)
    return [(a, seg) for a in order]


@dataclass
class Truth:
    """Ground truth on a uniform grid: ``t`` is unix seconds like the frames' ``t_rx``.

    Rates are the person's instantaneous physiological rates, NaN when nobody is present.
    ``keypoints`` [T, 34] are COCO-17 normalized image coordinates (zeros when absent).
    """

    t: np.ndarray
    breathing_bpm: np.ndarray
    heart_bpm: np.ndarray
    presence: np.ndarray
    motion: np.ndarray
    keypoints: np.ndarray
    activity: np.ndarray  # index into csi_edge.sim.person.ACTIVITIES

    def at(self, t: np.ndarray) -> dict[str, np.ndarray]:
        """Truth at arbitrary times (nearest grid sample), e.g. per frame or per estimate."""
        i = np.clip(
            np.round((np.asarray(t) - self.t[0]) / (self.t[1] - self.t[0])).astype(int),
            0,
            len(self.t) - 1,
        )
        return {k: getattr(self, k)[i] for k in TRUTH_FIELDS[1:]}

    def arrays(self) -> dict[str, np.ndarray]:
        """Every field by name (what the ``.truth.npz`` sidecar stores)."""
        return {k: getattr(self, k) for k in TRUTH_FIELDS}


#: Truth's arrays in order, ``t`` first
TRUTH_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Truth))


@dataclass
class SimResult:
    frames: FrameBatch
    truth: Truth
    scenario: Scenario
    seed: int
    t0: float = T0

    @property
    def node_keys(self) -> list[str]:
        return sorted(set(self.frames.node_keys().tolist()))


class World:
    """The person and every node's channel for one (scenario, seed): pure functions of time."""

    def __init__(self, scenario: Scenario, seed: int) -> None:
        self.scenario = scenario
        self.seed = seed
        rng = np.random.default_rng([seed, 0x5151])
        self.person = Person(
            [Segment(a, d) for a, d in scenario.segments], seed_phase=rng.uniform(0, 6.28)
        )
        self.phys = Physiology.random(
            scenario.breathing_bpm,
            scenario.heart_bpm,
            rng,
            drift=scenario.drift,
            breath_amp_m=scenario.breath_amp_mm / 1000,
            heart_amp_m=scenario.heart_amp_mm / 1000,
        )
        self.nodes = [
            NodeChannel.random(rng, i, body_gain=scenario.body_gain, channel=scenario.channel)
            for i in range(scenario.n_nodes)
        ]

    def state(self, t: np.ndarray):
        joints, present, moving = self.person.skeleton(t)
        # Breathing never stops, but while moving the chest reflection is dominated by the motion.
        disp = self.phys.displacement(t)
        return joints, present, moving, disp

    def channel(self, node: int, t: np.ndarray) -> np.ndarray:
        """Complex channel [T, 64] (raw bin order) of ``node`` at scenario times ``t``."""
        out = np.empty((len(t), 64), np.complex128)
        for a in range(0, len(t), _CHUNK):
            tt = t[a : a + _CHUNK]
            joints, present, _, disp = self.state(tt)
            out[a : a + _CHUNK] = self.nodes[node].csi(joints, present, disp)
        if self.scenario.env_drift > 0:
            out += self.nodes[node].environment(t, self.scenario.env_drift, self.seed + node)
        return out

    def truth(self, rate_hz: float) -> Truth:
        t = np.arange(0.0, self.scenario.duration_s, 1.0 / rate_hz)
        joints, present, moving, _ = self.state(t)
        br, hr = self.phys.rates_bpm(t)
        br[~present] = np.nan
        hr[~present] = np.nan
        return Truth(
            t + T0,
            br,
            hr,
            present,
            moving & present,
            project(joints, present),
            self.person.activity_index(t),
        )


def node_source(i: int) -> str:
    """Simulated node i's source address (what a UDP capture would show)."""
    return f"10.0.0.{11 + i}"


def simulate(scenario: Scenario, seed: int = 0) -> SimResult:
    """Render every node of ``scenario`` to frames plus ground truth (deterministic per seed)."""
    world = World(scenario, seed)
    batches = []
    timing = Timing(
        scenario.rate_hz,
        scenario.jitter,
        scenario.loss,
        scenario.burst_every_s,
        scenario.reboot_at_s,
    )
    for i in range(scenario.n_nodes):
        rng = np.random.default_rng([seed, i, 0xC5])
        t_cap, t_rx, seq, local_us = frame_times(scenario.duration_s, timing, rng)
        h = world.channel(i, t_cap)
        n_pairs = choose_layouts(scenario.layout, len(t_cap), rng)
        gain = agc_gain(t_cap, scenario.agc_steps_per_min, rng, scenario.duration_s)
        if scenario.agc_jitter_db > 0:
            gain = gain * 10 ** (rng.normal(0.0, scenario.agc_jitter_db, len(gain)) / 20)
        bufs = quantize(h, n_pairs, gain, scenario.snr_db, rng, slope=scenario.timing_slope)
        meta = empty_meta(len(t_cap))
        meta["t_rx"] = t_rx + T0
        meta["src"] = 0
        meta["node_id"] = i + 1
        meta["seq"] = seq
        meta["rssi"] = rssi_dbm(h, gain, -48.0 - 4 * i, rng)
        meta["noise"] = -92
        meta["freq_mhz"] = int(world.nodes[i].freq_hz / 1e6)
        meta["channel"] = scenario.channel
        meta["n_pairs"] = n_pairs
        meta["sig_mode"] = np.where(n_pairs > 64, 1, 0)
        meta["bandwidth"] = 0
        meta["stbc"] = np.where(n_pairs == 192, 1, 0)
        meta["secondary"] = 0
        meta["local_us"] = local_us
        meta["fmt"] = FrameFormat.RUVIEW_RAW
        offsets = np.zeros(len(bufs) + 1, np.int64)
        np.cumsum([len(b) for b in bufs], out=offsets[1:])
        iq = np.concatenate(bufs) if bufs else np.zeros(0, np.int8)
        batches.append(FrameBatch(meta, iq, offsets, [node_source(i)]))
    frames = FrameBatch.concat(batches)
    if len(frames):
        frames = frames[np.argsort(frames.meta["t_rx"], kind="stable")]
    return SimResult(frames, world.truth(scenario.truth_rate_hz), scenario, seed)


class NodeContent:
    """``csi_fn(t, seq) -> int8 [2 * n_pairs]`` for a simulated node (imaginary first).

    ``t`` is seconds (any origin: the first call's ``t`` is the scenario's start); the radio
    impairments (noise, carrier phase) are drawn from ``(seed, node, seq)``, so replaying a
    sequence number reproduces its frame. Timing, loss and reboots are the sender's business.
    """

    def __init__(
        self,
        scenario: Scenario | None = None,
        node_index: int = 0,
        seed: int = 0,
        n_pairs: int | None = None,
    ):
        self.scenario = scenario or preset("still", 3600.0)
        self.world = World(self.scenario, seed)
        self.node_index = node_index % self.scenario.n_nodes if self.scenario.n_nodes else 0
        if self.scenario.n_nodes <= node_index:
            self.world.nodes.extend(
                NodeChannel.random(
                    np.random.default_rng([seed, j]),
                    j,
                    self.scenario.body_gain,
                    self.scenario.channel,
                )
                for j in range(len(self.world.nodes), node_index + 1)
            )
            self.node_index = node_index
        self.seed = seed
        self.n_pairs = int(
            n_pairs or (self.scenario.layout if self.scenario.layout != "mixed" else 128)
        )
        self._t0: float | None = None
        # the slow AGC's level, from the first 30 s of this node's channel (frames are rendered
        # one at a time, so quantize() cannot take it from the frames themselves)
        probe = np.arange(0.0, min(30.0, self.scenario.duration_s), 0.1)
        self._ref_rms = reference_rms(self.world.channel(self.node_index, probe))

    def __call__(self, t: float, seq: int) -> np.ndarray:
        if self._t0 is None:
            self._t0 = float(t)
        tt = np.array([(float(t) - self._t0) % max(self.scenario.duration_s, 1e-9)])
        rng = np.random.default_rng([self.seed, self.node_index, int(seq) & 0xFFFFFFFF])
        h = self.world.channel(self.node_index, tt)
        gain = np.ones(1)
        return quantize(
            h, np.array([self.n_pairs]), gain, self.scenario.snr_db, rng, self._ref_rms
        )[0]
