"""Start `cxr serve` as a real process on a free loopback port (tests and benchmarks)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[1]


# what a benchmark's server runs with: no keys or rate limit in the way, only warnings logged
BENCH_ENV = {"CXR_AUTH": "off", "CXR_RATE_LIMIT_PER_MIN": "0", "CXR_LOG_LEVEL": "WARNING"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(env_overrides: dict[str, str], *, capture: bool = True) -> tuple[subprocess.Popen, str]:
    """``cxr serve`` with a clean CXR_* environment plus ``env_overrides``; returns (process, base URL)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CXR_")}
    env.update({"CXR_DEVICE": "cpu", **env_overrides})
    out = subprocess.PIPE if capture else subprocess.DEVNULL
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
                            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, text=True)
    return proc, f"http://127.0.0.1:{port}"


def wait_ready(proc: subprocess.Popen, url: str, timeout: float = 120) -> None:
    def ready() -> bool:
        if proc.poll() is not None:  # it died: say why at once, not after the timeout
            output = proc.stdout.read() if proc.stdout else ""
            raise RuntimeError(f"server exited early ({proc.returncode}): {output}")
        return httpx.get(f"{url}/readyz", timeout=1).status_code == 200

    wait_for(ready, bool, timeout=timeout, what=f"{url}/readyz", interval=0.2, ignore=(httpx.HTTPError,))
