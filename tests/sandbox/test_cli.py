"""``python -m genesys_sandbox`` serves the sandbox with the faults given on the command line."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import httpx

from genesys_sandbox.__main__ import parse_args


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_flags_map_to_faults() -> None:
    args = parse_args(["--rate-429", "0.2", "--expire-tokens-after", "25", "--seed", "3"])
    assert (args.rate_429, args.expire_tokens_after, args.seed, args.port) == (0.2, 25, 3, 8765)


def test_module_serves_the_sandbox() -> None:
    port = _free_port()
    command = [sys.executable, "-m", "genesys_sandbox", "--port", str(port)]
    command += ["--rate-5xx", "0.05", "--seed", "7", "--log-level", "warning"]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                faults = httpx.get(f"http://127.0.0.1:{port}/sandbox/faults").json()
                break
            except httpx.TransportError:
                assert server.poll() is None, server.stderr.read().decode() if server.stderr else ""
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert (faults["rate_5xx"], faults["seed"]) == (0.05, 7)
    finally:
        server.terminate()
        server.wait(timeout=20)
        if server.stderr:
            server.stderr.close()
