"""The sandbox's socket layer: a threading HTTP server on a loopback port serving SandboxCore."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import socketserver
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast
from urllib.parse import urlsplit

from .core import (
    _CONTROL_PREFIX,
    _POLL_INTERVAL,
    MAX_BODY_BYTES,
    SandboxCore,
    _log,
)
from .wire import _error, _Response


class SandboxServer(SandboxCore):
    """SandboxCore served over HTTP on a loopback port: `start()` (or `with`) binds and serves
    in a daemon thread, `stop()` closes it. The constructor's arguments are SandboxCore's."""

    _httpd: _HTTPServer | None = None
    _thread: threading.Thread | None = None
    _closed = False

    def __repr__(self) -> str:  # the default would show nothing useful, and never the key
        where = self.url if self._httpd is not None else "not started"
        count = sum(len(store) for store in self._teams.values())
        teams = f" in {len(self._teams)} teams" if len(self._teams) > 1 else ""
        return f"<SandboxServer {where}, {count} incidents{teams}>"

    # -- lifecycle --------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The base URL, e.g. `http://127.0.0.1:54321`; RuntimeError before start."""
        if self._httpd is None:
            raise RuntimeError("the sandbox is not started")
        host = self.host
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{self._httpd.server_port}"

    def start(self) -> SandboxServer:
        """Bind and serve in a daemon thread; returns self. A server starts once."""
        self._bind()
        assert self._httpd is not None
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": _POLL_INTERVAL},
            name=f"spike-sandbox-{self._httpd.server_port}",
            daemon=True,
        )
        # The serving thread (and the request threads it starts, which inherit its mask)
        # never takes SIGINT or SIGTERM: the kernel may hand a process's signal to any thread
        # that does not block it, and Python runs the handler only in the main thread, so a
        # signal taken here left `reconcile sandbox` asleep, never stopping.
        blocked = {signal.SIGINT, signal.SIGTERM}
        on_posix = hasattr(signal, "pthread_sigmask")
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, blocked) if on_posix else None
        try:
            self._thread.start()
        finally:
            if previous is not None:
                signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        return self

    def stop(self) -> None:
        """Stop serving, drop open keep-alive connections, close the port and the calls file.

        Idempotent; the recorded calls and incidents stay readable.
        """
        httpd = self._httpd
        if httpd is None:
            return
        if self._thread is not None:
            httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._close()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _bind(self) -> None:
        if self._httpd is not None:
            raise RuntimeError("the sandbox was already started")
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        self._httpd = _HTTPServer((self.host, self.port), self, family)
        if self.calls_file is not None:
            try:
                self._calls_out = open(self.calls_file, "a", encoding="utf-8")  # noqa: SIM115
            except OSError:
                self._httpd.server_close()
                self._httpd = None  # not started: stop() must not wait for a serve loop
                raise

    def _close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            out, self._calls_out = self._calls_out, None
        assert self._httpd is not None
        # Idle keep-alive connections would keep their handler threads (and sockets) alive.
        self._httpd.drop_connections()
        self._httpd.server_close()
        if out is not None:
            out.close()


# ---------------------------------------------------------------------------------------------
# The socket layer


class _HTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that knows its sandbox and can drop idle keep-alive connections."""

    # Handler threads must never keep the interpreter alive (e.g. a client that never closes).
    daemon_threads = True
    # socketserver's default backlog of 5 drops the SYNs of a client opening 8 connections at
    # once; each dropped SYN is retried after a second (measured: 1 s stalls at parallelism 8).
    request_queue_size = 128

    def __init__(
        self, address: tuple[str, int], sandbox: SandboxServer, family: socket.AddressFamily
    ) -> None:
        self.address_family = family
        self.sandbox = sandbox
        self._connections: set[socket.socket] = set()
        self._connections_changed = threading.Condition()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind would look up the host's FQDN: a reverse DNS query that can
        # take seconds, for a name nothing here uses.
        socketserver.TCPServer.server_bind(self)
        self.server_name = self.sandbox.host
        self.server_port = self.socket.getsockname()[1]

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_changed:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        # Called once per connection when its handler is done (or never started).
        with self._connections_changed:
            self._connections.discard(request)
            self._connections_changed.notify_all()
        super().shutdown_request(request)

    def drop_connections(self, timeout: float = 5.0) -> None:
        """Shut every open connection down and wait for their handlers to finish."""
        with self._connections_changed:
            for conn in self._connections:
                # OSError: the peer closed it first, nothing left to drop.
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
            self._connections_changed.wait_for(lambda: not self._connections, timeout)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-response, or our own drop_connections, is not a bug.
        if isinstance(sys.exc_info()[1], OSError):
            _log.debug("connection from %s ended early", client_address, exc_info=True)
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    """Parses HTTP, hands method, path, auth headers and body to the sandbox, writes JSON."""

    protocol_version = "HTTP/1.1"  # keep-alive: a benchmark must not pay a handshake per call
    # Without it, a response written in two segments (headers, body) waits for the client's
    # delayed ACK: ~40 ms per keep-alive request.
    disable_nagle_algorithm = True
    server_version = "SpikeSandbox/1"
    sys_version = ""

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # http.server answers a method with no do_* handler with 501 and an HTML page; a JSON
        # API answers 405 with a JSON body and an Allow header, after the usual auth.
        if code == 501 and self.command:
            self._dispatch()
            return
        super().send_error(code, message, explain)

    def _dispatch(self) -> None:
        sandbox = cast(_HTTPServer, self.server).sandbox
        target = urlsplit(self.path)
        path = target.path
        control = path.startswith(_CONTROL_PREFIX)
        raw, framing_error = self._read_body()
        if framing_error is not None:
            # The rest of the stream cannot be trusted to start a new request.
            self.close_connection = True
            response = framing_error
            if not control:
                sandbox._record_unread(self.command, path, response.status)
        elif control:
            response = sandbox._handle_control(self.command, path, raw, target.query)
        else:
            response = sandbox._handle_api(
                self.command,
                path,
                self.headers.get("x-api-key"),
                self.headers.get("x-team-id"),
                raw,
                target.query,
            )
        self._send(response)

    def _read_body(self) -> tuple[bytes, _Response | None]:
        if self.headers.get("Transfer-Encoding"):
            return b"", _error(411, "send the body with a Content-Length, not chunked")
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            return b"", None
        try:
            length = int(length_header)
        except ValueError:
            return b"", _error(400, "invalid Content-Length")
        if length < 0:
            return b"", _error(400, "invalid Content-Length")
        if length > MAX_BODY_BYTES:
            return b"", _error(413, f"request body over {MAX_BODY_BYTES} bytes")
        return self.rfile.read(length), None

    def _send(self, response: _Response) -> None:
        data = json.dumps(response.body, separators=(",", ":")).encode()
        self.send_response(response.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":  # the answer to HEAD has headers only, Content-Length too
            self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        # The request line holds method and path only, never a header, so never the key.
        _log.debug("%s %s", self.address_string(), format % args)
