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


def service_env(env_overrides: dict[str, str]) -> dict[str, str]:
    """This process's environment without any CXR_* setting, on the CPU, plus ``env_overrides``: what every
    server or worker a test starts runs with, so the developer's own CXR_* variables never leak in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CXR_")}
    env.update({"CXR_DEVICE": "cpu", **env_overrides})
    return env


def start_server(env_overrides: dict[str, str], *, capture: bool = True,
                 asgi_app: str | None = None) -> tuple[subprocess.Popen, str]:
    """``cxr serve`` (or uvicorn serving ``asgi_app``, e.g. a wrapper of the app) with ``service_env``; returns
    (process, base URL). ``capture`` keeps the output for wait_ready's message: only for servers whose output
    nobody reads later is it safe, as a full pipe stops a server that logs on."""
    port = free_port()
    serve = ["-m", "uvicorn", asgi_app] if asgi_app else ["-m", "app.cli", "serve"]
    out = subprocess.PIPE if capture else subprocess.DEVNULL
    proc = subprocess.Popen([sys.executable, *serve, "--host", "127.0.0.1", "--port", str(port)],
                            cwd=ROOT, env=service_env(env_overrides), stdout=out, stderr=subprocess.STDOUT, text=True)
    return proc, f"http://127.0.0.1:{port}"


def wait_ready(proc: subprocess.Popen, url: str, timeout: float = 120) -> None:
    def ready() -> bool:
        if proc.poll() is not None:  # it died: say why at once, not after the timeout
            output = proc.stdout.read() if proc.stdout else ""
            raise RuntimeError(f"server exited early ({proc.returncode}): {output}")
        return httpx.get(f"{url}/readyz", timeout=1).status_code == 200

    wait_for(ready, bool, timeout=timeout, what=f"{url}/readyz", interval=0.2, ignore=(httpx.HTTPError,))
