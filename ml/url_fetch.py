"""Fetch an image by URL for the serving handler, without becoming an SSRF proxy.

Rules:

- The URL must be well formed: http or https, a valid host name (LDH labels of 1-63
  characters, 253 in all, IDNA for non-ASCII) or IP literal, a port from 1 to 65535, no
  whitespace or control characters. Anything else is refused before any network work.
- Every address the host name resolves to must be public: private, loopback, link-local (which
  includes the 169.254.169.254 metadata service), unique-local, shared, reserved and multicast
  ranges are refused, also when an IPv6 address embeds one (IPv4-mapped, 6to4 ``2002::/16``,
  Teredo ``2001::/32``, NAT64 ``64:ff9b::/96`` and ``64:ff9b:1::/48``). This is checked again
  for every redirect hop, and the connection goes to the address that was checked, so DNS
  cannot change between check and use. A redirect may not go from https to http.
- One time budget covers the whole fetch: name resolution, connect, TLS, headers and body of
  every hop. A watchdog shuts the socket at the deadline, so a server that drips a byte at a
  time cannot hold a fetch past it.
- The body is capped, and at most ``max_concurrent`` fetches run at once per process: the
  excess is refused at once (HTTP 429), so slow URLs cannot take every request thread.
- Error messages name the URL without its query string and user info (presigned URLs and
  ``user:password@`` must not reach logs or callers).

Standard library only: this module is copied into the model artifact and runs inside the
SageMaker PyTorch serving container, which has nothing else we could rely on.

Settings (environment, read when a policy is made):

- ``INFERENCE_URL_ALLOW_NETWORKS``: comma-separated CIDRs exempt from the refusal, e.g.
  ``127.0.0.1/32`` so that tests can serve images from loopback. Empty by default.
- ``INFERENCE_URL_MAX_BYTES`` (default 10 MiB), ``INFERENCE_URL_TIMEOUT_S`` (default 10),
  ``INFERENCE_URL_MAX_CONCURRENT`` (default 8).
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import os
import re
import socket
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_URL_LENGTH = 2048
_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")
_FORBIDDEN_CHARACTERS = re.compile(r"[\x00-\x20\x7f]")
# IANA's special-purpose registries, the ranges not globally reachable, listed here because
# Python's is_private/is_global tables differ between patch releases (3.11.7 takes 192.0.0.8
# for public): https://www.iana.org/assignments/iana-ipv4-special-registry and ...-ipv6-...
_NOT_GLOBAL = tuple(
    ipaddress.ip_network(net)
    for net in (
        "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
        "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16",
        "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
        "::/128", "::1/128", "100::/64", "2001:2::/48", "2001:10::/28", "2001:20::/28",
        "2001:db8::/32", "3fff::/20", "5f00::/16", "fc00::/7", "fe80::/10", "ff00::/8",
    )
)  # fmt: skip
# RFC 8215's local-use NAT64 prefix; the well-known 64:ff9b::/96 is RFC 6052's.
_NAT64_PREFIXES = (
    ipaddress.IPv6Network("64:ff9b::/96"),
    ipaddress.IPv6Network("64:ff9b:1::/48"),
)
# ::a.b.c.d (IPv4-compatible, deprecated) and ::ffff:0:a.b.c.d (SIIT, RFC 2765).
_IPV4_IN_LOW_BITS = (
    ipaddress.IPv6Network("::/96"),
    ipaddress.IPv6Network("::ffff:0:0:0/96"),
)


class UrlFetchError(ValueError):
    """The URL was refused or could not be fetched; the message says which and why.

    ``status_code`` is the HTTP status a server answers with: 400 for the caller's URL, 429
    when this process already runs its maximum of concurrent fetches.
    """

    def __init__(self, message: str, status_code: int = 400):
        super().__init__(message)
        self.status_code = status_code


@dataclass(frozen=True)
class FetchPolicy:
    max_bytes: int = 10 * 1024 * 1024
    timeout_s: float = 10.0
    max_redirects: int = 3
    max_concurrent: int = 8
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
            max_concurrent=int(os.environ.get("INFERENCE_URL_MAX_CONCURRENT", cls.max_concurrent)),
            allowed_networks=networks,
        )


def redact(url: str) -> str:
    """``url`` without user info, query string and fragment, safe to log or show."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<malformed URL>"
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port is not None else host
    shown = f"{parts.scheme}://{netloc}{parts.path}"
    return shown if len(shown) <= 200 else shown[:200] + "..."


def embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries by a transition mechanism, if any."""
    found = []
    if address.ipv4_mapped is not None:
        found.append(address.ipv4_mapped)
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)  # (server, client): the client is de-obfuscated
    if any(address in net for net in (*_NAT64_PREFIXES, *_IPV4_IN_LOW_BITS)):
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return found


def refusal_reason(address: IPAddress, policy: FetchPolicy) -> str | None:
    """Why ``address`` may not be fetched from, or None if it may."""
    if any(address in net for net in policy.allowed_networks):
        return None
    inner = embedded_ipv4(address) if isinstance(address, ipaddress.IPv6Address) else []
    if inner:
        # Traffic to a transition address ends at the IPv4 address it carries: judge that.
        for carried in inner:
            reason = refusal_reason(carried, policy)
            if reason:
                return f"{address} embeds {carried}, and {reason}"
        return None
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
    for network in _NOT_GLOBAL:
        if address.version == network.version and address in network:
            return f"{address} is in the special-purpose range {network}"
    if not address.is_global:
        return f"{address} is not a public address"
    return None


@dataclass(frozen=True)
class Target:
    """A URL checked for form: where to connect and what to ask for."""

    url: str
    scheme: str
    host: str  # ASCII (IDNA) host name, or an IP literal without brackets
    port: int
    path: str  # path and query, as sent in the request line

    @property
    def shown(self) -> str:
        return redact(self.url)


def parse_url(url: object) -> Target:
    """Check ``url``'s form (not yet its addresses) or raise `UrlFetchError`."""
    if not isinstance(url, str) or not url:
        raise UrlFetchError("the URL must be a non-empty string")
    if len(url) > MAX_URL_LENGTH:
        raise UrlFetchError(f"the URL is longer than {MAX_URL_LENGTH} characters")
    if _FORBIDDEN_CHARACTERS.search(url):
        raise UrlFetchError("the URL contains whitespace or control characters")
    try:
        url.encode("utf-8")
        parts = urlsplit(url)
        port = parts.port
        raw_host = parts.hostname
    except (ValueError, UnicodeError):
        raise UrlFetchError("the URL is malformed (check the host and the port)") from None
    if parts.scheme not in ("http", "https"):
        raise UrlFetchError(
            f"only http and https URLs are fetched, not {parts.scheme or 'a bare path'!r}"
        )
    if not raw_host:
        raise UrlFetchError(f"the URL {redact(url)!r} has no host")
    if port == 0:
        raise UrlFetchError("the URL's port must be from 1 to 65535")
    host = _check_host(raw_host, bracketed="[" in parts.netloc)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if not path.isascii():
        path = _quote_non_ascii(path)
    default_port = 443 if parts.scheme == "https" else 80
    return Target(url, parts.scheme, host, port or default_port, path)


def _check_host(host: str, bracketed: bool) -> str:
    if bracketed:
        try:
            return str(ipaddress.IPv6Address(host))  # no zone ids: '%' does not parse
        except ValueError:
            raise UrlFetchError("the URL's host is not a valid IPv6 address") from None
    try:
        ascii_host = host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise UrlFetchError("the URL's host is not a valid host name") from None
    name = ascii_host.removesuffix(".")
    if not name or len(name) > 253 or not all(_LABEL.match(label) for label in name.split(".")):
        raise UrlFetchError("the URL's host is not a valid host name")
    return name


def _quote_non_ascii(path: str) -> str:
    return "".join(c if c.isascii() else "".join(f"%{b:02X}" for b in c.encode()) for c in path)


class _Deadline:
    def __init__(self, budget_s: float, url: str):
        self.budget_s = budget_s
        self.at = time.monotonic() + budget_s
        self.shown = redact(url)

    @property
    def expired(self) -> bool:
        return time.monotonic() >= self.at

    def error(self) -> UrlFetchError:
        return UrlFetchError(f"fetching {self.shown!r} took longer than {self.budget_s:g} s")

    def remaining(self) -> float:
        left = self.at - time.monotonic()
        if left <= 0:
            raise self.error()
        return left


# getaddrinfo cannot be interrupted: it runs here, and the fetch waits only for its budget.
_RESOLVER = ThreadPoolExecutor(max_workers=4, thread_name_prefix="url-resolve")
_slots_lock = threading.Lock()
_slots: dict[int, threading.BoundedSemaphore] = {}


def _resolve(target: Target, policy: FetchPolicy, deadline: _Deadline) -> str:
    future = _RESOLVER.submit(socket.getaddrinfo, target.host, target.port, 0, socket.SOCK_STREAM)
    try:
        infos = future.result(timeout=deadline.remaining())
    except TimeoutError:
        future.cancel()
        raise deadline.error() from None
    except (OSError, UnicodeError) as exc:
        detail = getattr(exc, "strerror", None) or "no such host"
        raise UrlFetchError(f"cannot resolve {target.host!r}: {detail}") from None
    addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    if not addresses:
        raise UrlFetchError(f"cannot resolve {target.host!r}: no addresses")
    for address in addresses:
        reason = refusal_reason(address, policy)
        if reason:
            raise UrlFetchError(f"refusing to fetch from {target.host!r}: {reason}")
    return str(addresses[0])


def resolve_checked(url: str, policy: FetchPolicy | None = None) -> str:
    """Check ``url``'s form and every address its host resolves to, within the policy's time
    budget, and return the address a fetch would connect to (or raise `UrlFetchError`)."""
    policy = policy or FetchPolicy.from_env()
    return _resolve(parse_url(url), policy, _Deadline(policy.timeout_s, url))


