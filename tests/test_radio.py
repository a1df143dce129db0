"""The one channel <-> frequency conversion (edge/radio.py), against the IEEE 802.11 channel plan."""

from __future__ import annotations

import numpy as np

from csi_edge.radio import channel_to_mhz, mhz_to_channel


def test_24ghz_channels() -> None:
    assert [channel_to_mhz(c) for c in (1, 6, 11, 13)] == [2412, 2437, 2462, 2472]
    assert channel_to_mhz(14) == 2484


def test_5ghz_channels() -> None:
    # channel 36 once came out as 2587 MHz from a copy that used the 2.4 GHz formula
    assert [channel_to_mhz(c) for c in (36, 40, 149, 165)] == [5180, 5200, 5745, 5825]


def test_not_a_channel_is_zero() -> None:
    assert [channel_to_mhz(c) for c in (0, 15, 31, 178, -1)] == [0, 0, 0, 0, 0]


def test_round_trip_every_channel() -> None:
    channels = [*range(1, 15), 36, 40, 44, 48, 52, 100, 149, 153, 157, 161, 165]
    freqs = np.array([channel_to_mhz(c) for c in channels])
    assert mhz_to_channel(freqs).tolist() == channels
    assert mhz_to_channel(np.array([0, 2411, 2485, 5001, 9999])).tolist() == [0, 0, 0, 0, 0]
