"""``csi-edge ota``: update RuView CSI nodes over the network, one at a time, and prove it worked.

RuView's OTA endpoint (port 8032) takes the raw app image and reboots into it, with no rollback:
an image that boots but misbehaves stays. So the safety net is here:

1. the image is checked before anything is sent: ESP32 image magic and checksum/SHA-256, chip
   (ESP32-S3), app descriptor (version, project name), size against each node's ``max_size``,
   not a downgrade or a re-install unless forced;
2. every node is asked for ``/ota/status`` first (reachable, PSK accepted), so a fleet with a
   problem is refused before any node is touched;
3. nodes are updated one at a time, the first (the canary) first: ``POST /ota`` with the node's
   PSK and a streamed body, then ``/ota/status`` must show the new version on the other
   partition, then CSI frames from that node id must arrive again;
4. the first failure stops the rollout; the report says which node is on which version.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from csi_edge.errors import CheckFailed, DeviceError, ExitCode, InputError, file_error
from csi_edge.firmware import espimage, otapsk

DEFAULT_PORT = 8032
PROJECT = "esp32-csi-node"
UPLOAD_TIMEOUT = 120.0  #: seconds per socket operation; ~911 KB took 58-73 s on real nodes
CHUNK = 16 * 1024


class OtaError(DeviceError):
    """A node refused, dropped or failed an update step (the message names the node);
    ``refused`` when the node answered but said no (PSK, size), else it was unreachable."""

    def __init__(self, message: str, *, refused: bool = False) -> None:
        super().__init__(message)
        self.refused = refused


@dataclass
class Target:
    """One node to update; ``psk`` never appears in reprs, reports or logs."""

    host: str
    port: int = DEFAULT_PORT
    node_id: int | None = None
    mac: str | None = None
    psk: str | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        base = f"{self.host}:{self.port}"
        return base if self.node_id is None else f"{base} (node {self.node_id})"


@dataclass
class Image:
    data: bytes
    version: str
    project: str
    path: str


@dataclass
class NodeResult:
    node: str
    before: str | None = None
    after: str | None = None
    partition: str | None = None
    status: str = "not attempted"  # updated, failed, skipped, would update, not attempted
    message: str = ""
    seconds: float | None = None


@dataclass
class Report:
    image_version: str
    nodes: list[NodeResult]
    ok: bool
    dry_run: bool = False
    exit_code: int = 0

    def as_dict(self) -> dict[str, object]:
        return {
            "image_version": self.image_version,
            "ok": self.ok,
            "dry_run": self.dry_run,
            "nodes": [dict(n.__dict__) for n in self.nodes],
        }


# ---------------------------------------------------------------- targets
_NODE = re.compile(r"^(?P<host>\[[^\]]+\]|[^:#\s]+)(?::(?P<port>\d+))?(?:#(?P<id>\d+))?$")


def parse_node(text: str) -> Target:
    """``HOST[:PORT][#NODE_ID]`` (the port defaults to 8032; the node id is checked in the CSI)."""
    m = _NODE.match(text.strip())
    if not m:
        raise InputError(f"node {text!r}: expected HOST[:PORT][#NODE_ID], e.g. 192.168.1.21:8032#3")
    port = int(m["port"] or DEFAULT_PORT)
    nid = int(m["id"]) if m["id"] else None
    if not 0 < port < 65536 or (nid is not None and nid > 255):
        raise InputError(f"node {text!r}: port must be 1-65535 and node id 0-255")
    return Target(m["host"].strip("[]"), port, nid)


def load_targets(inventory: str | Path) -> list[Target]:
    """The ``[[boards]]`` of a fleet.toml (as for ``provision --inventory``) with ``host``
    (the node's IP), optional ``ota_port``, ``node_id`` and ``mac``."""
    import tomllib

    p = Path(inventory)
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{p}: inventory file not found") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise InputError(f"{p}: not a readable TOML inventory ({e})") from None
    boards = doc.get("boards")
    if not isinstance(boards, list) or not boards:
        raise InputError(f"{p}: no [[boards]] entries")
    out, problems = [], []
    for i, b in enumerate(boards):
        where = f"{p}: boards[{i}]"
        if not isinstance(b, dict) or not isinstance(b.get("host"), str) or not b["host"]:
            problems.append(f'{where}: needs host = "<the node\'s IP address>" for ota')
            continue
        port, nid = b.get("ota_port", DEFAULT_PORT), b.get("node_id")
        if not isinstance(port, int) or not 0 < port < 65536:
            problems.append(f"{where}: ota_port must be an integer 1-65535, got {port!r}")
            continue
        if nid is not None and (not isinstance(nid, int) or not 0 <= nid <= 255):
            problems.append(f"{where}: node_id must be an integer 0-255, got {nid!r}")
            continue
        mac = str(b["mac"]).lower() if b.get("mac") else None
        out.append(Target(b["host"], port, nid, mac))
    seen: set[tuple[str, int]] = set()
    for t in out:
        if (t.host, t.port) in seen:
            problems.append(f"{p}: node {t.host}:{t.port} is listed twice")
        seen.add((t.host, t.port))
    if problems:
        raise InputError("; ".join(problems))
    return out


def attach_psks(targets: list[Target], override: str | None) -> None:
    """Every target gets its PSK (``override`` for all, else the store) or one error for all."""
    missing = []
    for t in targets:
        t.psk = override or otapsk.find(t.mac, t.node_id)
        if not t.psk:
            missing.append(t.name)
    if missing:
        raise InputError(
            f"no OTA PSK known for {', '.join(missing)}: provision one with `csi-edge provision "
            f"--ota-psk auto` (stored in {otapsk.path()}), give node ids/MACs that match it, or "
            "set CSI_EDGE_OTA_PSK"
        )


# ---------------------------------------------------------------- image
def check_image(path: str | Path, project: str = PROJECT) -> Image:
    """Everything that can be checked without a node: magic, checksum/SHA-256, chip, descriptor."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise file_error(p, e) from None
    info = espimage.parse_image(data, what=str(p))
    if info.chip_id != espimage.ESP32S3_CHIP_ID:
        raise InputError(f"{p}: image is for {info.chip_name}, the nodes are ESP32-S3 (chip id 9)")
    if info.app is None:
        raise InputError(
            f"{p}: no app descriptor (magic 0xABCD5432 at offset 0x20): a bootloader or merged "
            "image, not an app image (give the app .bin)"
        )
    if project and info.app.project_name != project:
        raise InputError(
            f"{p}: project {info.app.project_name!r}, expected {project!r} "
            "(--project to allow another firmware)"
        )
    return Image(data, info.app.version, info.app.project_name, str(p))


def version_key(version: str) -> tuple[int, ...] | None:
    m = re.match(r"\s*v?(\d+(?:\.\d+)*)", version)
    return tuple(int(x) for x in m.group(1).split(".")) if m else None


def plan_problem(new: str, cur: str, force: bool) -> tuple[str, str] | None:
    """(status, why) when the node should not get ``new``; None when it should."""
    if force:
        return None
    if new == cur:
        return "skipped", f"already runs {cur} (--force re-installs it)"
    a, b = version_key(new), version_key(cur)
    if a is None or b is None or a == b:
        return "refused", f"cannot tell whether {new} is newer than {cur} (--force to install)"
    if a < b:
        return "refused", f"{new} is a downgrade from {cur} (--force to install it)"
    return None


# ---------------------------------------------------------------- HTTP client
STATUS_FIELDS = ("version", "running_partition", "next_partition", "max_size")


def _auth(t: Target) -> dict[str, str]:
    return {"Authorization": f"Bearer {t.psk}"}


def _refusal(t: Target, code: int, body: str, what: str) -> OtaError:
    if code == 401:
        return OtaError(
            f"{t.name}: {what}: the node refused the PSK (HTTP 401); expected the PSK "
            "provisioned with `csi-edge provision --ota-psk`",
            refused=True,
        )
    if code == 403:
        return OtaError(
            f"{t.name}: {what}: the node has no OTA PSK (HTTP 403); provision one "
            "with `csi-edge provision --ota-psk auto`",
            refused=True,
        )
    why = body.strip()[:120] or "no reason given"
    return OtaError(f"{t.name}: {what}: HTTP {code} ({why})", refused=True)


def get_status(t: Target, timeout: float = 5.0) -> dict:
    """``GET /ota/status``; OtaError on anything but a complete answer."""
    conn = http.client.HTTPConnection(t.host, t.port, timeout=timeout)
    try:
        conn.request("GET", "/ota/status", headers=_auth(t))
        r = conn.getresponse()
        body = r.read().decode("utf-8", "replace")
    except (OSError, http.client.HTTPException) as e:
        raise OtaError(f"{t.name}: /ota/status unreachable ({e or type(e).__name__})") from None
    finally:
        conn.close()
    if r.status != 200:
        raise _refusal(t, r.status, body, "/ota/status")
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    missing = [f for f in STATUS_FIELDS if not isinstance(doc, dict) or f not in doc]
    if missing:
        raise OtaError(f"{t.name}: /ota/status lacks {', '.join(missing)}: is this a RuView node?")
    return doc


def upload(
    t: Target,
    data: bytes,
    progress: Callable[[int], None] | None = None,
    timeout: float = UPLOAD_TIMEOUT,
) -> str:
    """``POST /ota`` with the body streamed in chunks; a dropped connection is a failure."""
    conn = http.client.HTTPConnection(t.host, t.port, timeout=timeout)
    sent = 0
    try:
        try:
            conn.putrequest("POST", "/ota", skip_accept_encoding=True)
            for k, v in {
                **_auth(t),
                "Content-Type": "application/octet-stream",
                "Content-Length": str(len(data)),
            }.items():
                conn.putheader(k, v)
            conn.endheaders()
            view = memoryview(data)
            while sent < len(data):
                conn.send(view[sent : sent + CHUNK])
                sent += len(view[sent : sent + CHUNK])
                if progress:
                    progress(sent)
        except OSError as e:
            send_error: OSError | None = e  # the node may have answered (401, 400) and closed
        else:
            send_error = None
        try:
            r = conn.getresponse()
            body = r.read().decode("utf-8", "replace")
        except (OSError, http.client.HTTPException) as e:
            why = send_error or e
            raise OtaError(
                f"{t.name}: upload failed after sending {sent} of {len(data)} bytes: the connection "
                f"dropped ({why or type(why).__name__}); the node may have crashed (RuView "
                "#1893). Not counted as success"
            ) from None
    finally:
        conn.close()
    if r.status != 200:
        raise _refusal(t, r.status, body, "POST /ota")
    return body.strip()


# ---------------------------------------------------------------- verification
def wait_for_version(
    t: Target, version: str, partition: str, timeout: float, poll: float = 0.5
) -> dict:
    """Poll ``/ota/status`` through the reboot until it shows ``version`` on ``partition``."""
    deadline = time.monotonic() + timeout
    last: dict | None = None
    err = ""
    down = False  # the node stopped answering after its last answer (it rebooted)
    while time.monotonic() < deadline:
        try:
            last = get_status(t, timeout=min(3.0, max(0.5, deadline - time.monotonic())))
        except OtaError as e:
            err, down = str(e).split(": ", 1)[-1], True
        else:
            down = False
            if last["version"] == version and last["running_partition"] == partition:
                return last
            if last["version"] == version:
                raise OtaError(
                    f"{t.name}: runs {version} but on {last['running_partition']}, expected "
                    f"{partition}"
                )
        time.sleep(poll)
    if last is None or down:
        raise OtaError(
            f"{t.name}: did not come back within {timeout:g} s after the upload ({err}); "
            "check its power and serial log"
        )
    raise OtaError(
        f"{t.name}: still reports {last['version']} on {last['running_partition']} "
        f"{timeout:g} s after the upload, expected {version} on {partition}"
    )


def wait_for_csi(
    t: Target,
    timeout: float,
    csi_port: int,
    health: Callable[[], tuple[str, dict]] | None = None,
) -> str:
    """CSI frames from the node (its node id, from its address) arrive again: on ``csi_port``
    when this process can bind it, else in the running gateway's ``/health`` (``health()``
    returns its URL and document; the CLI supplies it, as the gateway client is a higher layer).
    """
    from csi_edge.firmware import bootwatch

    t0 = time.time()
    addr = _resolve(t.host)
    sock = bootwatch.bind_udp("0.0.0.0", csi_port)
    if sock is not None:
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                try:
                    data, src = sock.recvfrom(65536)
                except (BlockingIOError, InterruptedError):
                    time.sleep(0.02)
                    continue
                if src[0] != addr and not (addr.startswith("127.") and src[0].startswith("127.")):
                    continue
                ids = bootwatch._frame_node_ids(data)
                if ids and (t.node_id is None or t.node_id in ids):
                    return f"CSI frames on UDP {csi_port} after {time.time() - t0:.1f} s"
        finally:
            sock.close()
        raise OtaError(
            f"{t.name}: no CSI frames from node {t.node_id if t.node_id is not None else '?'} on "
            f"UDP {csi_port} within {timeout:g} s after the update: the new firmware boots but "
            "does not stream (no rollback on RuView: reflash or push the previous image)"
        )
    if health is None:
        raise OtaError(
            f"{t.name}: UDP {csi_port} is busy and no gateway to ask; --no-csi-check skips this"
        )
    deadline = time.monotonic() + timeout
    url = "the gateway"
    while time.monotonic() < deadline:
        try:
            url, doc = health()
        except DeviceError as e:
            raise OtaError(
                f"{t.name}: UDP {csi_port} is busy and the gateway cannot be asked ({e}); "
                "--no-csi-check skips this check"
            ) from None
        for key, n in (doc.get("nodes") or {}).items():
            host, _, nid = key.rpartition("#")
            if host != addr or (t.node_id is not None and nid != str(t.node_id)):
                continue
            if (n.get("last_seen") or 0) > t0:
                return f"CSI frames reach the gateway at {url} again"
        time.sleep(1.0)
    raise OtaError(
        f"{t.name}: {url} got no CSI frames from this node within {timeout:g} s "
        "after the update: the new firmware boots but does not stream"
    )


def _resolve(host: str) -> str:
    try:
        return socket.gethostbyname(host)
    except OSError:
        return host


# ---------------------------------------------------------------- rollout
@dataclass
class Options:
    force: bool = False
    dry_run: bool = False
    boot_timeout: float = 90.0
    frame_timeout: float = 30.0
    csi_port: int = 5005
    health: Callable[[], tuple[str, dict]] | None = None  #: the running gateway's /health
    csi_check: bool = True
    upload_timeout: float = UPLOAD_TIMEOUT


def rollout(
    image: Image,
    targets: list[Target],
    opts: Options,
    *,
    progress: Callable[[Target, int], Callable[[int], None] | None] | None = None,
    say: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
) -> Report:
    """Check every node, then update them in order (the first is the canary); stop at the first
    failure. Never raises for a node's failure: the report says what happened where."""
    results = [NodeResult(t.name) for t in targets]
    report = Report(image.version, results, ok=False, dry_run=opts.dry_run)
    statuses: list[dict | None] = []
    problems = []
    node_problem = False  # a node unreachable or refusing (exit 4) vs. the image (exit 1)
    for t, res in zip(targets, results, strict=True):  # nothing is sent before all answered
        try:
            st = get_status(t)
        except OtaError as e:
            res.status, res.message = ("refused" if e.refused else "unreachable"), str(e)
            node_problem = True
            problems.append(str(e))
            statuses.append(None)
            continue
        statuses.append(st)
        res.before = res.after = str(st["version"])
        res.partition = str(st["running_partition"])
        max_size = int(st["max_size"])
        if len(image.data) > max_size:
            res.status = "refused"
            res.message = (
                f"{t.name}: image is {len(image.data)} bytes, the node takes at most "
                f"{max_size} (max_size); use the 4 MB build or a smaller image"
            )
            problems.append(res.message)
            continue
        why = plan_problem(image.version, res.before, opts.force)
        if why is not None:
            res.status, res.message = why[0], f"{t.name}: {why[1]}"
            if why[0] == "refused":
                problems.append(res.message)
        else:
            res.status = "would update" if opts.dry_run else "not attempted"
    if problems:
        report.exit_code = int(ExitCode.DEVICE if node_problem else ExitCode.USER_ERROR)
        for r in results:
            if r.status in ("not attempted", "would update"):
                r.status, r.message = "not attempted", "the rollout was refused before any upload"
        return report
    if opts.dry_run:
        report.ok = True
        return report
    for t, res, st in zip(targets, results, statuses, strict=True):
        if res.status == "skipped":
            continue
        assert st is not None
        t0 = time.monotonic()
        uploaded = False
        try:
            say(f"{t.name}: {res.before} -> {image.version} ({len(image.data)} bytes)")
            upload(
                t,
                image.data,
                progress(t, len(image.data)) if progress else None,
                timeout=opts.upload_timeout,
            )
            uploaded = True
            want = str(st["next_partition"])
            after = wait_for_version(t, image.version, want, opts.boot_timeout)
            res.after, res.partition = str(after["version"]), str(after["running_partition"])
            res.message = f"runs {res.after} on {res.partition}"
            if opts.csi_check:
                res.message += "; " + wait_for_csi(
                    t, opts.frame_timeout, opts.csi_port, opts.health
                )
            res.status = "updated"
        except OtaError as e:
            res.status, res.message = "failed", str(e)
            # where is it now? (a crashed upload reboots into the old image); a node that
            # already had its boot timeout gets one short look
            look = 3.0 if uploaded else min(opts.boot_timeout, 15.0)
            try:
                now = wait_for_any(t, look)
                res.after, res.partition = str(now["version"]), str(now["running_partition"])
            except OtaError:
                res.after = res.partition = None
            report.exit_code = int(CheckFailed.exit_code)
            break
        finally:
            res.seconds = round(time.monotonic() - t0, 2)
    report.ok = all(r.status in ("updated", "skipped") for r in results)
    for r in results:
        if r.status == "not attempted":
            r.message = "not attempted: the rollout stopped at the first failure"
    return report


def wait_for_any(t: Target, timeout: float) -> dict:
    """The node's status as soon as it answers again (after a reboot), or OtaError."""
    deadline = time.monotonic() + timeout
    while True:
        time.sleep(0.5)
        try:
            return get_status(t, timeout=2.0)
        except OtaError:
            if time.monotonic() >= deadline:
                raise
