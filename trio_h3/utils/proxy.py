"""Behind a reverse proxy: who the client is, and how it addressed us. Pure.

With ``ServeOptions(proxy_headers=True)`` (the default, as uvicorn's ``--proxy-headers``),
a request whose *peer* is trusted (``forwarded_allow_ips``: uvicorn's name and
semantics: IP addresses and CIDR networks, comma-separated, or ``*`` for any peer;
unset, the ``FORWARDED_ALLOW_IPS`` environment variable, else ``127.0.0.1``) has its
proxy headers applied where the server builds the event: ``event.client``,
``event.scheme`` / ``event.url.scheme`` and ``event.url.host``. From any other peer they
are ignored, whatever they say.

Which headers, and how they are read:

- ``X-Forwarded-For`` (every line, comma-separated, each proxy appending the peer it
  saw): the client is the rightmost address that is not itself a trusted proxy (all
  trusted: the leftmost; with ``*``: the leftmost), as uvicorn does. Only an IP address
  (with an optional port: ``1.2.3.4:5``, ``[::1]:5``) becomes ``event.client``: junk or
  ``unknown`` leaves the peer's address rather than put a string the client chose in
  every log.
- ``X-Forwarded-Proto`` (``http``, ``https``; ``ws``/``wss`` mean the same here) and
  ``X-Forwarded-Host`` (a ``host[:port]`` of RFC 3986 §3.2.2, else ignored): the entry at
  the client's position when the lists line up with ``X-Forwarded-For``, else the
  rightmost, the one the proxy talking to us wrote.
- ``Forwarded`` (RFC 7239), used when no ``X-Forwarded-*`` header is present: its
  elements are walked from the right on their ``for=`` (§5.2) as above, and the chosen
  element's ``proto=`` (§5.4) and ``host=`` (§5.3) apply; ``for=unknown`` and obfuscated
  identifiers (§6.2, §6.3) are never an address.

The ``X-Forwarded-*`` family wins over ``Forwarded`` because it is what nginx, HAProxy,
Traefik, Caddy, Envoy and the cloud load balancers set; a proxy that sets one family
must strip (or overwrite) the other, or a client could supply it.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Sequence
from typing import NamedTuple

from ..datastructures import Address

__all__: list[str] = []

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# uvicorn's default: the proxy on the same host.
DEFAULT_ALLOW = "127.0.0.1"
_SCHEMES = {"http": "http", "https": "https", "ws": "http", "wss": "https"}
# RFC 3986 §3.2.2: host = IP-literal / IPv4address / reg-name, then [":" port].
_HOST = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~%!$&'()*+,;=]+)(?::[0-9]{1,5})?")
# RFC 7239 §4: forwarded-pair = token "=" value; value = token / quoted-string.
_PAIR = re.compile(
    r'\s*([!#$%&\'*+\-.^_`|~0-9A-Za-z]+)=("(?:[^"\\]|\\.)*"|[!#$%&\'*+\-.^_`|~0-9A-Za-z]+)\s*'
)
#: The header names proxies speak through (a request without any skips all of this).
PROXY_NAMES = frozenset(
    (b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"forwarded")
)


def _ip(text: str) -> IPAddress | None:
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    # A dual-stack listener sees IPv4 peers as ::ffff:a.b.c.d.
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


class TrustedProxies:
    """The peers whose proxy headers are believed (``forwarded_allow_ips``)."""

    __slots__ = ("_contains", "always", "hosts", "networks")

    def __init__(self, allow: str | Sequence[str]) -> None:
        entries = [e.strip() for e in allow.split(",")] if isinstance(allow, str) else list(allow)
        entries = [e for e in entries if e]
        #: ``*``: every peer.
        self.always = "*" in entries
        self.hosts: set[IPAddress] = set()
        self.networks: list[IPNetwork] = []
        for entry in entries:
            if entry == "*":
                continue
            if "/" in entry:
                try:
                    self.networks.append(ipaddress.ip_network(entry, strict=False))
                except ValueError:
                    raise ValueError(f"forwarded_allow_ips: {entry!r} is not a network") from None
                continue
            ip = _ip(entry)
            if ip is None:
                # uvicorn keeps such an entry as a literal that no TCP peer ever matches;
                # a typo here would silently trust nobody, so say so at once.
                raise ValueError(
                    f"forwarded_allow_ips: {entry!r} is not an IP address, a network or '*'"
                )
            self.hosts.add(ip)
        # Peers repeat: remember the answer (bounded, as uvicorn does).
        self._contains = functools.lru_cache(maxsize=4096)(self._check)

    def _check(self, host: str) -> bool:
        ip = _ip(host)
        return ip is not None and (ip in self.hosts or any(ip in net for net in self.networks))

    def __contains__(self, host: object) -> bool:
        if self.always:
            return True
        if not isinstance(host, str) or not host or len(host) > 64:
            return False
        trusted: bool = self._contains(host)
        return trusted


class Forwarded(NamedTuple):
    """What a trusted proxy says about the request (None: it says nothing of that)."""

    client: Address | None
    scheme: str | None
    host: str | None


def _split(values: list[str]) -> list[str]:
    return [item.strip() for value in values for item in value.split(",")]


def _host_port(value: str) -> tuple[str, int]:
    """``1.2.3.4:5`` / ``[::1]:5`` / ``::1`` -> host and port (0 when absent), as uvicorn."""
    if value.startswith("["):
        end = value.find("]")
        if end == -1:
            return value, 0
        host, rest = value[1:end], value[end + 1 :]
        return host, int(rest[1:]) if rest[:1] == ":" and rest[1:].isdigit() else 0
    if value.count(":") == 1:
        host, port = value.split(":")
        return host, int(port) if port.isdigit() else 0
    return value, 0


def _choose(nodes: list[str], trusted: TrustedProxies) -> int:
    """The index of the client among the nodes proxies appended (module docstring)."""
    if not trusted.always:
        for index in range(len(nodes) - 1, -1, -1):
            if _host_port(nodes[index])[0] not in trusted:
                return index
    return 0


def _address(node: str) -> Address | None:
    host, port = _host_port(node)
    ip = _ip(host)
    if ip is None or not 0 <= port <= 65535:
        return None
    return Address(str(ip), port)


def _scheme(value: str | None) -> str | None:
    return _SCHEMES.get(value.lower()) if value else None


def _valid_host(value: str | None) -> str | None:
    return value if value and _HOST.fullmatch(value) else None


def _at(values: list[str], index: int, nodes: int) -> str | None:
    """The entry at the client's position if the list lines up, else the rightmost."""
    if not values:
        return None
    return values[index] if len(values) == nodes else values[-1]


