"""Per-node streaming inference built from a bundle's manifest.

* :class:`FeatureBuilder`: raw ESP-IDF CSI (complex, raw bin order) -> the per-frame vector the
  manifest asks for (grid, features, normalization). Uses the DSP in :mod:`csi_edge.dsp`
  (``pose_features``, ``truncate_raw``) so training and serving build inputs the same way.
* :class:`TimeResampler`: a node's irregular frames -> the manifest's uniform ``sample_rate_hz``
  grid, O(1) per frame (linear interpolation between consecutive frames; no frame history).
* :class:`PoseRuntime`: encoder + streaming temporal head (numpy ring buffer, or the exported
  ``temporal_step`` graph), one stream per node; frames of several nodes are batched.
* :class:`WindowRuntime`: whole-window models (RuView ``pose_v1``), a per-node ring buffer of
  the last W frames assembled as the manifest's layout says.
* :class:`VitalsRuntime`: the vital-sign model on a prepared [C, T] window.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from csi_edge.inference.bundle import Bundle, BundleError, load_bundle
from csi_edge.inference.manifest import Manifest, check_source, time_resample
from csi_edge.layout import LLTF_RAW_BINS
from csi_edge.temporal import StreamingHead, TemporalConfig, load_weights


def _limit_blas(n: int | None) -> None:
    """Runtimes cap numpy's BLAS pool (default 1 thread) unless told ``None``: see
    :func:`csi_edge.inference.limit_blas_threads` for why."""
    if n is not None:
        from csi_edge.inference import limit_blas_threads

        limit_blas_threads(n)


class FeatureBuilder:
    """Raw complex CSI [k, n_bins] -> model features [k, dim] as the manifest says."""

    def __init__(self, manifest: Manifest) -> None:
        self.m = manifest
        inp = manifest.input
        self.grid = inp["grid"]
        self.features = list(inp["features"])
        self.sub = manifest.subcarriers
        self.norm = inp.get("norm")
        self.dim = len(self.features) * self.sub
        if self.grid == "lltf-ht20" and self.sub != 52:
            raise BundleError(
                f"{manifest.source}: field 'input.subcarriers' must be 52 for lltf-ht20"
            )

    def __call__(self, csi: np.ndarray) -> np.ndarray:
        csi = np.atleast_2d(csi)
        if self.grid == "lltf-ht20":
            from csi_edge.dsp.features import pose_features

            full = pose_features(csi[:, LLTF_RAW_BINS], norm=self.norm)  # [k, 104]: amp | phase
            parts = {"amplitude": full[:, :52], "phase": full[:, 52:]}
            if self.features == ["amplitude", "phase"]:
                return full
            return np.concatenate([parts[f] for f in self.features], axis=1)
        # raw grids (RuView pose_v1): the first `sub` raw bins, no reordering, no interpolation
        from csi_edge.dsp.grid import truncate_raw

        raw = truncate_raw(csi, self.sub)
        parts = {}
        if "amplitude" in self.features:
            amp = np.abs(raw).astype(np.float32)
            if self.norm is not None:
                amp = (amp - np.float32(self.norm["mean"])) / np.float32(self.norm["std"])
            parts["amplitude"] = amp
        if "phase" in self.features:
            from csi_edge.dsp.phase import sanitize_phase

            parts["phase"] = sanitize_phase(raw)
        return np.concatenate([parts[f] for f in self.features], axis=1).astype(np.float32)


class TimeResampler:
    """One node's frames -> grid points at multiples of 1/rate, by linear interpolation.

    Hand-written rather than :class:`csi_edge.dsp.timegrid.StreamingGrid`: the per-frame path only
    needs the two frames around each grid instant, so it keeps one previous frame and does no
    windowed re-interpolation. A gap longer than ``max_gap_s`` emits nothing inside the gap and
    sets ``gap`` so the caller restarts the node's temporal context.
    """

    def __init__(self, rate_hz: float, max_gap_s: float = 1.0) -> None:
        self.rate = float(rate_hz)
        self.max_gap_s = max_gap_s
        self.t_prev: float | None = None
        self.x_prev: np.ndarray | None = None
        self.next_k: int = 0  # index of the next grid instant to emit
        self.late = 0
        self.gap = False

    def push(self, t: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        t = np.asarray(t, np.float64).reshape(-1)
        x = np.asarray(x, np.float32).reshape(len(t), -1)
        self.gap = False
        if self.t_prev is not None:
            keep = t >= self.t_prev
            if not keep.all():
                self.late += int((~keep).sum())
                t, x = t[keep], x[keep]
        if len(t) == 0:
            return np.zeros(0), np.zeros((0, x.shape[1]), np.float32)
        if self.t_prev is None:
            self.next_k = int(np.ceil(t[0] * self.rate - 1e-9))
            tp, xp = t, x
        else:
            tp, xp = np.r_[self.t_prev, t], np.concatenate([self.x_prev[None], x])
        spans = np.diff(tp)
        big = np.flatnonzero(spans > self.max_gap_s)
        if len(big):  # restart after the last gap
            cut = int(big[-1]) + 1
            tp, xp = tp[cut:], xp[cut:]
            self.next_k = int(np.ceil(tp[0] * self.rate - 1e-9))
            self.gap = True
        last_k = int(np.floor(tp[-1] * self.rate + 1e-9))
        self.t_prev, self.x_prev = float(tp[-1]), xp[-1].copy()
        if last_k < self.next_k:
            return np.zeros(0), np.zeros((0, xp.shape[1]), np.float32)
        tg = np.arange(self.next_k, last_k + 1) / self.rate
        self.next_k = last_k + 1
        if len(tp) == 1:
            return tg, np.repeat(xp, len(tg), axis=0)
        j = np.clip(np.searchsorted(tp, tg, side="left"), 1, len(tp) - 1)
        t0, t1 = tp[j - 1], tp[j]
        span = np.where(t1 > t0, t1 - t0, 1.0)
        w = np.clip((tg - t0) / span, 0.0, 1.0).astype(np.float32)[:, None]
        return tg, xp[j - 1] * (1 - w) + xp[j] * w

    def reset(self) -> None:
        self.t_prev = self.x_prev = None


class GridResampler:
    """:class:`TimeResampler` state for many nodes in arrays (row = node), so a push of one
    frame per node (the usual per-datagram case) is resampled for all nodes at once.

    ``push_single`` is the vectorized path; ``push_row`` handles a row's multi-frame push with
    :class:`TimeResampler`'s own code on the row's state, so both paths share one definition.
    """

    #: take :meth:`_steady` when a push allows it (tests turn it off to compare both paths)
    fast = True

    def __init__(self, rate_hz: float, dim: int, max_gap_s: float = 1.0, capacity: int = 4):
        self.rate, self.dim, self.max_gap_s = float(rate_hz), dim, max_gap_s
        self.t_prev = np.full(capacity, np.nan)
        self.x_prev = np.zeros((capacity, dim), np.float32)
        self.next_k = np.zeros(capacity, np.int64)
        self.late = np.zeros(capacity, np.int64)

    def ensure(self, rows: int) -> None:
        n = len(self.t_prev)
        if rows <= n:
            return
        cap = max(rows, 2 * n)
        grow = cap - n
        self.t_prev = np.r_[self.t_prev, np.full(grow, np.nan)]
        self.x_prev = np.concatenate([self.x_prev, np.zeros((grow, self.dim), np.float32)])
        self.next_k = np.r_[self.next_k, np.zeros(grow, np.int64)]
        self.late = np.r_[self.late, np.zeros(grow, np.int64)]

    def reset(self, row: int) -> None:
        self.t_prev[row] = np.nan

    def push_row(self, row: int, t: np.ndarray, x: np.ndarray):
        """Any number of frames for one row -> (grid times, grid features, gap)."""
        rs = TimeResampler(self.rate, self.max_gap_s)
        if np.isfinite(self.t_prev[row]):
            rs.t_prev, rs.x_prev = float(self.t_prev[row]), self.x_prev[row]
            rs.next_k = int(self.next_k[row])
        tg, xg = rs.push(t, x)
        self.late[row] += rs.late
        if rs.t_prev is not None:
            self.t_prev[row], self.x_prev[row], self.next_k[row] = rs.t_prev, rs.x_prev, rs.next_k
        return tg, xg, rs.gap

    def _steady(self, rows: np.ndarray, t: np.ndarray, x: np.ndarray, tp: np.ndarray):
        """:meth:`push_single` when every row has a previous frame, none is late or after a
        gap and none spans two grid instants (a fleet's usual frame): the same operations on
        the rows at once, with no restart, repeat or gather bookkeeping; None otherwise."""
        span = t - tp  # NaN for a fresh row: both comparisons below are False
        if not (_all(span >= 0.0) and _all(span <= self.max_gap_s)):
            return None
        at = _as_slice(rows)  # the usual rows 0..n-1: views instead of gathers and scatters
        k0 = self.next_k[at].copy() if isinstance(at, slice) else self.next_k[at]  # rewritten below
        last_k = np.floor(t * self.rate + 1e-9).astype(np.int64)
        n_pts = last_k - k0 + 1
        if _any(n_pts > 1):
            return None
        emit = n_pts > 0
        x_prev = self.x_prev[at].copy() if isinstance(at, slice) else self.x_prev[at]
        self.t_prev[at], self.x_prev[at] = t, x
        if _all(emit):
            self.next_k[at] = last_k + 1
        else:
            self.next_k[at] = np.where(emit, last_k + 1, k0)
            sel = np.flatnonzero(emit)
            rows, t, x, tp, k0, x_prev = rows[sel], t[sel], x[sel], tp[sel], k0[sel], x_prev[sel]
        tg = k0 / self.rate
        span = np.where(t > tp, t - tp, 1.0)
        w = _clip((tg - tp) / span, 0.0, 1.0).astype(np.float32)[:, None]
        return rows, tg, x_prev * (1 - w) + x * w, rows[:0]

    def push_single(self, rows: np.ndarray, t: np.ndarray, x: np.ndarray):
        """One frame per row (rows distinct) -> (point rows, grid times, features, gap rows).

        Points of a row are consecutive, in time order. Bit-identical to :meth:`push_row`."""
        t = np.asarray(t, np.float64)
        x = np.asarray(x, np.float32)
        tp = self.t_prev[rows]
        steady = self._steady(rows, t, x, tp) if self.fast else None
        if steady is not None:
            return steady
        fresh = np.isnan(tp)
        late = ~fresh & (t < tp)
        self.late[rows[late]] += 1
        gap = ~fresh & ~late & (t - tp > self.max_gap_s)
        restart = fresh | gap
        k0 = np.where(restart, np.ceil(t * self.rate - 1e-9), self.next_k[rows]).astype(np.int64)
        last_k = np.floor(t * self.rate + 1e-9).astype(np.int64)
        ok = ~late
        r_ok = rows[ok]
        x_prev = self.x_prev[r_ok]  # before this frame: the left end of the interpolation
        self.t_prev[r_ok], self.x_prev[r_ok] = t[ok], x[ok]
        n_pts = np.where(ok, np.maximum(last_k - k0 + 1, 0), 0)
        self.next_k[rows] = np.where(
            ok & (n_pts > 0), last_k + 1, np.where(ok, k0, self.next_k[rows])
        )
        sel = np.repeat(np.arange(len(rows)), n_pts)
        if len(sel) == 0:
            return rows[:0], np.zeros(0), np.zeros((0, x.shape[1]), np.float32), rows[gap]
        first = np.repeat(np.cumsum(n_pts) - n_pts, n_pts)
        k = k0[sel] + (np.arange(len(sel)) - first)
        tg = k / self.rate
        xs = x[sel]
        pair = ~restart[sel]  # interpolate from the row's previous frame
        if pair.any():
            prev_of = np.full(len(rows), -1)
            prev_of[np.flatnonzero(ok)] = np.arange(len(r_ok))
            t0, t1 = tp[sel][pair], t[sel][pair]
            span = np.where(t1 > t0, t1 - t0, 1.0)
            w = np.clip((tg[pair] - t0) / span, 0.0, 1.0).astype(np.float32)[:, None]
            xs[pair] = x_prev[prev_of[sel[pair]]] * (1 - w) + x[sel[pair]] * w
        return rows[sel], tg, xs, rows[gap]


@dataclass
class PoseOutputs:
    """The outputs of one push as arrays: entry i is node ``names[rows[i]]`` at grid time
    ``t[i]``."""

    rows: np.ndarray  # [b] runtime rows
    names: list[str]  # row -> node key (the runtime's list)
    t: np.ndarray  # [b]
    keypoints: np.ndarray  # [b, 17, 2]
    confidence: np.ndarray  # [b, 17]

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def nodes(self) -> list[str]:
        return [self.names[r] for r in self.rows.tolist()]

    def frames(self) -> list[PoseFrame]:
        return [
            PoseFrame(n, float(t), k.copy(), c.copy())
            for n, t, k, c in zip(self.nodes, self.t, self.keypoints, self.confidence, strict=True)
        ]

    def latest(self) -> PoseOutputs:
        """The newest output of each row (what a tracker at report rate needs)."""
        if _increasing(self.rows):  # each row once (one grid point per node): all newest
            return self
        rev = self.rows[::-1]
        _, first = np.unique(rev, return_index=True)
        idx = np.sort(len(self.rows) - 1 - first)
        return PoseOutputs(
            self.rows[idx], self.names, self.t[idx], self.keypoints[idx], self.confidence[idx]
        )

    @classmethod
    def concat(cls, parts: list[PoseOutputs], names: list[str]) -> PoseOutputs:
        return cls(
            np.concatenate([p.rows for p in parts]),
            names,
            np.concatenate([p.t for p in parts]),
            np.concatenate([p.keypoints for p in parts]),
            np.concatenate([p.confidence for p in parts]),
        )


@dataclass
class PoseFrame:
    """One model output for one node at one grid time."""

    node: str
    t: float
    keypoints: np.ndarray  # [17, 2] normalized x, y
    confidence: np.ndarray | None  # [17] or None when the model has no confidence output


class _Nodes:
    """node key -> stream row, growing the per-row state on demand."""

    def __init__(self) -> None:
        self.rows: dict[str, int] = {}

    def row(self, node: str) -> tuple[int, bool]:
        r = self.rows.get(node)
        if r is None:
            r = self.rows[node] = len(self.rows)
            return r, True
        return r, False


def _as_rows(rows: list[int]) -> slice | np.ndarray:
    """Contiguous ascending rows -> a slice (the batched, view-only path of the head)."""
    if rows and rows == list(range(rows[0], rows[0] + len(rows))):
        return slice(rows[0], rows[0] + len(rows))
    return np.asarray(rows, np.intp)


class PoseRuntime:
    """Encoder + streaming temporal head, one ring-buffer stream per node.

    ``head="numpy"`` runs :class:`csi_edge.temporal.StreamingHead` from the bundle's weights (ring
    buffer in place, nodes batched); ``head="graph"`` runs the exported ``temporal_step`` model,
    feeding it the cache and storing the cache it returns. Default: the graph for LiteRT
    variants (LiteRT's per-call overhead is ~2 us, so its step beat numpy's ~25 us at batch 1
    in ``csi-edge bench``), numpy otherwise (onnxruntime's step graph is no faster than numpy).
    """

    def __init__(
        self,
        bundle: Bundle,
        capacity: int = 4,
        head: str | None = None,
        max_gap_s: float = 1.0,
        blas_threads: int | None = 1,
    ) -> None:
        _limit_blas(blas_threads)
        m = bundle.manifest
        if m.task != "pose" or "encoder" not in bundle.models:
            raise BundleError(f"{m.source}: PoseRuntime needs a pose bundle with an 'encoder'")
        self.bundle, self.m = bundle, m
        self.cfg = TemporalConfig.from_dict(m.temporal)
        self.features = FeatureBuilder(m)
        self.encoder = bundle.models["encoder"]
        if head is None:  # auto: the faster of the two on this variant (csi-edge bench)
            lite_step = (
                "temporal_step" in bundle.models
                and bundle.models["temporal_step"].backend == "litert"
            )
            head = "numpy" if bundle.weights_path is not None and not lite_step else "graph"
        self.head_kind = head
        if head == "numpy":
            if bundle.weights_path is None:
                raise BundleError(f"{m.source}: head 'numpy' needs a 'weights' .npz in 'files'")
            self.head = StreamingHead(load_weights(bundle.weights_path), self.cfg, capacity)
        elif head == "graph":
            if "temporal_step" not in bundle.models:
                raise BundleError(f"{m.source}: head 'graph' needs a 'temporal_step' model")
            self.step_model = bundle.models["temporal_step"]
            c = self.cfg
            shape = (capacity, c.heads_kv, c.window, c.head_dim)
            self.k_cache = np.zeros(shape, np.float32)
            self.v_cache = np.zeros(shape, np.float32)
            self.count = np.zeros(capacity, np.int64)
        else:
            raise ValueError(f"head must be 'numpy' or 'graph', got {head!r}")
        self.capacity = capacity
        self.nodes = _Nodes()
        self.names: list[str] = []  # row -> node key
        self.max_gap_s = max_gap_s
        self.resample = time_resample(m) != "none"
        self.grid = GridResampler(m.input["sample_rate_hz"], self.features.dim, max_gap_s, capacity)
        self._key_rows: tuple[list[str], int, np.ndarray] | None = None  # push_batch's last keys

    # -- streams -----------------------------------------------------------------------------
    def attach(self, node: str, n_bins: int | None = None) -> int:
        """Give ``node`` a stream; with ``n_bins`` check its frames fit the model (else raise)."""
        if n_bins is not None:
            check_source(self.m, node, n_bins)
        row, new = self.nodes.row(node)
        if new:
            if row >= self.capacity:
                self._grow(max(2 * self.capacity, row + 1))
            self.names.append(node)
            self.grid.ensure(row + 1)
            self.reset(node)
        return row

    def _grow(self, capacity: int) -> None:
        if self.head_kind == "numpy":
            self.head.resize(capacity)
        else:
            for name in ("k_cache", "v_cache", "count"):
                old = getattr(self, name)
                new = np.zeros((capacity,) + old.shape[1:], old.dtype)
                new[: len(old)] = old
                setattr(self, name, new)
        self.capacity = capacity

    def reset(self, node: str) -> None:
        self._reset_rows(np.array([self.nodes.rows[node]], np.intp))

    def _reset_rows(self, rows: np.ndarray) -> None:
        """Restart the temporal context of ``rows`` (after a gap in a node's frames)."""
        if self.head_kind == "numpy":
            self.head.reset(rows)
        else:
            self.count[rows] = 0

    # -- the per-frame step ------------------------------------------------------------------
    def step(
        self, rows: list[int] | np.ndarray, features: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """One frame for each stream in ``rows`` (distinct): encoder (batched) then the
        temporal step."""
        emb = self.encoder.run({"features": np.ascontiguousarray(features, np.float32)})[
            "embedding"
        ]
        # contiguous rows become a slice: the head and the caches are touched as views
        idx = _as_rows(rows) if isinstance(rows, list) else _as_slice(np.asarray(rows, np.intp))
        if self.head_kind == "numpy":
            return self.head.step(emb, idx)
        # the graph takes the caches and returns new ones (an O(W) copy in the graph itself)
        out = self.step_model.run(
            {
                "embedding": emb,
                "k_cache": self.k_cache[idx],
                "v_cache": self.v_cache[idx],
                "count": self.count[idx],
            }
        )
        self.k_cache[idx] = out["k_cache_out"]
        self.v_cache[idx] = out["v_cache_out"]
        self.count[idx] += 1
        return out["keypoints"], out["confidence"]

    def push(self, frames: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> list[PoseFrame]:
        """New frames per node ``{node: (t_rx [k], raw complex CSI [k, n_bins])}`` -> outputs."""
        return self.push_arrays(frames).frames()

    def push_arrays(self, frames: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> PoseOutputs:
        """:meth:`push` with the outputs as arrays (no per-output Python objects)."""
        by_width: dict[int, list[str]] = {}
        for node, (_, csi) in frames.items():
            by_width.setdefault(np.shape(csi)[-1], []).append(node)
        parts = []
        for nodes in by_width.values():
            ts = [np.asarray(frames[n][0], np.float64).reshape(-1) for n in nodes]
            csi = np.concatenate([np.atleast_2d(frames[n][1]) for n in nodes])
            idx = np.repeat(np.arange(len(nodes)), [len(t) for t in ts])
            parts.append(self.push_batch(nodes, idx, np.concatenate(ts), csi))
        return parts[0] if len(parts) == 1 else PoseOutputs.concat(parts, self.names)

    def push_batch(
        self, keys: list[str], node_idx: np.ndarray, t: np.ndarray, csi: np.ndarray
    ) -> PoseOutputs:
        """Frames of many nodes in one array: frame i is node ``keys[node_idx[i]]`` at ``t[i]``
        (raw complex CSI ``csi[i]``), each node's frames in time order.

        One feature call for the whole batch; then, for the j-th frame of every node at once,
        time-grid resampling and the model step batched across nodes (nodes in row order).
        """
        csi = np.atleast_2d(csi)
        cached = self._key_rows
        if cached is not None and cached[1] == csi.shape[1] and cached[0] == keys:
            key_rows = cached[2]  # the same nodes as the last batch: attached and checked
        else:
            key_rows = np.fromiter((self.attach(k, csi.shape[1]) for k in keys), np.intp, len(keys))
            self._key_rows = (list(keys), csi.shape[1], key_rows)
        rows = key_rows[np.asarray(node_idx, np.intp)]
        t = np.asarray(t, np.float64).reshape(-1)
        feats = self.features(csi)
        out = _OutputBuffer()
        for sel in _layers(rows):
            if self.resample:
                pr, tg, xg, gap_rows = self.grid.push_single(rows[sel], t[sel], feats[sel])
                if len(gap_rows):
                    self._reset_rows(gap_rows)
            else:
                pr, tg, xg = rows[sel], t[sel], feats[sel]
            for rnd in _layers(pr):  # a node with several grid points: one per round
                if isinstance(rnd, slice):  # every row once, in row order: views, no gathers
                    r, tr, xr = pr, tg, xg
                else:
                    order = rnd[np.argsort(pr[rnd], kind="stable")]
                    r, tr, xr = pr[order], tg[order], xg[order]
                kp, conf = self.step(r, xr)
                out.add(r, tr, kp, conf)
        return out.result(self.names)


def _all(a: np.ndarray) -> bool:
    """``a.all()`` without numpy's Python wrapper (~2x cheaper on tiny arrays)."""
    return bool(np.logical_and.reduce(a, axis=None))


def _any(a: np.ndarray) -> bool:
    return bool(np.logical_or.reduce(a, axis=None))


_clip = np.clip if not hasattr(np, "_core") else np._core.umath.clip  # the ufunc, no wrapper


def _as_slice(rows: np.ndarray) -> slice | np.ndarray:
    """Rows a, a+1, ..., b -> slice(a, b + 1) (views), else the index array."""
    n = len(rows)
    if n and int(rows[-1]) - int(rows[0]) + 1 == n and (n < 2 or _all(rows[1:] > rows[:-1])):
        return slice(int(rows[0]), int(rows[-1]) + 1)
    return rows


def _increasing(rows: np.ndarray) -> bool:
    """Strictly increasing (so each row once, in order): one comparison, no sort."""
    return len(rows) < 2 or _all(rows[1:] > rows[:-1])


def _layers(rows: np.ndarray) -> list[np.ndarray | slice]:
    """Indices of ``rows`` split so each row appears at most once per part, order kept:
    part j holds every row's j-th occurrence. ``[slice(None)]`` when ``rows`` is strictly
    increasing (the usual batch: each node once, in row order), so callers take views."""
    if len(rows) == 0:
        return []
    if _increasing(rows):
        return [slice(None)]
    order = np.argsort(rows, kind="stable")
    s = rows[order]
    change = s[1:] != s[:-1]
    if change.all():  # the usual case: each row once
        return [np.arange(len(rows))]
    start = np.concatenate([[0], np.flatnonzero(change) + 1])
    rank = np.arange(len(s)) - np.repeat(start, np.diff(np.r_[start, len(s)]))
    layer = np.empty(len(rows), np.intp)
    layer[order] = rank
    if rank.max() == 0:
        return [np.arange(len(rows))]
    return [np.flatnonzero(layer == j) for j in range(int(rank.max()) + 1)]


class _OutputBuffer:
    def __init__(self) -> None:
        self.parts: list[tuple] = []

    def add(self, rows, t, kp, conf) -> None:
        # the head returns views into its buffers: copy before the next step reuses them
        self.parts.append((rows, t, np.array(kp).reshape(-1, 17, 2), np.array(conf)))

    def result(self, names: list[str]) -> PoseOutputs:
        if not self.parts:
            z = np.zeros(0)
            return PoseOutputs(
                np.zeros(0, np.intp), names, z, z.reshape(0, 17, 2), z.reshape(0, 17)
            )
        if len(self.parts) == 1:  # already copies (add): no second concatenate + astype
            r, t, k, c = self.parts[0]
        else:
            r, t, k, c = (np.concatenate(x) for x in zip(*self.parts, strict=True))
        return PoseOutputs(
            r, names, t, k.astype(np.float32, copy=False), c.astype(np.float32, copy=False)
        )


class WindowRuntime:
    """Whole-window models: a ring buffer of the last W frames per node, assembled per manifest.

    For ``frame-major-reshape`` (RuView pose_v1) the W frames of S values are laid out
    frame-major (oldest first) and reshaped straight to [S, W], no transpose (MODEL_SPEC.md
    "RuView pose_v1"). ``hop``: run the model every ``hop`` new frames once the window is full.
    """

    def __init__(
        self, bundle: Bundle, capacity: int = 4, hop: int = 1, blas_threads: int | None = 1
    ) -> None:
        _limit_blas(blas_threads)
        m = bundle.manifest
        if "window" not in bundle.models:
            raise BundleError(f"{m.source}: WindowRuntime needs a 'window' model in 'files'")
        if m.input["layout"] != "frame-major-reshape":
            raise BundleError(
                f"{m.source}: field 'input.layout' is {m.input['layout']!r}; the per-node window "
                "runtime builds 'frame-major-reshape' windows (use VitalsRuntime for channels-time)"
            )
        self.bundle, self.m = bundle, m
        self.model = bundle.models["window"]
        self.in_name = next(iter(self.model.inputs))
        self.out_name = next(iter(self.model.outputs))
        self.features = FeatureBuilder(m)
        self.W, self.S = m.window, self.features.dim
        self.hop = max(1, int(hop))
        self.ring = np.zeros((capacity, self.W, self.S), np.float32)
        self.count = np.zeros(capacity, np.int64)
        self.nodes = _Nodes()
        self._order = (np.arange(self.W)[None, :] + np.arange(self.W)[:, None]) % self.W
        self._win: dict[int, np.ndarray] = {}
        # RuView pose_v1 takes frames as they arrive ("none"); others get the uniform grid
        self.resample = time_resample(m) != "none"
        self.resamplers: dict[str, TimeResampler] = {}

    def attach(self, node: str, n_bins: int | None = None) -> int:
        if n_bins is not None:
            check_source(self.m, node, n_bins)
        row, new = self.nodes.row(node)
        if row >= len(self.ring):
            cap = max(2 * len(self.ring), row + 1)
            ring = np.zeros((cap, self.W, self.S), np.float32)
            ring[: len(self.ring)] = self.ring
            cnt = np.zeros(cap, np.int64)
            cnt[: len(self.count)] = self.count
            self.ring, self.count = ring, cnt
        if new:
            self.count[row] = 0
        return row

    def append(self, row: int, x: np.ndarray) -> None:
        """Write one frame's features into the node's ring (the window is never shifted)."""
        self.ring[row, self.count[row] % self.W] = x
        self.count[row] += 1

    def assemble(self, rows: list[int]) -> np.ndarray:
        """Model input [b, S, W] for full windows of ``rows`` (oldest frame first)."""
        b = len(rows)
        out = self._win.get(b)
        if out is None:
            out = self._win[b] = np.empty((b, self.W, self.S), np.float32)
        for j, r in enumerate(rows):
            start = int(self.count[r] % self.W)  # oldest slot once the ring is full
            np.take(self.ring[r], self._order[start], axis=0, out=out[j])
        return out.reshape(b, self.S, self.W)  # frame-major -> (S, W) without a transpose

    def push(self, frames: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> list[PoseFrame]:
        """``{node: (t_rx [k], raw CSI [k, n_bins])}`` -> one output per node and full window."""
        ready: list[tuple[str, int, float]] = []
        results: list[PoseFrame] = []
        for node, (t, csi) in frames.items():
            csi = np.atleast_2d(csi)
            row = self.attach(node, csi.shape[1])
            feats = self.features(csi)
            t = np.asarray(t, np.float64).reshape(-1)
            if self.resample:
                rs = self.resamplers.get(node)
                if rs is None:
                    rs = self.resamplers[node] = TimeResampler(self.m.input["sample_rate_hz"])
                t, feats = rs.push(t, feats)
                if rs.gap:
                    self.count[row] = 0  # a window across a gap is not one the model knows
            last = len(feats) - 1
            for i in range(len(feats)):
                self.append(row, feats[i])
                n = int(self.count[row])
                if n >= self.W and (n - self.W) % self.hop == 0:
                    if i < last:  # the node's next frame would overwrite this window: run now
                        self._flush([(node, row, float(t[i]))], results)
                    else:  # the node's newest window: batched with the other nodes below
                        ready.append((node, row, float(t[i])))
        self._flush(ready, results)
        return results

    def push_batch(
        self, keys: list[str], node_idx: np.ndarray, t: np.ndarray, csi: np.ndarray
    ) -> PoseOutputs:
        """:meth:`PoseRuntime.push_batch`'s interface (window models emit one output per hop,
        so the per-node loop here is per window, not per frame). Confidence is 1 (none)."""
        node_idx = np.asarray(node_idx)
        outs = self.push({k: (t[node_idx == i], csi[node_idx == i]) for i, k in enumerate(keys)})
        names = list(self.nodes.rows)  # insertion order = row order
        if not outs:
            z = np.zeros(0)
            return PoseOutputs(
                np.zeros(0, np.intp), names, z, z.reshape(0, 17, 2), z.reshape(0, 17)
            )
        return PoseOutputs(
            np.array([self.nodes.rows[o.node] for o in outs], np.intp),
            names,
            np.array([o.t for o in outs]),
            np.stack([o.keypoints for o in outs]).astype(np.float32),
            np.ones((len(outs), 17), np.float32),
        )

    def _flush(self, ready: list[tuple[str, int, float]], results: list[PoseFrame]) -> None:
        if not ready:
            return
        x = self.assemble([r for _, r, _ in ready])
        y = self.model.run({self.in_name: x})[self.out_name]
        for j, (node, _, t) in enumerate(ready):
            results.append(PoseFrame(node, t, y[j].reshape(-1, 2).copy(), None))


class VitalsRuntime:
    """The vital-sign model on prepared windows [C, T] (see ``csi_edge.dsp.vitals_window``)."""

    def __init__(self, bundle: Bundle) -> None:
        m = bundle.manifest
        if m.task != "vitals" or "window" not in bundle.models:
            raise BundleError(f"{m.source}: VitalsRuntime needs a vitals bundle with a 'window'")
        self.m, self.model = m, bundle.models["window"]
        self.variant = bundle.variant.name  # what the estimator process opens again
        self.in_name = next(iter(self.model.inputs))
        self.out_name = next(iter(self.model.outputs))
        self.names = list(m.output["names"])

    def run(self, window: np.ndarray) -> list[dict[str, float]]:
        x = np.asarray(window, np.float32)
        if x.ndim == 2:
            x = x[None]
        y = self.model.run({self.in_name: x})[self.out_name]
        out = []
        for row in y:
            d = dict(zip(self.names, (float(v) for v in row), strict=True))
            if "breathing_bpm" in d:  # MODEL_SPEC: the model outputs (bpm - 20) / 10
                d["breathing_bpm"] = d["breathing_bpm"] * 10.0 + 20.0
            out.append(d)
        return out


def open_runtime(
    path, variant: str | None = None, capacity: int = 4, threads: int = 1, blas_threads=1, **kw
):
    """Load a bundle and wrap it in the runtime its manifest calls for.

    ``blas_threads`` caps numpy's BLAS pool for the process (see
    :func:`csi_edge.inference.limit_blas_threads`); None leaves it alone.
    """
    _limit_blas(blas_threads)
    b = load_bundle(path, variant=variant, threads=threads)
    if b.manifest.task == "vitals":
        return VitalsRuntime(b)
    if "encoder" in b.models:
        return PoseRuntime(b, capacity=capacity, blas_threads=blas_threads, **kw)
    return WindowRuntime(b, capacity=capacity, blas_threads=blas_threads, **kw)
