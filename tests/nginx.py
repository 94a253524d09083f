"""nginx from Debian's packages (scripts/install_nginx.sh) as the load balancer in front of replicas, on
loopback, in a temporary folder: what the failover test and benchmarks/replicas.py run against. Round robin
with passive health checks (an upstream that refuses a connection is skipped for ``fail_timeout``);
uploads up to 64 MB streamed through, as the Kubernetes Ingress does. The access log names the upstream
that answered each request (``$upstream_addr``), so a test can count where requests went."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import httpx

from tests.live_server import free_port
from tests.waiting import wait_for

NGINX = Path("/usr/sbin/nginx")
CONFIG = """
{user}
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 512; }}
http {{
    log_format upstream '$request_method|$uri|$status|$upstream_addr|$msec|$request_time|$body_bytes_sent|$sent_http_content_length';
    access_log {root}/access.log upstream;
    client_max_body_size 64m;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    upstream cxr {{  # a fresh connection per request: one refused by a dead replica goes to the next
{servers}
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://cxr;
            proxy_http_version 1.1;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_request_buffering off;
            proxy_read_timeout 120s;
            proxy_next_upstream error timeout;
        }}
    }}
}}
"""


def available() -> bool:
    return NGINX.is_file()


@contextmanager
def balancer(upstreams: list[str]) -> Iterator[tuple[str, Path]]:
    """nginx balancing ``upstreams`` (``http://127.0.0.1:PORT``); yields (its URL, its access log)."""
    if not available():
        raise FileNotFoundError("nginx is not installed (scripts/install_nginx.sh installs Debian's nginx as root)")
    root = Path(tempfile.mkdtemp(prefix="cxr-nginx-"))
    port = free_port()
    servers = "\n".join(f"        server {u.split('://', 1)[1]} max_fails=1 fail_timeout=30s;" for u in upstreams)
    user = "user root root;" if os.geteuid() == 0 else ""  # the workers write the temp folders made here
    (root / "nginx.conf").write_text(CONFIG.format(user=user, root=root, port=port, servers=servers))
    proc = subprocess.Popen([str(NGINX), "-p", str(root), "-c", str(root / "nginx.conf"), "-e", str(root / "error.log"),
                             "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _answers(url, proc), bool, timeout=20, what="nginx to listen", interval=0.05)
        yield url, root / "access.log"
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        shutil.rmtree(root, ignore_errors=True)


def _answers(url: str, proc: subprocess.Popen) -> bool:
    if proc.poll() is not None:
        raise RuntimeError(f"nginx exited with {proc.returncode}")
    try:
        httpx.get(f"{url}/healthz", timeout=2)
        return True
    except httpx.TransportError:
        return False


class Logged(NamedTuple):
    method: str
    path: str
    status: int
    upstream: str  # "host:port", or several ("a, b") when nginx tried the next one
    started: float  # epoch seconds nginx began reading the request
    complete: bool  # the whole body its Content-Length announced went out (False: cut off mid-answer, e.g.
    # by its upstream dying: nginx has passed the status on and logs it, so only the byte count tells)


def upstream_log(path: Path) -> list[Logged]:
    """Every request nginx has logged, in the order they ended."""
    rows = []
    for line in path.read_text().splitlines():
        method, uri, status, upstream, ended, took, sent, announced = line.split("|")
        complete = announced == "-" or int(sent) >= int(announced)
        rows.append(Logged(method, uri, int(status), upstream, float(ended) - float(took), complete))
    return rows