def _from_x_forwarded(found: dict[bytes, list[str]], trusted: TrustedProxies) -> Forwarded:
    nodes = [n for n in _split(found.get(b"x-forwarded-for", [])) if n]
    index = _choose(nodes, trusted) if nodes else 0
    client = _address(nodes[index]) if nodes else None
    protos = [p for p in _split(found.get(b"x-forwarded-proto", [])) if p]
    hosts = [h for h in _split(found.get(b"x-forwarded-host", [])) if h]
    return Forwarded(
        client,
        _scheme(_at(protos, index, len(nodes))),
        _valid_host(_at(hosts, index, len(nodes))),
    )


def _split_unquoted(text: str, separator: str) -> list[str]:
    """``text`` split on ``separator`` where it is not inside a quoted-string."""
    parts: list[str] = []
    start = 0
    quoted = escaped = False
    for index, char in enumerate(text):
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append(text[start:index])
            start = index + 1
    parts.append(text[start:])
    return parts


def parse_forwarded(values: list[str]) -> list[dict[str, str]]:
    """The elements of ``Forwarded`` header values (RFC 7239 §4), parameter names lowercased.

    A malformed element is kept, empty, so that the positions of the others still count.
    """
    elements: list[dict[str, str]] = []
    for value in values:
        for text in _split_unquoted(value, ","):
            element: dict[str, str] = {}
            for pair in _split_unquoted(text, ";"):
                if not pair.strip():
                    continue  # forwarded-element = [ forwarded-pair ] *( ";" [ forwarded-pair ] )
                match = _PAIR.fullmatch(pair)
                if match is None:
                    element = {}
                    break
                raw = match.group(2)
                if raw[:1] == '"':
                    raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
                # RFC 7239 §4: a parameter MUST NOT occur more than once; the first counts.
                element.setdefault(match.group(1).lower(), raw)
            elements.append(element)
    return elements


def _from_forwarded(values: list[str], trusted: TrustedProxies) -> Forwarded:
    elements = parse_forwarded(values)
    nodes = [element.get("for", "unknown") for element in elements]
    chosen = elements[_choose(nodes, trusted)]
    node = chosen.get("for")
    return Forwarded(
        _address(node) if node else None,
        _scheme(chosen.get("proto")),
        _valid_host(chosen.get("host")),
    )


def forwarded(headers: list[tuple[bytes, bytes]], trusted: TrustedProxies) -> Forwarded | None:
    """What the proxy headers of a request from a trusted peer say (None: none present)."""
    found: dict[bytes, list[str]] | None = None
    for name, value in headers:
        # One pass, and nothing decoded for the usual request that has none of them.
        if name in PROXY_NAMES:
            if found is None:
                found = {}
            found.setdefault(name, []).append(value.decode("latin-1"))
    if found is None:
        return None
    standard = found.pop(b"forwarded", None)
    if found:
        return _from_x_forwarded(found, trusted)
    assert standard is not None
    return _from_forwarded(standard, trusted)
