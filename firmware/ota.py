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

import re
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from csi_edge.errors import CheckFailed, DeviceError, ExitCode, InputError, file_error
from csi_edge.firmware import espimage
from csi_edge.firmware.otanode import (  # noqa: F401 - re-exported: the ota API in one place
    DEFAULT_PORT,
    UPLOAD_TIMEOUT,
    OtaError,
    Target,
    attach_psks,
    get_status,
    load_targets,
    parse_node,
    upload,
)

PROJECT = "esp32-csi-node"


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
