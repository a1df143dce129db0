"""``csi-edge decode``: convert any CSI capture to JSONL or NPZ, or summarise it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from csi_edge.cli.outputs import force_option, refuse_existing


def _format_choices() -> list[str]:
    """``--format`` names come from the one registry of capture formats (never a copy)."""
    from csi_edge import registry

    return registry.choices()


@click.command()
@click.argument("capture", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--format", "fmt",
    type=click.Choice(_format_choices(), case_sensitive=False),
    help="Capture format (default: detected from the file's content).",
)  # fmt: skip
@click.option(
    "--iq-order",
    type=click.Choice(["imag-first", "real-first"]),
    default="imag-first",
    show_default=True,
    help="Byte order of each CSI pair. ESP-IDF documents (imaginary, real); use real-first "
    "for data sets made by tools that swapped it.",
)
@click.option(
    "-o", "--output",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write frames and packets to OUT.jsonl (one JSON object per line) or OUT.npz (arrays).",
)  # fmt: skip
@click.option("--port", type=int, help="pcap only: keep UDP datagrams to this port (default: all).")
@click.option(
    "--summary", is_flag=True, help="Print frames, per-node statistics, packets and skip reasons."
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the summary as one JSON object (implies --summary).",
)
@force_option
def command(
    capture: Path,
    fmt,
    iq_order: str,
    output: Path | None,
    port,
    summary: bool,
    as_json: bool,
    force: bool,
) -> None:
    """Decode a capture: pcap/pcapng of RuView UDP, RuView .csi.jsonl, esp-csi or
    ESP32-CSI-Tool serial logs and CSVs (any column order, extra columns, UTF-8 or UTF-16),
    an ESPectre .npz, or a csi-edge recording (format detected from content).

    \b
    Examples:
      csi-edge decode capture.pcap --summary
      csi-edge decode capture.pcap --summary --json      # for scripts
      csi-edge decode serial.log -o frames.npz           # arrays: meta, iq, offsets, lltf
      csi-edge decode passive.csv --summary              # one node per transmitter MAC
      csi-edge decode labelled.csv -o frames.jsonl       # label/host-time columns: "extra"
      csi-edge decode idle_001.npz --summary             # ESPectre data collection
      csi-edge decode rec.csi.jsonl -o frames.jsonl --iq-order real-first

    \b
    --summary --json prints one object:
      {"frames": N,
       "nodes": {"<source>#<node_id>": {"node_id", "frames", "lost", "duplicates",
                 "reboots", "rate_hz", "subcarriers": {"64": n, ...}}},
       "packets": {"<type>": n}, "skipped": {"<reason>": n},
       "notes": {"<quirk>": n}}       # frames read through a known writer quirk
    A text line naming a MAC is node "<file>#<mac>": each transmitter its own node.
    A capture whose every record was skipped exits 3 with the skip counts.

    \b
    NPZ keys: meta (structured: t_rx, src, node_id, seq, rssi, noise, freq_mhz, channel,
    n_pairs, sig_mode, bandwidth, stbc, secondary, local_us, fmt), iq (int8, raw wire
    bytes), offsets, sources, node_keys, lltf (complex64 [N, 53], subcarriers -26..26),
    lltf_subcarriers, iq_order, packets (JSON strings), extra_columns + extra (str [N, k]:
    unknown columns of a text capture, "" where absent). JSONL frames carry them as "extra".
    """
    from tqdm import tqdm

    from csi_edge.capture import iter_capture
    from csi_edge.codecs.frames_out import write_frames
    from csi_edge.codecs.result import DecodeResult
    from csi_edge.nodes import NodeTable

    if output is not None and output.suffix.lower() not in (".jsonl", ".npz"):
        raise click.BadParameter(
            f"{output}: expected a file name ending in .jsonl or .npz", param_hint="-o/--output"
        )
    if output is not None:
        refuse_existing(output, force=force)
    summary = summary or as_json or output is None
    table = NodeTable()
    keep = output is not None
    parts: list[DecodeResult] = []
    totals = DecodeResult(iq_order=iq_order)  # packet and skip counts (frames: the table's)
    with tqdm(
        desc=f"decode {capture.name}",
        unit=" inputs",
        file=sys.stderr,
        disable=None,
        leave=False,
    ) as bar:
        for res in iter_capture(capture, fmt, iq_order, port=port):
            table.update(res.frames)
            totals.packet_counts.update(res.packet_counts)
            totals.skipped.update(res.skipped)
            totals.notes.update(res.notes)
            bar.update(res.n_inputs)
            if keep:
                parts.append(res)
    if keep:
        full = DecodeResult.concat(parts)
        full.iq_order = iq_order
        write_frames(full, output, iq_order)
        click.echo(
            f"wrote {len(full.frames)} frames and {len(full.packets)} packets to {output}", err=True
        )
    if summary:
        nodes = table.summary()
        doc = {
            "frames": table.frames,
            "nodes": {
                key: {
                    k: node[k]
                    for k in (
                        "node_id",
                        "frames",
                        "lost",
                        "duplicates",
                        "reboots",
                        "rate_hz",
                        "subcarriers",
                    )
                }
                for key, node in nodes.items()
            },
            **{k: v for k, v in totals.summary_counts().items() if k != "frames"},
        }
        if as_json:
            click.echo(json.dumps(doc))
        else:
            _print_summary(capture, doc, nodes)


def _print_summary(capture: Path, doc: dict, nodes: dict) -> None:
    click.echo(f"{capture}: {doc['frames']} CSI frames from {len(nodes)} node(s)")
    for key, n in nodes.items():
        subs = ", ".join(f"{p} pairs: {c}" for p, c in n["subcarriers"].items())
        click.echo(
            f"  {key}: {n['frames']} frames, {'?' if n['rate_hz'] is None else format(n['rate_hz'], '.1f')} Hz, lost {n['lost']}, "
            f"duplicates {n['duplicates']}, reordered {n['reordered']}, reboots {n['reboots']}, "
            + (f"rssi {n['rssi']} dBm" if n["rssi"] is not None else "rssi unknown")
            + f" [{subs}]"
        )
    if doc["packets"]:
        click.echo("  packets: " + ", ".join(f"{k} {v}" for k, v in doc["packets"].items()))
    if doc["skipped"]:
        click.echo("  skipped: " + ", ".join(f"{k} {v}" for k, v in doc["skipped"].items()))
    if doc["notes"]:
        click.echo(
            "  read as known quirks: " + ", ".join(f"{k} {v}" for k, v in doc["notes"].items())
        )


class _LazyNumpy:
    """numpy imported on first use, so ``csi-edge --help`` stays instant."""

    def __getattr__(self, name):
        import numpy

        return getattr(numpy, name)


np = _LazyNumpy()
