"""Read any capture for the vitals/calibrate commands, with a user's mistake as a ValueError."""

from __future__ import annotations

import os


def read_any(path: str | os.PathLike):
    """-> DecodeResult. A file that is not a capture raises ValueError naming the file and what
    was expected (:class:`csi_edge.capture.CaptureError` is not a ValueError, so callers catching
    ``ValueError`` would otherwise let it escape as a traceback)."""
    from csi_edge.capture import CaptureError, read_capture

    try:
        return read_capture(path)
    except CaptureError as e:
        raise ValueError(str(e)) from None