class _PinnedConnection(http.client.HTTPConnection):
    """Connects to an already-vetted address while sending the original Host header; its
    socket can be shut from another thread when the fetch's deadline passes."""

    def __init__(self, target: Target, address: str, deadline: _Deadline):
        super().__init__(target.host, target.port, timeout=deadline.remaining())
        self._address = address
        self._deadline = deadline
        self._raw: socket.socket | None = None
        self._tls = ssl.create_default_context() if target.scheme == "https" else None

    def connect(self) -> None:
        self._raw = socket.create_connection(
            (self._address, self.port), timeout=self._deadline.remaining()
        )
        if self._tls is None:
            self.sock = self._raw
        else:
            self.sock = self._tls.wrap_socket(self._raw, server_hostname=self.host)

    def abort(self) -> None:
        """Called by the watchdog: unblock whatever read or handshake is in progress."""
        if self._raw is not None:
            with contextlib.suppress(OSError):  # already closed
                self._raw.shutdown(socket.SHUT_RDWR)


def fetch(url: str, policy: FetchPolicy | None = None) -> bytes:
    """GET ``url`` under ``policy`` (default: from the environment) and return the body."""
    policy = policy or FetchPolicy.from_env()
    target = parse_url(url)
    slots = _slots_for(policy.max_concurrent)
    if not slots.acquire(blocking=False):
        raise UrlFetchError(
            f"this instance is already fetching {policy.max_concurrent} URLs; retry later", 429
        )
    try:
        deadline = _Deadline(policy.timeout_s, url)
        for _hop in range(policy.max_redirects + 1):
            location = _fetch_one(target, policy, deadline)
            if isinstance(location, bytes):
                return location
            following = parse_url(_join(target.url, location))
            if target.scheme == "https" and following.scheme == "http":
                raise UrlFetchError(f"refusing a redirect from https to http ({following.shown!r})")
            target = following
        raise UrlFetchError(f"more than {policy.max_redirects} redirects")
    finally:
        slots.release()


def _join(base: str, location: str) -> str:
    try:
        return urljoin(base, location)
    except ValueError:  # urljoin parses both; a malformed Location raises
        raise UrlFetchError("the redirect's Location is a malformed URL") from None


def _slots_for(size: int) -> threading.BoundedSemaphore:
    with _slots_lock:
        return _slots.setdefault(size, threading.BoundedSemaphore(max(1, size)))


def _fetch_one(target: Target, policy: FetchPolicy, deadline: _Deadline) -> bytes | str:
    """One hop: the body, or the Location to follow."""
    address = _resolve(target, policy, deadline)
    connection = _PinnedConnection(target, address, deadline)
    watchdog = threading.Timer(deadline.remaining(), connection.abort)
    watchdog.daemon = True
    watchdog.start()
    try:
        connection.request(
            "GET", target.path, headers={"Accept": "image/*", "User-Agent": "dogops-inference"}
        )
        response = connection.getresponse()
        if response.status in (301, 302, 303, 307, 308):
            location = response.getheader("Location")
            if not location:
                raise UrlFetchError(f"redirect from {target.shown!r} without a Location")
            return location
        if response.status != 200:
            raise UrlFetchError(f"fetching {target.shown!r} returned HTTP {response.status}")
        declared = declared_length(response.getheader("Content-Length"))
        if declared is not None and declared > policy.max_bytes:
            raise UrlFetchError(
                f"image at {target.shown!r} is {declared} bytes; the limit is {policy.max_bytes}"
            )
        body = _read_capped(response, target, policy)
        if deadline.expired:  # the last bytes came in after the budget
            raise deadline.error()
        return body
    except (OSError, http.client.HTTPException) as exc:
        if deadline.expired:
            raise deadline.error() from None
        raise UrlFetchError(f"fetching {target.shown!r} failed: {_describe(exc)}") from None
    finally:
        watchdog.cancel()
        connection.close()


def declared_length(value: str | None) -> int | None:
    """A Content-Length header as a number (huge values saturate), or None if absent or
    malformed. (``str.isdigit`` alone admits non-ASCII digits such as "²" that int() refuses.)"""
    if value and value.isascii() and value.isdigit():
        return int(value) if len(value) <= 18 else 10**18
    return None


def _describe(exc: Exception) -> str:
    if isinstance(exc, ssl.SSLError):
        return f"TLS error ({exc.reason or type(exc).__name__})"
    return getattr(exc, "strerror", None) or type(exc).__name__


def _read_capped(response: http.client.HTTPResponse, target: Target, policy: FetchPolicy) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while True:
        chunk = response.read1(64 * 1024)
        if not chunk:
            return b"".join(chunks)
        total += len(chunk)
        if total > policy.max_bytes:
            raise UrlFetchError(
                f"image at {target.shown!r} exceeds the limit of {policy.max_bytes} bytes"
            )
        chunks.append(chunk)
