"""Assemble a :class:`~csi_edge.gateway.Gateway` from a :class:`~csi_edge.config.GatewayConfig` and run it
as a service: sources and sinks from the config, the pose bundle loaded once, SIGINT/SIGTERM stop.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TextIO

from csi_edge import sinks as _sinks
from csi_edge.config import ConfigError, GatewayConfig, parse_hostport
from csi_edge.gateway import Gateway
from csi_edge.ingest import Source
from csi_edge.sinks import Sink
from csi_edge.sinks.build import rotate_policy

log = logging.getLogger("csi_edge.service")

DEFAULT_POSE = "csi-edge-pose"
DEFAULT_VITALS = "csi-edge-vitals"


def build_capture(cfg: GatewayConfig) -> Any | None:
    """The raw capture ring (sinks.capture), or None."""
    if not cfg.sinks.capture:
        return None
    from csi_edge.sinks.capture import CaptureRing

    try:
        return CaptureRing(cfg.sinks.capture, rotate_policy(cfg.sinks.capture_rotate))
    except OSError as e:
        raise ConfigError(
            f"sinks.capture {cfg.sinks.capture}: cannot write there: {e.strerror or e}"
        ) from None


def build_sources(cfg: GatewayConfig, capture: Any | None = None) -> list[Source]:
    from csi_edge.sources.serial import SerialSource
    from csi_edge.sources.udp import UdpSource

    sources: list[Source] = []
    for spec in cfg.ingest.udp:
        host, port = parse_hostport(spec, what="ingest.udp")
        sources.append(
            UdpSource(
                host,
                port,
                iq_order=cfg.ingest.iq_order,
                allow=cfg.ingest.allow,
                rcvbuf=cfg.ingest.rcvbuf,
                raw_sink=capture,
            )
        )
    for s in cfg.ingest.serial:
        sources.append(SerialSource(s.port, s.baud, iq_order=cfg.ingest.iq_order))
    return sources


def build_sinks(
    cfg: GatewayConfig,
    console_stream: TextIO | None = None,
    totals: Callable[[], str] | None = None,
    status: Callable[[], dict] | None = None,
) -> list[Sink]:
    """The configured sinks; ``console_stream`` (default stdout) is where the console view goes:
    stderr when stdout carries ``--json``; ``totals`` gives its ingest-totals line; ``status``
    the gateway status for the HTTP sink's /health and /metrics."""
    return list(build_sink_map(cfg, console_stream, totals, status).values())


def build_sink_map(
    cfg: GatewayConfig,
    console_stream: TextIO | None = None,
    totals: Callable[[], str] | None = None,
    status: Callable[[], dict] | None = None,
    only: set[str] | None = None,
) -> dict[str, Sink]:
    """The configured sinks by config key, built by the sink registry
    (:data:`csi_edge.sinks.SINKS`): a reload rebuilds only the ones whose section changed
    (``only``)."""
    return _sinks.build_sink_map(cfg, console_stream, totals, status, only)


def _choose_variant(name: str, cfg: GatewayConfig, task: str) -> str | None:
    """The variant of bundle ``name`` to open, from its manifest alone (no model file opened):
    the configured precision, falling back with a warning to the bundle's default variant when
    it was never quantized to that precision; a bundle of another task is refused."""
    from csi_edge.inference.bundle import resolve
    from csi_edge.inference.manifest import ManifestError, load_manifest

    manifest = load_manifest(resolve(name))
    variants = manifest.variants
    variant = cfg.models.precision
    if variant not in variants:
        log.warning(
            "%s has no %r variant (has: %s); using its default variant",
            name,
            variant,
            ", ".join(variants),
        )
        variant = None
    variant = _without_onnxruntime(name, manifest, variant)
    kind = "vitals" if manifest.task == "vitals" else "pose"  # what open_runtime builds
    if kind != task:
        raise ManifestError(f"{name}: a {kind} model, expected a {task} model")
    return variant


