"""Which network addresses outbound HTTP may reach (re-exported by `components.api`).

Cloud metadata endpoints are always refused: they hand out the server's own credentials.
Private, loopback, link-local and multicast addresses are refused when the server sets
`FLOWYARD_HTTP_BLOCK_PRIVATE=1`. The HTTP request action checks a URL before it sends
(`check_url_address`: a clear, non-retried step error); the shared client's transport checks
the address it actually connects to, so a DNS answer that changes after that check (rebinding)
is refused too, for every component.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import os
import socket
import time

import httpx

from components.errors import RetryableError, StepError

__all__ = [
    "BLOCK_PRIVATE_ENV",
    "IPAddress",
    "address_refusal",
    "block_private_addresses",
    "check_url_address",
    "host_refusal",
    "literal_address",
]

BLOCK_PRIVATE_ENV = "FLOWYARD_HTTP_BLOCK_PRIVATE"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata.goog"})
_METADATA_IPS = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean, ...
        "fd00:ec2::254",  # AWS over IPv6
        "169.254.170.2",  # AWS ECS task credentials
        "100.100.100.200",  # Alibaba Cloud
    )
)


def block_private_addresses() -> bool:
    """Whether this server refuses private addresses (`FLOWYARD_HTTP_BLOCK_PRIVATE=1`)."""
    return os.environ.get(BLOCK_PRIVATE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def host_refusal(host: str) -> str | None:
    """Why a host *name* may never be called (a metadata name), or None."""
    name = host.rstrip(".").lower()
    if name in _METADATA_HOSTS:
        return (
            f"Refused to call {name}: cloud metadata endpoints are never allowed, since they "
            "hand out the server's own credentials."
        )
    return None


@functools.lru_cache(maxsize=1024)
def literal_address(host: str) -> IPAddress | None:
    """The address `host` spells when it is an IP literal, or None for a name.

    Cached, like `address_refusal`: every HTTP request asks both, for the same few hosts, and
    parsing an address costs more than the rest of the check."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


@functools.lru_cache(maxsize=1024)
def address_refusal(host: str, address: IPAddress, *, block_private: bool) -> str | None:
    """Why `host` may not be called at `address`, or None when it may."""
    plain: IPAddress = address
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        plain = address.ipv4_mapped
    if plain in _METADATA_IPS:
        return (
            f"Refused to call {host} ({plain}): cloud metadata addresses are never allowed, "
            "since they hand out the server's own credentials."
        )
    if block_private and (not plain.is_global or plain.is_multicast):
        return (
            f"Refused to call {host} ({plain}): private, loopback and link-local addresses "
            f"are blocked on this server ({BLOCK_PRIVATE_ENV}=1)."
        )
    return None


async def check_url_address(url: httpx.URL, block_private: bool) -> None:
    """Refuse `url` with a `StepError` naming why: metadata addresses always, private ones when
    `block_private`, checked after resolving its host name (a failed lookup is retryable)."""
    host = url.host.rstrip(".").lower()
    if refusal := host_refusal(host):
        raise StepError(refusal)
    literal = literal_address(host)
    addresses = [literal] if literal is not None else await _resolve(url, host)
    for address in addresses:
        if refusal := address_refusal(host, address, block_private=block_private):
            private_only = address_refusal(host, address, block_private=False) is None
            hint = (
                f"Call a public address, or unset {BLOCK_PRIVATE_ENV} on the server to allow "
                "private networks."
            )
            raise StepError(refusal, hint=hint if private_only else "")


_RESOLVED_SECONDS = 10.0
_resolved: dict[tuple[str, int], tuple[float, list[IPAddress]]] = {}
"""Addresses of recently checked names, each kept `_RESOLVED_SECONDS` (aiohttp's DNS cache keeps
them as long): without it every HTTP step made a DNS lookup of its own, beside the one of the
connection it then used. Only the messages depend on it; the shared client's transport checks the
addresses it connects to."""


async def _resolve(url: httpx.URL, host: str) -> list[IPAddress]:
    """The addresses `url`'s host name resolves to (cached, see `_resolved`)."""
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        name = url.raw_host.decode("ascii")  # the IDNA (punycode) form that DNS and httpx use
        cached = _resolved.get((name, port))
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1]
        infos = await asyncio.get_running_loop().getaddrinfo(name, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise RetryableError(
            f"Could not resolve host '{host}': {exc}.",
            hint="Check the URL's host name and the server's DNS.",
        ) from None
    addresses: list[IPAddress] = []
    for info in infos:
        try:
            addresses.append(ipaddress.ip_address(str(info[4][0]).partition("%")[0]))
        except ValueError:
            continue
    if len(_resolved) >= 1024:
        _resolved.clear()
    _resolved[(name, port)] = (now + _RESOLVED_SECONDS, addresses)
    return addresses
