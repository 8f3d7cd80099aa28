"""Real nginx on loopback, as a caching reverse proxy (proxy_cache) in front of an origin."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import textwrap
import time
from contextlib import contextmanager
from pathlib import Path


def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if found is None:
        raise RuntimeError("nginx is not installed: .ci/run installs it (apt-get install nginx-light)")
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def caching_proxy(root: Path, origin: str):
    """nginx caching `origin` (honouring its Cache-Control), answering X-Cache from $upstream_cache_status."""
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)
    port = _free_port()
    conf = root / "nginx.conf"
    conf.write_text(textwrap.dedent(f"""
        worker_processes 1;
        daemon off;
        user root;
        pid {root}/nginx.pid;
        error_log {root}/error.log warn;
        events {{ worker_connections 1024; }}
        http {{
            access_log off;
            client_body_temp_path {root}/tmp; proxy_temp_path {root}/tmp; fastcgi_temp_path {root}/tmp;
            uwsgi_temp_path {root}/tmp; scgi_temp_path {root}/tmp;
            proxy_cache_path {root}/cache levels=1:2 keys_zone=edge:10m max_size=100m inactive=1h;
            server {{
                listen 127.0.0.1:{port};
                location / {{
                    proxy_pass {origin};
                    proxy_set_header Host $host;
                    proxy_cache edge;
                    proxy_cache_key $scheme$host$request_uri$http_accept_encoding;
                    add_header X-Cache $upstream_cache_status always;
                }}
            }}
        }}
    """))
    (root / "tmp").mkdir(exist_ok=True)
    process = subprocess.Popen([nginx_binary(), "-c", str(conf), "-p", str(root)], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"nginx did not start: {process.stderr.read().decode()[-500:]}")
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGQUIT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
