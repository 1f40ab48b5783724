"""The HTTP API client never follows a redirect: an https endpoint that answers 302 to another address
(plain http here) gets an error, and the API key in the Authorization header never reaches that address."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from promoter.settings import TemporalTLS
from promoter.temporal_http import HttpPromotions


def self_signed(tmp: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    (tmp / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    (tmp / "key.pem").write_bytes(pem)
    return tmp / "cert.pem", tmp / "key.pem"


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[str, list[str | None], ssl.SSLContext]]:
    """An https server that redirects everything to a plain-http one, which records Authorization."""
    seen: list[str | None] = []

    class Sink(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("Authorization"))
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    sink = HTTPServer(("127.0.0.1", 0), Sink)

    class Redirect(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(302)
            self.send_header("Location", f"http://127.0.0.1:{sink.server_port}/elsewhere")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    cert, key = self_signed(tmp_path)
    redirect = HTTPServer(("127.0.0.1", 0), Redirect)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    redirect.socket = server_context.wrap_socket(redirect.socket, server_side=True)
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in (sink, redirect)]
    for t in threads:
        t.start()
    client_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_context.load_verify_locations(cert)
    try:
        yield f"https://127.0.0.1:{redirect.server_port}", seen, client_context
    finally:
        for s in (sink, redirect):
            s.shutdown()
            s.server_close()


def test_a_redirect_is_refused_and_the_api_key_goes_nowhere(
    servers: tuple[str, list[str | None], ssl.SSLContext],
) -> None:
    url, seen, context = servers
    tls = TemporalTLS(ca=b"", cert=None, key=None, server_name=None, context=context)
    client = HttpPromotions(url, "default", tls=tls, api_key="SECRET-API-KEY")
    with pytest.raises(Exception) as refused:
        client._call("GET", "workflows/promote-demo")
    assert "SECRET-API-KEY" not in str(refused.value)
    assert seen == []  # the plain-http address was never asked, with or without the key
