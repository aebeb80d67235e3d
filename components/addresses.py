"""Which network addresses outbound HTTP may reach (re-exported by `components.api`).

Cloud metadata endpoints are always refused: they hand out the server's own credentials.
Private, loopback, link-local and multicast addresses are refused when the server sets
`FLOWYARD_HTTP_BLOCK_PRIVATE=1`. The HTTP request action checks a URL before it sends (a clear,
non-retried step error); the shared client's transport checks the address it actually connects
to, so a DNS answer that changes after that check (rebinding) is refused too, for every component.
"""

from __future__ import annotations

import functools
import ipaddress
import os

__all__ = [
    "BLOCK_PRIVATE_ENV",
    "IPAddress",
    "address_refusal",
    "block_private_addresses",
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
