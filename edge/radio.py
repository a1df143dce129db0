"""Wi-Fi channel numbers and centre frequencies (2.4 GHz channels 1-14, 5 GHz channels 32-177).

The one conversion every part of csi-edge uses: codecs (a frame's channel from its frequency),
text logs (frequency from a printed channel), the simulator and the emulated board.
"""

from __future__ import annotations

import numpy as np


def channel_to_mhz(channel: int) -> int:
    """Centre frequency in MHz of a Wi-Fi channel number; 0 when it is not a channel."""
    if 1 <= channel <= 13:
        return 2407 + 5 * channel
    if channel == 14:
        return 2484
    if 32 <= channel <= 177:
        return 5000 + 5 * channel
    return 0


def mhz_to_channel(freq_mhz: np.ndarray | int) -> np.ndarray:
    """Wi-Fi channel number of each frequency in MHz (uint8); 0 when it is not a channel centre."""
    f = np.asarray(freq_mhz, np.int64)
    ch = np.zeros(f.shape, np.int64)
    ch = np.where((f >= 2412) & (f <= 2472) & ((f - 2407) % 5 == 0), (f - 2407) // 5, ch)
    ch = np.where(f == 2484, 14, ch)
    ch = np.where((f >= 5160) & (f <= 5885) & (f % 5 == 0), (f - 5000) // 5, ch)
    return ch.astype(np.uint8)
