"""``csi-edge flash``: check a firmware source, write it to an ESP32-S3, verify it, reset.

Everything that can be checked without a board (file present, image magic, chip id, partition
table, app size) is checked before connecting; the flash size is checked again against what the
board reports. esptool does the writing (and its own MD5 check); this module then verifies every
written region once more and leaves the board as ``--after`` says.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from csi_edge.firmware import espimage, images
from csi_edge.firmware.esp import Session

log = logging.getLogger("csi_edge.flash")
MAX_FLASH = 16 << 20


@dataclass
class FlashResult:
    port: str
    chip: str
    mac: str
    flash_size: str
    parts: list[dict[str, object]]
    version: str | None
    seconds: float
    verified: bool
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def prepare(source: str, flash_size: str | None, use: tuple[str, ...] = ()) -> images.Firmware:
    """Load and check a firmware source without a board (uses the largest plausible flash when
    the size is not known yet; the real size is checked again after connecting).

    A release folder with variants per flash size (4 MB and 8 MB tables) is checked for each
    size it has when the board's size is not known yet; the board's size then picks the set."""
    fw = images.load(source, use)
    app = fw.part("app")
    if fw.release is None and app and app.offset is None and not fw.part("partition-table"):
        return fw  # an app alone: checked against the board's own table after connecting
    size = flash_size or fw.flash_size
    if size:
        images.check(fw, images.parse_flash_size(size))
    elif fw.release is not None and len(fw.release.sizes()) > 1:
        sets = []
        for each in fw.release.sizes():
            images.check(fw, each)
            names = ", ".join(p.name.rsplit("/", 1)[-1] for p in fw.parts if p.role != "bootloader")
            sets.append(f"{each >> 20} MB: {names}")
        fw.notes = [n for n in fw.notes if n not in fw.chosen_notes]
        fw.chosen_notes = []
        fw.notes.append("the board's flash size picks the set (" + "; ".join(sets) + ")")
    else:
        images.check(fw, MAX_FLASH)
    return fw


def flash(
    port: str,
    source: str,
    *,
    baud: int = 460800,
    before: str = "default-reset",
    after: str = "hard-reset",
    no_stub: bool = False,
    flash_size: str | None = None,
    connect_attempts: int = 7,
    compress: bool = True,
    progress: bool = True,
    use: tuple[str, ...] = (),
) -> FlashResult:
    fw = prepare(source, flash_size, use)
    t0 = time.monotonic()
    with Session(
        port,
        baud=baud,
        before=before,
        no_stub=no_stub,
        connect_attempts=connect_attempts,
        progress=progress,
    ) as s:
        detected = s.flash_size
        size_text = flash_size or fw.flash_size or detected or "4MB"
        size = images.parse_flash_size(size_text)
        if detected and images.parse_flash_size(detected) < size:
            raise images.FirmwareError(
                f"--flash-size {size_text} is larger than the {detected} flash the board reports"
            )
        board_table = None
        app = fw.part("app")
        if app is not None and app.offset is None and fw.part("partition-table") is None:
            try:
                board_table = espimage.parse_partition_table(
                    s.read(
                        espimage.PARTITION_TABLE_OFFSET,
                        espimage.PARTITION_TABLE_MAX,
                        "partition table",
                    )
                )
            except espimage.ImageError as e:
                raise images.FirmwareError(
                    f"{source} is an app image alone and the board has no readable partition "
                    f"table ({e}); flash a full release (bootloader + partition table + app) first"
                ) from None
        fw.parts = [p for p in fw.parts if not p.name.endswith(images.ADDED)]
        images.check(fw, size, board_table)
        notes = list(fw.notes)
        parts = [(p.offset or 0, p.data) for p in sorted(fw.parts, key=lambda p: p.offset or 0)]
        mac = s.mac()
        s.write(
            parts,
            flash_size=size_text,
            flash_mode=fw.flash_mode or "keep",
            flash_freq=fw.flash_freq or "keep",
            compress=compress,
        )
        bad = s.verify([(o, d) for o, d in parts if o != 0])
        bad += _verify_bootloader(s, dict(parts).get(0))
        if bad:
            raise images.FirmwareError(
                f"verification failed at {', '.join(bad)}: flash content differs"
            )
        s.reset(after)
        return FlashResult(
            port,
            s.chip,
            mac,
            size_text,
            images.describe(fw),
            fw.version,
            round(time.monotonic() - t0, 3),
            True,
            notes,
        )


def _verify_bootloader(s: Session, data: bytes | None) -> list[str]:
    """Read back what was written at 0x0. esptool rewrites the flash mode/size bytes of the
    bootloader header (and its SHA-256), so those bytes may differ; everything else must match."""
    if not data:
        return []
    head = data[: espimage.PARTITION_TABLE_OFFSET]
    got = bytearray(s.read(0, len(head), "verify bootloader"))
    want = bytearray(head)
    try:
        info = espimage.parse_image(bytes(got), what="bootloader (read back)")
    except espimage.ImageError:
        return ["0x0"]
    want[2:4] = got[2:4]
    if info.hash_appended:
        want[info.length - 32 : info.length] = got[info.length - 32 : info.length]
    bad = [] if want == got else ["0x0"]
    rest = data[espimage.PARTITION_TABLE_OFFSET :]
    if rest:
        bad += s.verify([(espimage.PARTITION_TABLE_OFFSET, rest)])
    return bad
