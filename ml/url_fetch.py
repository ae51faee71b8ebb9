"""Fetch an image by URL for the serving handler, without becoming an SSRF proxy.

Rules: http and https only; every address the host name resolves to must be public (private,
loopback, link-local, which includes the 169.254.169.254 metadata service, unique-local, shared,
reserved and multicast ranges are refused), checked again for every redirect hop; the
connection goes to the address that was checked, so DNS cannot change between check and use;
the body and the total time are capped.

Standard library only: this module is copied into the model artifact and runs inside the
SageMaker PyTorch serving container, which has nothing else we could rely on.

Settings (environment, read when a policy is made):

- ``INFERENCE_URL_ALLOW_NETWORKS``: comma-separated CIDRs exempt from the refusal, e.g.
  ``127.0.0.1/32`` so that tests can serve images from loopback. Empty by default.
- ``INFERENCE_URL_MAX_BYTES`` (default 10 MiB), ``INFERENCE_URL_TIMEOUT_S`` (default 10).
"""

from __future__ import annotations

import http.client
import ipaddress
import os
import socket
import ssl
import time
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class UrlFetchError(ValueError):
    """The URL was refused or could not be fetched; the message says which and why."""


@dataclass(frozen=True)
class FetchPolicy:
    max_bytes: int = 10 * 1024 * 1024
    timeout_s: float = 10.0
    max_redirects: int = 3
    allowed_networks: tuple[IPNetwork, ...] = field(default_factory=tuple)

    @classmethod
    def from_env(cls) -> FetchPolicy:
        raw = os.environ.get("INFERENCE_URL_ALLOW_NETWORKS", "")
        try:
            networks = tuple(
                ipaddress.ip_network(part.strip(), strict=False)
                for part in raw.split(",")
                if part.strip()
            )
        except ValueError as exc:
            raise ValueError(f"INFERENCE_URL_ALLOW_NETWORKS: {exc}") from exc
        return cls(
            max_bytes=int(os.environ.get("INFERENCE_URL_MAX_BYTES", cls.max_bytes)),
            timeout_s=float(os.environ.get("INFERENCE_URL_TIMEOUT_S", cls.timeout_s)),
            allowed_networks=networks,
        )


def refusal_reason(address: IPAddress, policy: FetchPolicy) -> str | None:
    """Why ``address`` may not be fetched from, or None if it may."""
    if any(address in net for net in policy.allowed_networks):
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return refusal_reason(address.ipv4_mapped, policy)
    for attribute in (
        "is_loopback",
        "is_link_local",
        "is_private",
        "is_multicast",
        "is_reserved",
        "is_unspecified",
    ):
        if getattr(address, attribute):
            return f"{address} is a {attribute[3:].replace('_', '-')} address"
    if not address.is_global:
        return f"{address} is not a public address"
    return None


def _resolve(host: str, port: int, policy: FetchPolicy) -> str:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UrlFetchError(f"cannot resolve {host!r}: {exc.strerror}") from exc
    addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    for address in addresses:
        reason = refusal_reason(address, policy)
        if reason:
            raise UrlFetchError(f"refusing to fetch from {host!r}: {reason}")
    return str(addresses[0])


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to an already-vetted address while sending the original Host header."""

    def __init__(self, host: str, port: int, address: str, timeout: float):
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)
        self.pinned_socket = self.sock


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float):
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(raw, server_hostname=self.host)
        self.pinned_socket = self.sock


def fetch(url: str, policy: FetchPolicy | None = None) -> bytes:
    """GET ``url`` under ``policy`` (default: from the environment) and return the body."""
    policy = policy or FetchPolicy.from_env()
    deadline = time.monotonic() + policy.timeout_s
    for _hop in range(policy.max_redirects + 1):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise UrlFetchError(
                f"only http and https URLs are fetched, not {parts.scheme or 'a bare path'!r}"
            )
        if not parts.hostname:
            raise UrlFetchError(f"URL {url!r} has no host")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as exc:
            raise UrlFetchError(f"URL {url!r} has an invalid port") from exc
        address = _resolve(parts.hostname, port, policy)
        connection_type = (
            _PinnedHTTPSConnection if parts.scheme == "https" else _PinnedHTTPConnection
        )
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise UrlFetchError(f"fetching {url!r} took longer than {policy.timeout_s:g} s")
        connection = connection_type(parts.hostname, port, address, timeout=remaining)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        try:
            connection.request(
                "GET", path, headers={"Accept": "image/*", "User-Agent": "dogops-inference"}
            )
            response = connection.getresponse()
            if response.status in (301, 302, 303, 307, 308):
                location = response.getheader("Location")
                if not location:
                    raise UrlFetchError(f"redirect from {url!r} without a Location")
                url = urljoin(url, location)
                continue
            if response.status != 200:
                raise UrlFetchError(f"fetching {url!r} returned HTTP {response.status}")
            declared = response.getheader("Content-Length")
            if declared and declared.isdigit() and int(declared) > policy.max_bytes:
                raise UrlFetchError(
                    f"image at {url!r} is {declared} bytes; the limit is {policy.max_bytes}"
                )
            return _read_capped(connection, response, url, policy, deadline)
        except (OSError, http.client.HTTPException) as exc:
            raise UrlFetchError(f"fetching {url!r} failed: {exc}") from exc
        finally:
            connection.close()
    raise UrlFetchError(f"more than {policy.max_redirects} redirects")


def _read_capped(
    connection: _PinnedHTTPConnection | _PinnedHTTPSConnection,
    response: http.client.HTTPResponse,
    url: str,
    policy: FetchPolicy,
    deadline: float,
) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while True:
        if response.isclosed():  # the whole declared length has been read
            return b"".join(chunks)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise UrlFetchError(f"fetching {url!r} took longer than {policy.timeout_s:g} s")
        # Each read may wait only for what is left of the overall budget (no slow-drip bodies).
        # (connection.sock is None once the response owns the socket: keep our own reference.)
        connection.pinned_socket.settimeout(remaining)
        chunk = response.read(64 * 1024)
        if not chunk:
            return b"".join(chunks)
        total += len(chunk)
        if total > policy.max_bytes:
            raise UrlFetchError(f"image at {url!r} exceeds the limit of {policy.max_bytes} bytes")
        chunks.append(chunk)
