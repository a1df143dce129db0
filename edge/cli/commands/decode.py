"""``csi-edge decode``: convert any CSI capture to JSONL or NPZ, or summarise it."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import click


@click.command()
@click.argument("capture", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--format", "fmt",
    type=click.Choice(["pcap", "pcapng", "jsonl", "text", "esp-csi", "csi-tool", "recording"]),
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
def command(
    capture: Path, fmt, iq_order: str, output: Path | None, port, summary: bool, as_json: bool
) -> None:
    """Decode a capture: pcap/pcapng of RuView UDP, RuView .csi.jsonl, esp-csi or
    ESP32-CSI-Tool serial logs, or a csi-edge recording (format detected from content).

    \b
    Examples:
      csi-edge decode capture.pcap --summary
      csi-edge decode capture.pcap --summary --json      # for scripts
      csi-edge decode serial.log -o frames.npz           # arrays: meta, iq, offsets, lltf
      csi-edge decode rec.csi.jsonl -o frames.jsonl --iq-order real-first

    \b
    --summary --json prints one object:
      {"frames": N,
       "nodes": {"<source>#<node_id>": {"node_id", "frames", "lost", "duplicates",
                 "reboots", "rate_hz", "subcarriers": {"64": n, ...}}},
       "packets": {"<type>": n}, "skipped": {"<reason>": n}}

    \b
    NPZ keys: meta (structured: t_rx, src, node_id, seq, rssi, noise, freq_mhz, channel,
    n_pairs, sig_mode, bandwidth, stbc, secondary, local_us, fmt), iq (int8, raw wire
    bytes), offsets, sources, node_keys, lltf (complex64 [N, 53], subcarriers -26..26),
    lltf_subcarriers, iq_order, packets (JSON strings).
    """
    from tqdm import tqdm

    from csi_edge.capture import CaptureError, iter_capture
    from csi_edge.codecs.result import DecodeResult
    from csi_edge.nodes import NodeTable

    if output is not None and output.suffix.lower() not in (".jsonl", ".npz"):
        raise click.BadParameter(
            f"{output}: expected a file name ending in .jsonl or .npz", param_hint="-o/--output"
        )
    summary = summary or as_json or output is None
    table = NodeTable()
    keep = output is not None
    parts: list[DecodeResult] = []
    totals = DecodeResult(iq_order=iq_order)  # packet and skip counts (frames: the table's)
    try:
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
                bar.update(res.n_inputs)
                if keep:
                    parts.append(res)
    except CaptureError as e:
        raise click.ClickException(str(e)) from None
    if keep:
        full = DecodeResult.concat(parts)
        full.iq_order = iq_order
        try:
            if output.suffix.lower() == ".npz":
                _write_npz(full, output, iq_order)
            else:
                _write_jsonl(full, output, iq_order)
        except OSError as e:
            raise click.ClickException(f"{output}: cannot write: {e.strerror or e}") from None
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


def _write_jsonl(res, path: Path, iq_order: str) -> None:
    from csi_edge.frames import FrameFormat
    from csi_edge.report import jsonable

    frames = res.frames
    meta = frames.meta
    keys = frames.node_keys()
    names = meta.dtype.names
    packets = sorted(res.packets, key=lambda p: p.t_rx if math.isfinite(p.t_rx) else -math.inf)
    pi = 0
    with open(path, "w") as f:
        for i in range(len(frames)):
            row = dict(zip(names, meta[i].tolist(), strict=True))
            while pi < len(packets) and packets[pi].t_rx <= row["t_rx"]:
                f.write(json.dumps(jsonable(packets[pi].to_json())) + "\n")
                pi += 1
            csi = frames.csi(i, iq_order)
            obj = {
                "type": "csi",
                "t": row["t_rx"],
                "source": frames.sources[row["src"]] if frames.sources else "",
                "node": keys[i],
                **{k: row[k] for k in names if k not in ("t_rx", "src", "fmt")},
                "format": FrameFormat.NAMES.get(row["fmt"], str(row["fmt"])),
                "iq_order": iq_order,
                "csi": np.stack((csi.real, csi.imag), axis=-1).astype(int).tolist(),
            }
            f.write(json.dumps(jsonable(obj)) + "\n")
        for p in packets[pi:]:
            f.write(json.dumps(jsonable(p.to_json())) + "\n")


def _write_npz(res, path: Path, iq_order: str) -> None:
    from csi_edge.layout import LLTF_SUBCARRIERS, lltf_canonical
    from csi_edge.report import jsonable

    frames = res.frames
    np.savez_compressed(
        path,
        meta=frames.meta,
        iq=frames.iq,
        offsets=frames.offsets,
        sources=np.array(frames.sources, dtype=str),
        node_keys=np.array(frames.node_keys().tolist(), dtype=str),
        lltf=lltf_canonical(frames, iq_order=iq_order),
        lltf_subcarriers=LLTF_SUBCARRIERS,
        iq_order=np.array(iq_order),
        packets=np.array([json.dumps(jsonable(p.to_json())) for p in res.packets], dtype=str),
    )


class _LazyNumpy:
    """numpy imported on first use, so ``csi-edge --help`` stays instant."""

    def __getattr__(self, name):
        import numpy

        return getattr(numpy, name)


np = _LazyNumpy()
