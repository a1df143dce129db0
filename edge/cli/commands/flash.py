"""``csi-edge flash``: write RuView CSI-node firmware to an ESP32-S3 and verify it."""

from __future__ import annotations

import json

import click

BEFORE = ("default-reset", "usb-reset", "no-reset", "no-reset-no-sync")
AFTER = ("hard-reset", "soft-reset", "no-reset", "no-reset-stub", "watchdog-reset")


def connection_options(f):
    """How esptool reaches the board: --baud, --before, --after, --no-stub, --connect-attempts
    (shared with ``csi-edge provision``)."""
    opts = [
        click.option(
            "--baud", "-b", default=460800, show_default=True, type=int,
            help="Baud rate for the transfer.",
        ),
        click.option(
            "--before", type=click.Choice(BEFORE), default="default-reset", show_default=True,
            help="How to put the chip into download mode.",
        ),
        click.option(
            "--after", type=click.Choice(AFTER), default="hard-reset", show_default=True,
            help="What to do when done (hard-reset boots the firmware).",
        ),
        click.option(
            "--no-stub", is_flag=True, help="Talk to the ROM loader only (slower, no flasher stub)."
        ),
        click.option(
            "--connect-attempts", default=7, show_default=True, type=int,
            help="esptool connection attempts.",
        ),
    ]  # fmt: skip
    for opt in reversed(opts):
        f = opt(f)
    return f


@click.command()
@click.option("--port", "-p", required=True, help="Serial port of the board, e.g. /dev/ttyUSB0.")
@click.option(
    "--firmware",
    "-f",
    "source",
    required=True,
    help="ESP-IDF build dir, manifest.json, release folder/zip, or a merged/app .bin.",
)
@connection_options
@click.option(
    "--flash-size", default=None, help="4MB, 8MB, ... (default: from the source, else detected)."
)
@click.option(
    "--use",
    "use",
    multiple=True,
    metavar="FILE",
    help="In a release folder/zip with several candidates for a role, use this file "
    "(repeatable; by default the board's flash size and the image headers choose).",
)
@click.option("--no-compress", is_flag=True, help="Send data uncompressed.")
@click.option(
    "--check-only", is_flag=True, help="Only check the firmware source; do not touch a board."
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
def command(
    port,
    source,
    baud,
    before,
    after,
    no_stub,
    flash_size,
    connect_attempts,
    use,
    no_compress,
    check_only,
    as_json,
):
    """Flash firmware to an ESP32-S3 CSI node, verify it, and reset it.

    Checks the source first (image magic 0xE9, chip id ESP32-S3, partition table, app fits its
    partition and the flash), refuses a board that is not an ESP32-S3, always writes otadata with
    a new app (so an old ota_1 image cannot keep booting), and verifies what it wrote.

    \b
    Examples:
      csi-edge flash -p /dev/ttyUSB0 -f build/                  # ESP-IDF build directory
      csi-edge flash -p /dev/ttyUSB0 -f release/manifest.json   # ESP Web Tools manifest
      csi-edge flash -p /dev/ttyACM0 -f esp32-csi-node-0.6.5.zip --flash-size 4MB
      csi-edge flash -p /dev/pts/5 -f fw/ --before no-reset --after no-reset   # emulated board
      csi-edge flash -p X -f fw/ --check-only                   # validate files only
      csi-edge flash -p X -f release_bins/ --use partition-table-4mb.bin --use esp32-csi-node-4mb.bin
    """
    from csi_edge.errors import file_error
    from csi_edge.firmware import flash as flashmod
    from csi_edge.firmware import images

    try:
        if check_only:
            fw = flashmod.prepare(source, flash_size, tuple(use))
            result = {
                "source": source,
                "parts": images.describe(fw),
                "version": fw.version,
                "notes": fw.notes,
            }
            _emit(
                result,
                as_json,
                lambda r: "\n".join(
                    [f"note: {n}" for n in r["notes"]]
                    + [f"firmware OK: {len(r['parts'])} parts, app version {r['version']}"]
                ),
            )
            return
        if flash_size:
            images.parse_flash_size(flash_size)
        res = flashmod.flash(
            port,
            source,
            baud=baud,
            before=before,
            after=after,
            no_stub=no_stub,
            flash_size=flash_size,
            connect_attempts=connect_attempts,
            compress=not no_compress,
            progress=not as_json,
            use=tuple(use),
        )
    except OSError as e:  # a firmware file (bad images and boards raise csi_edge errors)
        if e.filename is None:
            raise
        raise file_error(e.filename, e) from None
    _emit(res.as_dict(), as_json, _summary)


def _summary(r: dict) -> str:
    lines = [f"{p['offset']:>9}  {p['size']:>8}  {p['role']:<15} {p['file']}" for p in r["parts"]]
    lines += [f"note: {n}" for n in r["notes"]]
    lines.append(
        f"flashed and verified {r['chip']} {r['mac']} ({r['flash_size']}) "
        f"with app {r['version'] or '?'} in {r['seconds']:.1f} s"
    )
    return "\n".join(lines)


def _emit(result: dict, as_json: bool, text) -> None:
    click.echo(json.dumps(result) if as_json else text(result))
