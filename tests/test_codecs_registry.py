"""The one list of capture formats: detection, --format choices, readers (issue #9)."""

from __future__ import annotations

import shutil
from pathlib import Path

import click
import numpy as np
import pytest

from csi_edge import registry
from csi_edge.capture import detect_format, read_capture
from csi_edge.cli.commands.decode import command as decode_command
from csi_edge.codecs.pcap import PcapWriter
from csi_edge.codecs.recording import RecordingWriter
from csi_edge.codecs.ruview import encode_raw_frame

DATA = Path(__file__).parent / "data"
TOOL = DATA / "esp32-csi-tool" / "example_data.csv"


def one_of_each(tmp: Path) -> dict[str, Path]:
    pcap = tmp / "a.bin"
    with PcapWriter(pcap) as w:
        w.write(encode_raw_frame(1, 0, np.ones(128, np.int8)), 1.0, "10.0.0.1")
    rec = tmp / "b.bin"
    with RecordingWriter(rec) as w:
        w.write(1.0, "/dev/ttyUSB0", TOOL.read_bytes().splitlines()[1])
    jsonl = tmp / "c.bin"
    shutil.copy(DATA / "ruview" / "pretrain-head400.csi.jsonl", jsonl)
    esp = tmp / "d.bin"
    with open(esp, "wb") as f:
        np.savez_compressed(f, csi_data=np.ones((3, 128), np.int8), num_subcarriers=64)
    text = tmp / "e.bin"
    shutil.copy(TOOL, text)
    return {"pcap": pcap, "recording": rec, "jsonl": jsonl, "espectre": esp, "text": text}


def test_every_registered_format_is_detected_and_read(tmp_path):
    files = one_of_each(tmp_path)
    assert set(files) == set(registry.names())  # a new format needs a sample here
    for name, path in files.items():
        assert detect_format(path) == name
        assert len(read_capture(path).frames) > 0
        assert len(read_capture(path, fmt=name).frames) > 0


def test_decode_format_choices_are_the_registry():
    opt = next(p for p in decode_command.params if p.name == "fmt")
    assert isinstance(opt.type, click.Choice)
    assert list(opt.type.choices) == registry.choices()
    for alias in registry.choices():
        assert registry.get(alias) in registry.FORMATS


def test_unknown_name_lists_the_choices():
    with pytest.raises(ValueError, match="expected one of pcap, recording, jsonl, espectre, text"):
        registry.get("bogus")


def test_writers_are_importable():
    assert registry.get("pcap").writer_class() is PcapWriter
    assert registry.get("recording").writer_class() is RecordingWriter
    assert registry.get("text").writer_class() is None
