"""The HTTP live view: the page, a live stream, ``/health``, ``/metrics`` and JSON state.

Routes::

    /              the live page (one file, no CDN: everything is served from here)
    /api/stream    server-sent events: one ``report`` event per report interval
    /api/state     the latest report of every node (JSON)
    /api/history   the last minutes of every node, for the page's traces (JSON)
    /health        the gateway's health (JSON); HTTP 503 when unhealthy
    /metrics       Prometheus text format (prometheus-client)

aiohttp on its own thread and event loop, not the standard library's threaded server: a thread per
connection let 1,084 idle sockets make the page unreachable and 200 clients produce BrokenPipe
tracebacks. Here a connection costs a few kB, and :class:`_ConnectionGuard` closes connections that
sit idle (including slow-header "slowloris" clients) and, over the limit, the oldest idle ones, so
the page stays reachable. The gateway's loop only hands reports over (``call_soon_threadsafe``).

Bound to 127.0.0.1 unless told otherwise; on any other address every request needs the token from
the state directory (:mod:`csi_edge.sinks.http_token`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from importlib import resources
from typing import Any

from aiohttp import web

from csi_edge.report import NodeReport, jsonable
from csi_edge.sinks.health import evaluate
from csi_edge.sinks.history import History
from csi_edge.sinks.http_token import is_loopback, load_or_create_token, token_matches

log = logging.getLogger("csi_edge.http")
# aiohttp logs every malformed request (a port scanner, TLS on the HTTP port) with a traceback at
# DEBUG: noise for `-vv`, not a bug of ours. Its errors (a handler that raised) still show.
logging.getLogger("aiohttp.server").setLevel(logging.INFO)

HISTORY_POINTS = 600  #: per node: 10 minutes at one report a second
MAX_CONNECTIONS = 256
MAX_STREAMS = 64
IDLE_TIMEOUT_S = 15.0  #: a connection with no request in flight for this long is closed
STREAM_QUEUE = 8  #: reports a slow stream client may fall behind before it is dropped
COOKIE = "csi_edge_token"

StatusFn = Callable[[], dict]


class _ConnectionGuard:
    """Closes idle connections (no request in flight for ``idle_timeout`` s: this covers clients
    that never finish their headers) and keeps at most ``limit`` connections by closing the
    oldest idle ones first. Hand-written because aiohttp has keep-alive timeouts but neither a
    header timeout nor a connection limit."""

    def __init__(self, server: Any, limit: int, idle_timeout: float) -> None:
        self.server = server  # aiohttp.web.Server: .connections -> handlers with .transport
        self.limit = limit
        self.idle_timeout = idle_timeout
        self.busy: dict[Any, int] = {}  # transport -> requests in flight
        self.last: dict[Any, float] = {}  # transport -> opened / last request done
        self.closed_idle = 0
        self.closed_over_limit = 0

    def factory(self) -> Any:
        """Protocol factory for ``loop.create_server``: make room before accepting one more."""
        live = self._live()
        if len(live) >= self.limit:
            self._evict(live, len(live) - self.limit + 1)
        return self.server()

    def _live(self) -> list:
        return [h.transport for h in self.server.connections if h.transport is not None]

    def _idle_oldest_first(self, live: list) -> list:
        now = time.monotonic()
        for tr in live:
            self.last.setdefault(tr, now)
        return sorted((tr for tr in live if not self.busy.get(tr)), key=lambda tr: self.last[tr])

    def _evict(self, live: list, n: int) -> None:
        for tr in self._idle_oldest_first(live)[:n]:
            self.closed_over_limit += 1
            self._close(tr)

    def _close(self, tr: Any) -> None:
        self.busy.pop(tr, None)
        self.last.pop(tr, None)
        tr.abort()

    def sweep(self) -> None:
        live = self._live()
        now = time.monotonic()
        for tr in self._idle_oldest_first(live):
            if now - self.last[tr] > self.idle_timeout:
                self.closed_idle += 1
                self._close(tr)
        alive = set(live)
        for d in (self.busy, self.last):
            for tr in [t for t in d if t not in alive]:
                d.pop(tr, None)

    def begin(self, tr: Any) -> None:
        self.busy[tr] = self.busy.get(tr, 0) + 1

    def end(self, tr: Any) -> None:
        self.busy[tr] = max(self.busy.get(tr, 1) - 1, 0)
        self.last[tr] = time.monotonic()


class HttpSink:
    """Serves the live view; ``port=0`` picks a free port (see ``.port``).

    ``status`` (called on the gateway's loop at every publish) gives the gateway's status dict for
    ``/health`` and ``/metrics`` (see :mod:`csi_edge.sinks.health`); ``token`` is required from
    clients when set (default: required exactly when ``host`` is not loopback).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 8080,
        *,
        status: StatusFn | None = None,
        token: str | None | bool = True,
        report_interval_s: float = 1.0,
        max_connections: int = MAX_CONNECTIONS,
        max_streams: int = MAX_STREAMS,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
    ) -> None:
        from csi_edge.sinks.metrics import StatusCollector

        if token is True:
            token = None if is_loopback(host) else load_or_create_token()
        self.token: str | None = token or None
        self.status_fn = status
        self.report_interval_s = report_interval_s
        self.max_streams = max_streams
        self._page = resources.files("csi_edge.sinks").joinpath("live.html").read_bytes()
        self._latest: dict[str, dict] = {}
        self._history: dict[str, History] = {}
        self._status: dict = {}
        self._status_t: float | None = None
        self._streams: set[asyncio.Queue] = set()
        self.stream_drops = 0
        self.collector = StatusCollector(self)
        _raise_fd_limit()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._sock.bind((host, port))
            self._sock.listen(512)
        except OSError:
            self._sock.close()
            raise
        self._sock.setblocking(False)
        self.host, self.port = self._sock.getsockname()[:2]
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stopped = asyncio.Event()
        self._error: BaseException | None = None
        self._limits = (max_connections, idle_timeout_s)
        self.guard: _ConnectionGuard | None = None
        self._thread = threading.Thread(target=self._serve, name="csi-edge-http", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise self._error
        self._running_file = _write_running_file(self.url)

    # -- the server thread -----------------------------------------------------------------------
    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._main())
        finally:
            self._loop.close()

    async def _main(self) -> None:
        app = web.Application(middlewares=[self._middleware], handler_args={"max_field_size": 8190})
        app.router.add_get("/", self._page_handler)
        app.router.add_get("/index.html", self._page_handler)
        app.router.add_get("/api/state", self._state_handler)
        app.router.add_get("/api/history", self._history_handler)
        app.router.add_get("/api/stream", self._stream_handler)
        app.router.add_get("/health", self._health_handler)
        app.router.add_get("/metrics", self._metrics_handler)
        runner = web.AppRunner(
            app, access_log=None, handle_signals=False, keepalive_timeout=IDLE_TIMEOUT_S
        )
        try:
            await runner.setup()
            self.guard = _ConnectionGuard(runner.server, *self._limits)
            server = await self._loop.create_server(self.guard.factory, sock=self._sock)
        except BaseException as e:  # noqa: BLE001 - reported to the constructor
            self._error = e
            self._ready.set()
            return
        self._ready.set()
        sweeper = asyncio.ensure_future(self._sweep())
        try:
            await self._stopped.wait()
        finally:
            sweeper.cancel()
            server.close()
            for q in list(self._streams):
                q.put_nowait(None)  # ends each stream's handler
            with contextlib.suppress(Exception):
                await runner.cleanup()

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self.guard.sweep()

    # -- middleware and handlers -----------------------------------------------------------------
    @web.middleware
    async def _middleware(self, request, handler):
        tr = request.transport
        if tr is not None and self.guard is not None:
            self.guard.begin(tr)
        try:
            if self.token is not None:
                given = request.query.get("token") or request.cookies.get(COOKIE)
                auth = request.headers.get("Authorization", "")
                if auth.startswith("Bearer "):
                    given = auth[7:].strip()
                if not token_matches(given, self.token):
                    return web.Response(
                        status=401,
                        text="token required: open http://HOST:PORT/?token=<token> "
                        "(csi-edge status --token prints it) or send 'Authorization: Bearer <token>'\n",
                    )
            resp = await handler(request)
            if self.token is not None and request.query.get("token"):
                resp.set_cookie(COOKIE, self.token, httponly=True, samesite="Strict")
            resp.headers.setdefault("Cache-Control", "no-store")
            return resp
        except (ConnectionError, asyncio.CancelledError):
            raise  # a client that hung up: aiohttp closes quietly
        finally:
            if tr is not None and self.guard is not None:
                self.guard.end(tr)

    async def _page_handler(self, request):

        return web.Response(body=self._page, content_type="text/html", charset="utf-8")

    def _json(self, data: Any, status: int = 200):

        return web.Response(
            text=json.dumps(jsonable(data), separators=(",", ":")),
            status=status,
            content_type="application/json",
        )

    async def _state_handler(self, request):
        return self._json(self.snapshot())

    async def _history_handler(self, request):
        nodes = {k: v.points() for k, v in self._history.items()}
        return self._json({"t": time.time(), "nodes": nodes})

    async def _health_handler(self, request):
        health = self.health()
        return self._json(health, 503 if health["status"] in ("unhealthy", "starting") else 200)

    async def _metrics_handler(self, request):
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        from csi_edge.sinks.metrics import INFERENCE_REGISTRY

        body = generate_latest(self.collector.registry) + generate_latest(INFERENCE_REGISTRY)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _stream_handler(self, request):

        if len(self._streams) >= self.max_streams:
            return web.Response(status=503, text=f"too many live streams (at most {self.max_streams})\n")
        resp = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"}
        )
        queue: asyncio.Queue = asyncio.Queue(STREAM_QUEUE)
        self._streams.add(queue)
        try:
            await resp.prepare(request)
            if self._latest:
                await resp.write(self._event(self._payload()))
            while True:
                data = await queue.get()
                if data is None:
                    break
                await resp.write(data)
        except (ConnectionError, asyncio.CancelledError):
            pass  # the browser went away
        finally:
            self._streams.discard(queue)
        return resp

    # -- data --------------------------------------------------------------------------------------
    @staticmethod
    def _event(payload: dict) -> bytes:
        return b"event: report\ndata: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"

    def _payload(self) -> dict:
        return {"t": time.time(), "nodes": self._latest, "health": self.health()}

    def _apply(self, reports: list[dict], status: dict | None, t: float) -> None:
        """Runs on the HTTP loop: the only writer of the served state."""
        for r in reports:
            self._latest[r["node"]] = r
            hist = self._history.get(r["node"])
            if hist is None:
                hist = self._history[r["node"]] = History(HISTORY_POINTS)
            hist.append(r)
        if status is not None:
            self._status, self._status_t = status, t
        if not self._streams:
            return
        data = self._event(self._payload())
        for q in list(self._streams):
            if q.full():  # a client that does not read: drop it rather than buffer forever
                self.stream_drops += 1
                self._streams.discard(q)
                with contextlib.suppress(asyncio.QueueEmpty):
                    q.get_nowait()
                q.put_nowait(None)
            else:
                q.put_nowait(data)

    def _drop(self, keys: list[str]) -> None:
        """Runs on the HTTP loop: a forgotten node leaves the page, the state and the history
        (each kept 600 points: a node that reboots under a new key, forever, grew it unbounded)."""
        for key in keys:
            self._latest.pop(key, None)
            self._history.pop(key, None)

    def health(self) -> dict:
        """The gateway's health as served on ``/health`` (see :func:`~csi_edge.sinks.health.evaluate`)."""
        return evaluate(self._status, self._status_t, time.time(), self.report_interval_s)

    def snapshot(self) -> dict:
        return {"t": time.time(), "nodes": dict(self._latest)}

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def publish(self, reports: list[NodeReport]) -> None:
        """Called on the gateway's loop: convert, then hand over to the HTTP loop."""
        data = [r.to_json() for r in reports]
        status = None
        if self.status_fn is not None:
            try:
                status = self.status_fn()
            except Exception as exc:  # noqa: BLE001 - health is best effort; reports go on
                log.warning("gateway status failed: %r", exc)
        with contextlib.suppress(RuntimeError):  # loop already closed (shutdown)
            self._loop.call_soon_threadsafe(self._apply, data, status, time.time())

    def forget(self, keys: list[str]) -> None:
        """Called on the gateway's loop when ingest forgot silent nodes (``Gateway._forget``)."""
        with contextlib.suppress(RuntimeError):  # loop already closed (shutdown)
            self._loop.call_soon_threadsafe(self._drop, list(keys))

    def close(self) -> None:
        if self._thread.is_alive():
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._stopped.set)
            self._thread.join(10)
        if self._running_file is not None:
            with contextlib.suppress(OSError):
                self._running_file.unlink()
            self._running_file = None


def _raise_fd_limit(want: int = 8192) -> None:
    """Raise the soft open-file limit towards the hard one (often 1024 soft on a Pi): each
    connection is a descriptor, and running out stalls accept() for everyone."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        target = want if hard == resource.RLIM_INFINITY else min(want, hard)
        if soft != resource.RLIM_INFINITY and soft < target:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ImportError, ValueError, OSError):  # not on this platform / not allowed
        pass



def _write_running_file(url: str):
    """``<state dir>/http.json`` while serving: where ``csi-edge status`` finds this gateway."""
    from csi_edge.paths import state_dir

    path = state_dir() / "http.json"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"url": url, "pid": os.getpid()}))
        return path
    except OSError:
        return None