def _open_model(name: str, cfg: GatewayConfig, task: str) -> Any:
    """Open bundle ``name`` in the variant :func:`_choose_variant` picks."""
    from csi_edge.inference.runtime import open_runtime

    variant = _choose_variant(name, cfg, task)
    return open_runtime(name, variant=variant, threads=cfg.models.threads)


def _without_onnxruntime(name: str, manifest: Any, variant: str | None) -> str | None:
    """Where onnxruntime is not installed (no wheel on 32-bit ARM), run the LiteRT variant of
    the same precision instead of failing on the ONNX one, and say so."""
    from csi_edge.inference.backends import onnxruntime_available

    variants = manifest.variants
    chosen = manifest.variant(variant)
    if chosen.backend != "onnxruntime" or onnxruntime_available():
        return variant
    lite = f"{chosen.precision}-tflite"
    if lite in variants:
        log.warning(
            "onnxruntime is not installed on this platform: %s runs its %r variant instead of %r",
            name, lite, chosen.name,
        )  # fmt: skip
        return lite
    return variant  # opening it raises the clear "needs onnxruntime" error


def _load_optional(name: str, default: str, cfg: GatewayConfig, task: str) -> Any | None:
    """A missing *default* bundle only disables that model (with a warning); a bundle the user
    named that fails to load is a ConfigError naming it and the problem."""
    if not name:
        return None
    from csi_edge.inference.manifest import ManifestError

    try:
        return _open_model(name, cfg, task)
    except ManifestError as e:
        if name == default:
            log.warning("%s model disabled: %s", task, e)
            return None
        raise ConfigError(f"models.{task}: {e}") from None


def load_pose_runtime(cfg: GatewayConfig) -> Any | None:
    """The pose runtime (streaming encoder + temporal head, or a whole-window model such as
    RuView pose_v1), or None."""
    return _load_optional(cfg.models.pose, DEFAULT_POSE, cfg, "pose")


def load_vitals_model(cfg: GatewayConfig) -> Any | None:
    """The vital-sign model reported beside the DSP estimate, or None."""
    return _load_optional(cfg.models.vitals, DEFAULT_VITALS, cfg, "vitals")


def build_inventory(cfg: GatewayConfig, where: str = "config") -> Any:
    """The node inventory of ``cfg`` (``[nodes.<id>]``, ``[inventory] results``), for this
    gateway's id (``id_<gateway_id>_<n>`` keys)."""
    from csi_edge.gatewayid import resolve_gateway_id
    from csi_edge.inventory import inventory_from_config

    return inventory_from_config(cfg, resolve_gateway_id(cfg.gateway_id), where)


@dataclass(frozen=True)
class ChildModel:
    """The vitals model as the gateway process knows it when the estimator process runs it:
    the bundle and variant, no session. Opening it here as well cost this process ~31 MB RSS
    (onnxruntime's library and a session, ~10 MB of it private) for a model it never runs
    (``python scripts/bench_soak.py``; docs/gateway-operations.md, Memory)."""

    name: str
    variant: str | None
    threads: int = 1


def resolve_vitals_model(cfg: GatewayConfig) -> ChildModel | None:
    """The vitals model to open in the estimator process, checked as far as its manifest goes
    (the files are opened there: :func:`vitals_model_ready`); None when off or when the
    default bundle is unusable (with a warning)."""
    name = cfg.models.vitals
    if not name:
        return None
    from csi_edge.inference.manifest import ManifestError

    try:
        return ChildModel(name, _choose_variant(name, cfg, "vitals"), cfg.models.threads)
    except ManifestError as e:
        return _model_failed(name, str(e))


def _model_failed(name: str, message: str) -> None:
    """What :func:`_load_optional` does with a bundle that does not load."""
    if name == DEFAULT_VITALS:
        log.warning("vitals model disabled: %s", message)
        return None
    raise ConfigError(f"models.vitals: {message}")


