"""Model calls timed into the ``csi_edge_inference_seconds`` histogram (``/metrics``).

A thin proxy: the gateway keeps calling ``push``/``push_batch``/``run`` as before; everything else passes
through to the runtime untouched."""

from __future__ import annotations

import time
from typing import Any


class TimedModel:
    def __init__(self, runtime: Any, model: str) -> None:
        from csi_edge.sinks.metrics import INFERENCE_SECONDS

        self._runtime = runtime
        self._hist = INFERENCE_SECONDS.labels(model=model)

    def _timed(self, fn, *a, **kw):
        t0 = time.perf_counter()
        try:
            return fn(*a, **kw)
        finally:
            self._hist.observe(time.perf_counter() - t0)

    def push(self, *a, **kw):
        return self._timed(self._runtime.push, *a, **kw)

    def push_batch(self, *a, **kw):
        return self._timed(self._runtime.push_batch, *a, **kw)

    def push_arrays(self, *a, **kw):
        return self._timed(self._runtime.push_arrays, *a, **kw)

    def run(self, *a, **kw):
        return self._timed(self._runtime.run, *a, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._runtime, name)
