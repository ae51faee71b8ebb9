"""ml.url_fetch against misbehaving servers on loopback: one time budget per fetch (DNS,
connect, TLS, headers, body), a bounded number of concurrent fetches, no https -> http."""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ml.url_fetch import FetchPolicy, UrlFetchError, fetch
from tests.security.hostile import HOSTILE_HOST, HostileImageServer

BUDGET_S = 1.0
# A generous bound, not a speed target: unbounded, these servers hold a fetch for minutes.
SLACK_S = 2.0
POLICY = FetchPolicy(
    timeout_s=BUDGET_S,
    max_bytes=2 * 1024 * 1024,
    allowed_networks=(ipaddress.ip_network(f"{HOSTILE_HOST}/32"),),
)


@pytest.fixture(scope="module")
def hostile() -> Iterator[str]:
    server = HostileImageServer()
    yield server.start()
    server.stop()


def timed_refusal(url: str, policy: FetchPolicy = POLICY) -> tuple[float, str]:
    started = time.monotonic()
    with pytest.raises(UrlFetchError) as refused:
        fetch(url, policy)
    return time.monotonic() - started, str(refused.value)


@pytest.mark.parametrize(
    "behaviour",
    ["drip-body", "drip-headers", "drip-status-line", "stall-before-headers", "stall-mid-body"],
)
def test_a_slow_server_cannot_hold_a_fetch_past_its_budget(hostile: str, behaviour: str) -> None:
    elapsed, message = timed_refusal(f"{hostile}/hostile/{behaviour}")
    assert "took longer than 1 s" in message
    assert elapsed < BUDGET_S + SLACK_S


def test_name_resolution_counts_against_the_budget(
    hostile: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    resolved = threading.Event()

    def hanging_resolver(*args: object, **kwargs: object) -> list:
        resolved.wait(10)  # a resolver that does not answer
        return []

    monkeypatch.setattr(socket, "getaddrinfo", hanging_resolver)
    elapsed, message = timed_refusal("http://images.example.com/dog.jpg")
    resolved.set()
    assert "took longer than 1 s" in message
    assert elapsed < BUDGET_S + SLACK_S


def test_excess_concurrent_fetches_are_refused_at_once(hostile: str) -> None:
    policy = FetchPolicy(timeout_s=3.0, max_concurrent=2, allowed_networks=POLICY.allowed_networks)
    holding = [
        threading.Thread(
            target=timed_refusal, args=(f"{hostile}/hostile/stall-before-headers", policy)
        )
        for _ in range(2)
    ]
    for thread in holding:
        thread.start()
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:  # until both slots are taken
        try:
            fetch(f"{hostile}/image/jpeg-valid-baseline.jpg", policy)
        except UrlFetchError as error:
            assert error.status_code == 429
            assert "retry later" in str(error)
            break
    else:
        pytest.fail("a third fetch was never refused while two slow ones ran")
    for thread in holding:
        thread.join()
    assert fetch(f"{hostile}/image/jpeg-valid-baseline.jpg", policy)  # slots come back


def test_url_secrets_never_appear_in_errors(hostile: str) -> None:
    url = hostile.replace("http://", "http://alice:hunter2@") + "/hostile/status-404?sig=s3cr3t"
    _, message = timed_refusal(url)
    assert "hunter2" not in message and "s3cr3t" not in message
    assert f"{hostile}/hostile/status-404" in message


# --- https, with a certificate authority made for the test ---


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder = tmp_path_factory.mktemp("tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dogops test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(HOSTILE_HOST))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@pytest.fixture(scope="module")
def tls_server(tls_files: tuple[Path, Path], hostile: str) -> Iterator[str]:
    jpeg = (
        Path(__file__).parents[1] / "corpus" / "images" / "jpeg-valid-baseline.jpg"
    ).read_bytes()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/dog.jpg":
                self.send_response(200)
                self.send_header("Content-Length", str(len(jpeg)))
                self.end_headers()
                self.wfile.write(jpeg)
            else:  # /downgrade: the same image, over plain http
                self.send_response(302)
                self.send_header("Location", f"{hostile}/image/jpeg-valid-baseline.jpg")
                self.send_header("Content-Length", "0")
                self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((HOSTILE_HOST, 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*tls_files)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"https://{HOSTILE_HOST}:{server.server_address[1]}"
    server.shutdown()


def test_https_fetches_and_refuses_a_downgrade_to_http(
    tls_server: str, tls_files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_files[0]))  # OpenSSL's default trust store
    assert fetch(f"{tls_server}/dog.jpg", POLICY)[:3] == b"\xff\xd8\xff"
    _, message = timed_refusal(f"{tls_server}/downgrade")
    assert "from https to http" in message


def test_an_untrusted_certificate_is_refused(tls_server: str) -> None:
    _, message = timed_refusal(f"{tls_server}/dog.jpg")
    assert "TLS error" in message
