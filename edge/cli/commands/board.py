"""``csi-edge board``: an emulated ESP32-S3 CSI node for trying flash/provision without hardware."""

from __future__ import annotations

import click


@click.group()
def command():
    """Boards without hardware: an emulated ESP32-S3 on a pseudo-terminal."""


def _size(text: str) -> int:
    from csi_edge.firmware.images import FirmwareError, parse_flash_size

    try:
        return parse_flash_size(text)
    except FirmwareError as e:
        raise click.BadParameter(str(e), param_hint="--flash-size") from None


def _mac(text: str) -> bytes:
    import re

    if not re.fullmatch(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}", text):
        raise click.BadParameter(f"expected aa:bb:cc:dd:ee:ff, got {text!r}", param_hint="--mac")
    return bytes.fromhex(text.replace(":", ""))


@command.command()
@click.option(
    "--flash-size", default="8MB", show_default=True, help="Flash chip size (4MB, 8MB, 16MB)."
)
@click.option("--mac", default="f4:12:fa:00:00:01", show_default=True, help="Base MAC in eFuse.")
@click.option(
    "--wifi",
    "wifi",
    multiple=True,
    metavar="SSID:PASSWORD",
    help="A network the node can join (repeatable). None given: every network accepts it.",
)
@click.option(
    "--flash-file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Keep the flash in this file (created blank, reused when it exists).",
)
@click.option(
    "--chip",
    type=click.Choice(["esp32s3", "esp32c3", "esp32"]),
    default="esp32s3",
    show_default=True,
    help="Chip to present (others test the wrong-chip check).",
)
@click.option(
    "--control",
    "control_path",
    default=None,
    help="Unix socket for reset control (default: a temp path, printed on line 2).",
)
@click.option(
    "--boot", is_flag=True, help="Start running the installed firmware instead of in download mode."
)
@click.option(
    "--rate",
    default=20.0,
    show_default=True,
    type=float,
    help="CSI frames per second when streaming.",
)
@click.option(
    "--ip", default="127.0.0.1", show_default=True, help="Address the node 'gets' from DHCP."
)
@click.option("--drop-udp", is_flag=True, help="Model a firewall: CSI frames never arrive.")
@click.option("--no-dhcp", is_flag=True, help="Model an access point that gives no IP address.")
@click.option(
    "--ota-port",
    type=int,
    default=None,
    help="Serve the node's OTA HTTP endpoint on 127.0.0.1:PORT while it runs (0 = any free port).",
)
@click.option(
    "--ota-fault",
    type=click.Choice(["crash", "silent", "dark"]),
    default=None,
    help="OTA failure to model: crash mid-upload, boot but never stream, never come back.",
)
def emulate(
    flash_size,
    mac,
    wifi,
    flash_file,
    chip,
    control_path,
    boot,
    rate,
    ip,
    drop_udp,
    no_dhcp,
    ota_port,
    ota_fault,
):
    """Run an emulated ESP32-S3 on a pseudo-terminal until Ctrl-C / SIGTERM.

    The first line of stdout is the pty path (give it to --port); the second is the control
    socket. In download mode it speaks the ROM loader protocol and esptool's stub, so the real
    esptool, csi-edge flash and csi-edge provision work on it (use --before no-reset; a pty has
    no DTR/RTS). Running the firmware boots it like the RuView node: boot log on the pty, ADR-018
    CSI frames over UDP to the provisioned target_ip:target_port.

    \b
    Reset control (a pty cannot carry the EN/GPIO0 lines):
      esptool --after hard-reset|watchdog-reset, --no-stub run  boot the firmware
      a SYNC from esptool while the firmware runs                 back to download mode
      kill -USR1 PID   /  echo reset | nc -U SOCKET              reset and boot the firmware
      kill -USR2 PID   /  echo 'reset download' | nc -U SOCKET   reset into download mode
      echo status | nc -U SOCKET                                 JSON status
    \b
    Example:
      csi-edge board emulate --wifi HomeNet:s3cretpass --flash-file /tmp/node.bin &
      csi-edge flash -p /dev/pts/N -f build/ --before no-reset --after no-reset
      csi-edge provision -p /dev/pts/N --before no-reset --ssid HomeNet --password s3cretpass \\
          --target-ip 127.0.0.1 --wait
    """
    import os
    import signal
    import tempfile
    import threading

    from csi_edge.firmware.emulator import Board, NodeOptions

    known = None
    if wifi:
        known = {}
        for item in wifi:
            ssid, sep, pw = item.partition(":")
            if not sep or not ssid:
                raise click.BadParameter(
                    f"expected SSID:PASSWORD, got {item!r}", param_hint="--wifi"
                )
            known[ssid] = pw
    if ota_port == 0:  # fix it now, so it can be printed before the first boot
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ota_port = s.getsockname()[1]
    ctl = control_path or os.path.join(tempfile.gettempdir(), f"csi-edge-board-{os.getpid()}.sock")
    board = Board(
        flash_size=_size(flash_size),
        flash_file=flash_file,
        mac=_mac(mac),
        chip=chip,
        node=NodeOptions(
            wifi=known,
            ip=ip,
            rate_hz=rate,
            drop_udp=drop_udp,
            dhcp=not no_dhcp,
            ota_port=ota_port,
            ota_fault=ota_fault,
        ),
        control_path=ctl,
        boot=boot,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGUSR1, lambda *_: board.reset("run", wait=False))
    signal.signal(signal.SIGUSR2, lambda *_: board.reset("download", wait=False))
    board.start()
    click.echo(board.port)
    click.echo(f"control: {ctl}")
    if board.ota is not None:
        click.echo(f"ota: 127.0.0.1:{board.ota.port} (while the firmware runs)")
    click.echo(f"pid: {os.getpid()}", err=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        board.close()
