"""Property tests: the URL policy refuses every address in a refused network whatever its
spelling, and the request parsers turn any input into a request or a 4xx, never a crash."""

from __future__ import annotations

import contextlib
import ipaddress
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lambda_src import handler as fn
from ml.inference import InferenceError, parse_json_request
from ml.url_fetch import FetchPolicy, UrlFetchError, resolve_checked

REFUSED_V4 = [
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
    "192.0.0.0/24", "192.0.2.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24",
    "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
]  # fmt: skip
REFUSED_V6 = ["::1/128", "fe80::/10", "fc00::/7", "ff00::/8", "2001:db8::/32", "::/128"]
POLICY = FetchPolicy(timeout_s=5)
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def addresses_in(networks: list[str]) -> st.SearchStrategy:
    def pick(network: str) -> st.SearchStrategy:
        net = ipaddress.ip_network(network)
        first = int(net.network_address)
        kind = type(net.network_address)
        return st.integers(first, first + net.num_addresses - 1).map(kind)

    return st.sampled_from(networks).flatmap(pick)


def _teredo(client: ipaddress.IPv4Address) -> str:
    hidden = int(client) ^ 0xFFFFFFFF  # RFC 4380 stores the client address inverted
    return f"[2001:0:4136:e378:8000:63bf:{hidden >> 16:x}:{hidden & 0xFFFF:x}]"


SPELLINGS = {
    "dotted": lambda a: str(a),
    "integer": lambda a: str(int(a)),
    "hex": lambda a: hex(int(a)),
    "octal dotted": lambda a: ".".join(f"0{int(p):o}" for p in str(a).split(".")),
    "hex dotted": lambda a: ".".join(hex(int(p)) for p in str(a).split(".")),
    "a.b.16bit": lambda a: "{}.{}.{}".format(*str(a).split(".")[:2], int(a) & 0xFFFF),
    "a.24bit": lambda a: "{}.{}".format(str(a).split(".")[0], int(a) & 0xFFFFFF),
    "ipv4-mapped": lambda a: f"[::ffff:{a}]",
    "ipv4-mapped hex": lambda a: f"[::ffff:{int(a) >> 16:x}:{int(a) & 0xFFFF:x}]",
    "siit": lambda a: f"[::ffff:0:{a}]",
    "6to4": lambda a: f"[2002:{int(a) >> 16:x}:{int(a) & 0xFFFF:x}::1]",
    "nat64": lambda a: f"[64:ff9b::{a}]",
    "nat64 local": lambda a: f"[64:ff9b:1::{int(a) >> 16:x}:{int(a) & 0xFFFF:x}]",
    "teredo": _teredo,
}


@FAST
@given(address=addresses_in(REFUSED_V4), spelling=st.sampled_from(sorted(SPELLINGS)))
def test_any_refused_ipv4_address_in_any_spelling_is_refused(address, spelling) -> None:
    host = SPELLINGS[spelling](address)
    with pytest.raises(UrlFetchError, match="refusing to fetch"):
        resolve_checked(f"http://{host}:8080/dog.jpg", POLICY)


@FAST
@given(address=addresses_in(REFUSED_V6))
def test_any_refused_ipv6_address_is_refused(address) -> None:
    with pytest.raises(UrlFetchError, match="refusing to fetch"):
        resolve_checked(f"https://[{address}]/dog.jpg", POLICY)


PUBLIC_V4 = ["8.8.8.0/24", "1.1.1.0/24", "52.94.0.0/16", "151.101.0.0/16"]


@FAST
@given(address=addresses_in(PUBLIC_V4), spelling=st.sampled_from(sorted(SPELLINGS)))
def test_public_addresses_pass_in_every_spelling_that_embeds_them(address, spelling) -> None:
    # The refusal is about where the bytes come from, not about unusual spellings.
    connected = ipaddress.ip_address(
        resolve_checked(f"http://{SPELLINGS[spelling](address)}/", POLICY)
    )
    assert address == connected or address in _embedded(connected)


def _embedded(address):
    from ml.url_fetch import embedded_ipv4

    return embedded_ipv4(address) if isinstance(address, ipaddress.IPv6Address) else []


@FAST
@given(url=st.text(max_size=300))
def test_any_string_is_a_url_or_a_url_fetch_error(url) -> None:
    with contextlib.suppress(UrlFetchError):
        resolve_checked(url, FetchPolicy(timeout_s=0.5))


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(
            st.sampled_from(["url", "top_k", "include_logits", "x"]) | st.text(),
            children,
            max_size=5,
        )
    ),
    max_leaves=30,
)


def _as_request_or_4xx(body: bytes) -> None:
    try:
        request = parse_json_request(body)
    except InferenceError as error:
        assert 400 <= error.status_code < 500
        return
    assert isinstance(request["url"], str) and request["url"]
    assert set(request) <= {"url", "top_k", "include_logits"}


@FAST
@given(body=st.binary(max_size=2000))
def test_any_bytes_as_a_json_body_are_a_request_or_a_4xx(body) -> None:
    _as_request_or_4xx(body)


@FAST
@given(document=JSON)
def test_any_json_document_is_a_request_or_a_4xx(document) -> None:
    _as_request_or_4xx(json.dumps(document).encode())


@FAST
@given(depth=st.integers(1, 50_000), opener=st.sampled_from(["[", '{"a":', '{"url":']))
def test_any_nesting_depth_is_a_request_or_a_4xx(depth, opener) -> None:
    _as_request_or_4xx((opener * depth).encode())


@FAST
@given(event=JSON | st.dictionaries(st.sampled_from(["body", "headers", "isBase64Encoded"]), JSON))
def test_any_lambda_event_is_a_request_or_a_bad_request(event) -> None:
    try:
        request = fn.parse_event(event, 6 * 1024 * 1024)
    except fn.BadRequest as error:
        assert 400 <= error.status_code < 500
        return
    assert request.content_type in fn.IMAGE_CONTENT_TYPES | {fn.JSON_CONTENT_TYPE}
