"""Pinned warming over TLS: the node's address, the site's SNI and Host, its certificate checked for the site."""

from __future__ import annotations

import datetime
import json
import os
import ssl
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

SITE = "www.example.test"


def certificate(tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, SITE)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(SITE)]), False)  # the site, not the address
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


@pytest.fixture
def tls_edge(tmp_path):
    """An https edge on 127.0.0.1 that records the SNI and Host of each request."""
    cert_file, key_file = certificate(tmp_path)
    seen: list[tuple[str | None, str | None]] = []
    names: list[str | None] = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    context.sni_callback = lambda sock, name, ctx: names.append(name)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            seen.append((names[-1] if names else None, self.headers.get("Host")))
            body = b"cached page\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "public, max-age=600")
            self.send_header("X-Cache", "HIT" if len(seen) > 1 else "MISS")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}", cert_file, seen
    server.shutdown()
    server.server_close()


def test_a_pinned_https_request_carries_the_sites_sni_and_host_and_checks_its_certificate(tls_edge, isolated):
    endpoint, cert_file, seen = tls_edge
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EDGECTL_", "SSL_CERT"))}
    env["EDGECTL_STATE"] = str(isolated / "tls.db")

    def edgectl(*args, **extra):
        done = subprocess.run([sys.executable, "-m", "edgectl", *args], env={**env, **extra}, capture_output=True,
                              text=True, timeout=60)
        return done.returncode, done.stdout, done.stderr

    assert edgectl("nodes", "add", "tls-edge", "--endpoint", endpoint)[0] == 0
    warm = ("cache", "warm", "--url", f"https://{SITE}/page.html", "--nodes", "tls-edge", "--retries", "0", "-o", "json")

    code, out, err = edgectl(*warm)  # the certificate is not trusted yet
    assert json.loads(out)["errors"] == 1 and "certificate" in json.loads(out)["common_errors"][0]["error"].lower()
    assert seen == []

    code, out, err = edgectl(*warm, SSL_CERT_FILE=str(cert_file))
    assert code == 0, err
    assert json.loads(out)["errors"] == 0 and json.loads(out)["cache_before"] == {"tls-edge": {"miss": 1}}
    assert seen == [(SITE, SITE)]  # SNI and Host are the site's, though we connected to 127.0.0.1
