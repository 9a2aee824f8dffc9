"""The sandbox against hostile or broken input: methods no endpoint takes, and `reconcile
sandbox` options it cannot honour (a port out of range or taken, a non-loopback host, a calls
file it cannot write). Each gives one clean line, exit 1, no traceback."""

from __future__ import annotations

import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from helpers import RECONCILE, cli

from reconciler.sandbox import SandboxServer

AUTH = {"x-api-key": "dev", "x-team-id": "dev"}


@pytest.fixture
def server() -> Iterator[SandboxServer]:
    with SandboxServer({"t1": {}}) as running:
        yield running


@pytest.mark.parametrize("method", ["TRACE", "OPTIONS", "PUT", "CONNECT", "BREW"])
@pytest.mark.parametrize(
    ("path", "allow"),
    [
        ("/incidents/t1", "GET"),
        ("/incidents/acknowledge", "POST"),
        ("/incidents/t1/public-sharing", "PATCH"),
        ("/no/such/thing", "DELETE, GET, PATCH, POST"),
    ],
)
def test_a_method_no_endpoint_takes_is_a_json_405_with_allow(
    server: SandboxServer, method: str, path: str, allow: str
) -> None:
    with httpx.Client(base_url=server.url, headers=AUTH) as client:
        response = client.request(method, path)
        assert response.status_code == 405
        assert response.headers["allow"] == allow
        assert response.headers["content-type"] == "application/json"
        assert response.json() == {
            "message": f"method {method} is not allowed for {path}",
            "error": "Method Not Allowed",
        }
        # The connection is still good for the next request.
        assert client.get("/incidents/t1").status_code == 200
    assert server.calls[-2:] == [
        {"method": method, "path": path, "body": None, "status": 405},
        {"method": "GET", "path": "/incidents/t1", "body": None, "status": 200},
    ]
    assert server.incidents()["t1"]["status"] == "NACK"


def test_head_gets_the_405_headers_without_a_body(server: SandboxServer) -> None:
    with httpx.Client(base_url=server.url, headers=AUTH) as client:
        response = client.head("/incidents/t1")
        assert (response.status_code, response.headers["allow"]) == (405, "GET")
        assert response.content == b""
        assert client.get("/incidents/t1").json()["incident"]["counterId"] == "t1"


def test_unknown_methods_need_the_key_like_any_api_call(server: SandboxServer) -> None:
    with httpx.Client(base_url=server.url) as client:
        assert client.request("TRACE", "/incidents/t1").status_code == 401


def test_control_endpoints_answer_405_with_their_methods(server: SandboxServer) -> None:
    with httpx.Client(base_url=server.url) as client:
        calls = client.request("OPTIONS", "/_sandbox/calls")
        incidents = client.put("/_sandbox/incidents", json={"t1": {"status": "RES"}})
    assert (calls.status_code, calls.headers["allow"]) == (405, "DELETE, GET")
    assert (incidents.status_code, incidents.headers["allow"]) == (405, "GET, POST")
    assert server.incidents()["t1"]["status"] == "NACK"


# ---------------------------------------------------------------------------------------------
# `reconcile sandbox` options


def test_a_port_out_of_range_is_a_usage_error() -> None:
    result = cli("sandbox", "--port", "99999")
    assert result.code == 1
    assert "Invalid value for '--port': 99999 is not in the range 0<=x<=65535." in result.stderr
    assert result.stdout == ""


def test_a_busy_port_is_one_line() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = cli("sandbox", "--port", str(port))
    assert result.code == 1
    assert (
        result.stderr == f"error: cannot listen on 127.0.0.1 port {port}: Address already in use\n"
    )


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.1", "example.com"])
def test_a_host_beyond_loopback_is_refused_with_the_reason(host: str) -> None:
    result = cli("sandbox", "--host", host, "--port", "0")
    assert result.code == 1
    assert result.stderr == (
        f"error: --host {host}: the sandbox listens on loopback addresses only (127.0.0.1, ::1, "
        "localhost): its /_sandbox/ control endpoints change incidents without auth and its key "
        'and team default to "dev"; run it on the machine (or in the container) that runs '
        "reconcile\n"
    )


def test_a_calls_file_it_cannot_write_is_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir" / "calls.jsonl"
    result = cli("sandbox", "--port", "0", "--calls-file", str(missing))
    assert result.code == 1
    assert result.stderr == f"error: --calls-file {missing}: No such file or directory\n"
    result = cli("sandbox", "--port", "0", "--calls-file", str(tmp_path))
    assert result.code == 1
    assert "is a directory" in result.stderr.lower() and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("signum", "code", "said"),
    [(signal.SIGINT, 130, "Interrupted."), (signal.SIGTERM, 143, "Terminated.")],
)
def test_ctrl_c_or_sigterm_stops_the_sandbox_and_frees_the_port(
    tmp_path: Path, signum: int, code: int, said: str
) -> None:
    calls = tmp_path / "calls.jsonl"
    proc = subprocess.Popen(
        [RECONCILE, "sandbox", "--port", "0", "--calls-file", str(calls)],
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    first = proc.stderr.readline()  # "Spike sandbox on URL with 0 incidents": it serves
    url = first.split()[3]
    with httpx.Client(base_url=url, headers=AUTH) as client:
        assert client.get("/incidents/nope").status_code == 404
    proc.send_signal(signum)
    _, rest = proc.communicate(timeout=30)
    assert proc.returncode == code
    assert rest.strip().endswith(said) and "Traceback" not in rest
    assert calls.read_text().count("\n") == 1
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/_sandbox/calls")
