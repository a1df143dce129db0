"""Signal conditioning for CSI, vectorized over frames (numpy/scipy).

Stages (each its own module, each rate-agnostic: time always comes from receive timestamps):

* :mod:`csi_edge.dsp.phase`     amplitude and sanitized phase (unwrap, linear term removed)
* :mod:`csi_edge.dsp.hampel`    Hampel outlier filter over time
* :mod:`csi_edge.dsp.grid`      null/guard bins, subcarrier-grid resampling (linear, cubic, truncate)
* :mod:`csi_edge.dsp.norm`      per-subcarrier normalization with running per-node statistics
* :mod:`csi_edge.dsp.timegrid`  irregular receive times -> uniform time grid (jitter, gaps, bursts)
* :mod:`csi_edge.dsp.features`  model inputs: :func:`pose_features` [N, 104], :func:`vitals_window` [8, 256]
"""

from csi_edge.dsp.features import (
    POSE_FEATURES,
    VITALS_CHANNELS,
    VITALS_RATE_HZ,
    VITALS_SAMPLES,
    frame_features,
    pose_features,
    vitals_window,
    vitals_window_from_grid,
)
from csi_edge.dsp.grid import (
    LLTF_SUBCARRIERS,
    drop_dc,
    null_bins,
    raw_bin_index,
    resample_subcarriers,
    truncate_raw,
)
from csi_edge.dsp.hampel import hampel
from csi_edge.dsp.norm import FixedNorm, RunningNorm
from csi_edge.dsp.phase import amplitude, sanitize_phase
from csi_edge.dsp.timegrid import StreamingGrid, uniform_grid

__all__ = [
    "LLTF_SUBCARRIERS",
    "POSE_FEATURES",
    "VITALS_CHANNELS",
    "VITALS_RATE_HZ",
    "VITALS_SAMPLES",
    "FixedNorm",
    "RunningNorm",
    "StreamingGrid",
    "amplitude",
    "drop_dc",
    "frame_features",
    "hampel",
    "null_bins",
    "pose_features",
    "raw_bin_index",
    "resample_subcarriers",
    "sanitize_phase",
    "truncate_raw",
    "uniform_grid",
    "vitals_window",
    "vitals_window_from_grid",
]