def vitals_model_loader(cfg: GatewayConfig, opened: Any) -> Callable[[], Any]:
    """What the estimator process calls to open the vitals model ``opened`` (a
    :class:`ChildModel` or a runtime): a picklable ``open_runtime`` call for the same variant.
    Not ``partial(load_vitals_model, cfg)``: unpickling that imports this module, the gateway,
    the sinks and the config into the child (~11 MB RSS) for nothing, and would log the variant
    warnings twice."""
    from csi_edge.inference.runtime import open_runtime

    return functools.partial(
        open_runtime, cfg.models.vitals, variant=opened.variant, threads=cfg.models.threads
    )


def vitals_model_ready(cfg: GatewayConfig, estimators: Any, model: ChildModel | None) -> Any:
    """Wait until the estimator process has opened ``model``: ``model`` if it did; if it could
    not, what a bundle that fails to load means (a warning and no model for the default
    bundle, else a ConfigError naming models.vitals; the process runs on without it)."""
    if model is None:
        return None
    from csi_edge.errors import InputError
    from csi_edge.estimators import ModelLoadError

    try:
        estimators.model_loaded()
    except ModelLoadError as e:
        if e.kind == "manifest":
            return _model_failed(model.name, e.message)
        if e.kind == "input":
            raise InputError(e.message) from None
        raise
    return model


def build_gateway(
    cfg: GatewayConfig,
    extra_sources: Iterable[Source] = (),
    sinks: Iterable[Sink] | None = None,
    console_stream: TextIO | None = None,
) -> Gateway:
    from csi_edge.app.status import StatusBuilder
    from csi_edge.app.timing import TimedModel

    capture = build_capture(cfg)
    sources = build_sources(cfg, capture) + list(extra_sources)
    if not sources:
        raise ConfigError("no sources: set ingest.udp or ingest.serial (or pass --udp / --serial)")
    from csi_edge.estimators import ProcessEstimators

    inventory = build_inventory(cfg)
    pose, vitals = load_pose_runtime(cfg), resolve_vitals_model(cfg)  # bad bundles fail here
    # the estimates and the vitals model run in their own process, off the ingest loop
    # (csi_edge.estimators); it starts now, opening the model while the sinks are built here
    estimators = ProcessEstimators(
        cfg.baselines_dir,
        vitals_model_loader(cfg, vitals) if vitals else None,
        cfg.vitals.to_vitals_config(),
    )
    estimators.start()
    try:
        gateway = Gateway(
            cfg,
            sources,
            [],
            None if pose is None else TimedModel(pose, "pose"),
            None,
            inventory=inventory,
            estimators=estimators,
        )
        gateway.capture = capture
        gateway.status = StatusBuilder(gateway)
        gateway.status.names = gateway.names  # the inventory's names in /health
        gateway.console_stream = console_stream
        gateway.sink_map = (
            build_sink_map(cfg, console_stream, gateway.totals_line, gateway.status)
            if sinks is None
            else {f"sink{i}": s for i, s in enumerate(sinks)}
        )
        gateway.sinks = list(gateway.sink_map.values())
        vitals = vitals_model_ready(cfg, estimators, vitals)  # a broken file fails here
        gateway.vitals_model = None if vitals is None else TimedModel(vitals, "vitals")
    except BaseException:
        estimators.close()
        raise
    return gateway


async def run_until_signal(
    gateway: Gateway,
    duration: float | None = None,
    *,
    reload: Callable[[], GatewayConfig] | None = None,
    banner: bool = False,
) -> None:
    """Run the gateway as a daemon (:mod:`csi_edge.app.daemon`) until ``duration`` passes or
    SIGINT/SIGTERM arrives; SIGHUP applies ``reload()`` (the re-read config); systemd is told
    READY/WATCHDOG/STATUS/STOPPING when ``$NOTIFY_SOCKET`` is set."""
    from csi_edge.app.banner import banner_lines
    from csi_edge.app.daemon import Daemon
    from csi_edge.app.reload import Reloader

    daemon = Daemon(
        gateway,
        status=getattr(gateway, "status", None),
        reload=None if reload is None else Reloader(gateway, reload),
        banner=(lambda: banner_lines(gateway)) if banner else None,
    )
    try:
        await daemon.run(duration)
    finally:
        capture = getattr(gateway, "capture", None)
        if capture is not None:
            capture.close()
