"""Where ``ltr serve`` listens: a busy metrics port is a one-line error, and the metrics endpoint
follows ``--host`` unless ``--metrics-host`` says otherwise (real servers on loopback)."""

from __future__ import annotations

import socket
import subprocess
import time

import pytest

from tests.serve._helpers import LTR, ServerProcess, free_port


def connects(host: str, port: int) -> bool:
    """Whether a TCP connection to ``host:port`` is accepted."""
    try:
        with socket.create_connection((host, port), timeout=5):
            return True
    except OSError:
        return False


def logged(server: ServerProcess, text: str, timeout: float = 30.0) -> str:
    """The server's log once it holds ``text`` (the start-up line follows readiness)."""
    deadline = time.monotonic() + timeout
    while text not in server.log() and time.monotonic() < deadline:
        time.sleep(0.2)
    return server.log()


def test_a_busy_metrics_port_is_a_one_line_error(tiny_artifact, tmp_path) -> None:
    with socket.socket() as busy:  # another server's (or Prometheus') port
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        done = subprocess.run(
            [str(LTR), "serve", "--model", str(tiny_artifact), "--backend", "torch",
             "--host", "127.0.0.1", "--port", str(free_port()), "--metrics-port", str(taken)],
            capture_output=True, text=True, timeout=300, cwd=tmp_path,
        )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last == (
        f"ltr serve: error: cannot serve metrics on 127.0.0.1:{taken} (Address already in use); "
        "give this server a free port with --metrics-port PORT (every server on a machine needs "
        "its own), or turn metrics off with --metrics-port 0"
    )


def test_a_start_that_fails_leaves_no_exported_graph_behind(tiny_artifact, tmp_path) -> None:
    """A folder without model.onnx is exported on load into a temporary folder; when the
    server then cannot start (its port is busy) that folder goes too."""
    import os

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        done = subprocess.run(
            [str(LTR), "serve", "--model", str(tiny_artifact), "--backend", "onnx",
             "--host", "127.0.0.1", "--port", str(busy.getsockname()[1]), "--metrics-port", "0"],
            capture_output=True, text=True, timeout=300, cwd=tmp_path,
            env={**os.environ, "TMPDIR": str(scratch)},
        )  # fmt: skip
    assert done.returncode == 2 and "is the port in use?" in done.stderr, done.stderr
    assert "exported on load" in done.stderr  # there was a graph to clean up
    assert [p.name for p in scratch.iterdir() if p.name.startswith("ltr-onnx-")] == []


@pytest.fixture(scope="module")
def servers(tmp_path_factory, tiny_artifact):
    """Two servers on 127.0.0.1: one with metrics where --host says, one with --metrics-host."""
    tmp = tmp_path_factory.mktemp("ports")
    loopback = ServerProcess(tmp, tiny_artifact, "--backend", "torch", metrics_host=None)
    everywhere = ServerProcess(
        tmp, tiny_artifact, "--backend", "torch", "--metrics-host", "0.0.0.0", metrics_host=None
    )
    try:
        yield loopback.wait_ready(), everywhere.wait_ready()
    finally:
        for server in (loopback, everywhere):
            assert server.stop() == 0, server.log()


def test_metrics_listen_where_host_says_unless_metrics_host_is_given(servers) -> None:
    loopback, everywhere = servers
    assert f"metrics on http://127.0.0.1:{loopback.metrics_port}/metrics" in logged(
        loopback, "metrics on"
    )
    assert loopback.scrape()  # served on 127.0.0.1 ...
    assert not connects("127.0.0.2", loopback.metrics_port)  # ... and only there
    assert f"metrics on http://0.0.0.0:{everywhere.metrics_port}/metrics" in logged(
        everywhere, "metrics on"
    )
    assert connects("127.0.0.2", everywhere.metrics_port)  # any address of this machine
    assert not connects("127.0.0.2", everywhere.port)  # gRPC itself stays on --host


def test_the_test_server_starts_again_when_its_port_was_taken(
    tiny_artifact, tmp_path, monkeypatch
) -> None:
    """ServerProcess's ports are free when chosen, not held: when another process binds one
    first, the server refuses to start (exit 2) and the helper starts it on other ports."""
    import tests.serve._helpers as helpers

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        chosen = iter([taken])
        real = helpers.free_port
        monkeypatch.setattr(helpers, "free_port", lambda: next(chosen, None) or real())
        server = ServerProcess(tmp_path, tiny_artifact, "--backend", "torch")
        try:
            server.wait_ready()
            assert server.port != taken and connects("127.0.0.1", server.port)
        finally:
            server.kill()
