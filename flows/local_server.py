"""The CLI's temporary Prefect server, which never outlives the command.

With no ``PREFECT_API_URL``, Prefect itself would start a temporary API server in a child
process and stop it ``atexit``; a command killed by SIGKILL (or SIGTERM, which skips
``atexit``) leaves that server running. ``reminders`` starts the same server (uvicorn on
Prefect's ``create_app``, UI off, state under ``PREFECT_HOME``) itself, as a direct child that
the kernel sends SIGTERM the moment the command dies (Linux ``PR_SET_PDEATHSIG``), and points
``PREFECT_API_URL`` at it before Prefect is imported. Elsewhere than Linux the server is still
stopped on a normal exit; point ``PREFECT_API_URL`` at a real server to avoid it altogether.
This module does not import Prefect.
"""

from __future__ import annotations

import atexit
import ctypes
import functools
import os
import signal
import socket
import subprocess
import sys
import time

import httpx

__all__ = ["start_temporary_server"]

_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    """preexec_fn of the server: SIGTERM when the parent dies (Linux); exit if it already has."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:
        os._exit(1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_temporary_server(timeout: float = 120.0) -> subprocess.Popen[bytes] | None:
    """Start the temporary server unless ``PREFECT_API_URL`` is set; set it; return the
    process (None when a server was configured). Call before Prefect is imported."""
    if os.environ.get("PREFECT_API_URL"):
        return None
    port = _free_port()
    parent = os.getpid()
    env = os.environ | {
        "PREFECT_UI_ENABLED": "0",
        "PREFECT__SERVER_EPHEMERAL": "1",
        "PREFECT__SERVER_FINAL": "1",
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "prefect.server.api.server:create_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "error",
            "--lifespan",
            "on",
        ],
        env=env,
        preexec_fn=functools.partial(_die_with_parent, parent),
    )

    def stop() -> None:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    atexit.register(stop)
    api = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            stop()
            raise RuntimeError(f"the temporary Prefect server did not start on port {port}")
        time.sleep(0.2)
    os.environ["PREFECT_API_URL"] = api
    os.environ["REMINDERS_TEMPORARY_PREFECT_SERVER_PID"] = str(process.pid)
    return process
