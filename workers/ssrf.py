"""SSRF: which addresses outbound requests may not reach, the one rule both HTTP paths apply.

It is applied when the socket is opened, on the addresses the hostname actually resolved to
(in the manner of Sentry's src/sentry/net/socket.py): ``workers.http`` checks urllib3's
getaddrinfo answer (tokens, GraphQL origins, notifications) and ``workers.transport`` its
aiohttp resolver's (deliveries). A URL that looks harmless but resolves, or re-resolves later
(DNS rebinding), to an internal address is refused before a single byte is sent. IP literals
are judged here too, and when a webhook is configured (``check_url_literal``), so a mistake
is a 400 rather than a dead letter.

Refused: whatever is not globally routable (loopback, private, link-local, CGNAT, multicast,
reserved, unspecified, site-local), judged on the IPv4 address an IPv6 one embeds, unless it
is in DOO_WEBHOOKS_ALLOWED_NETWORKS. Anything unparseable is refused (fail closed).
"""

import ipaddress
import socket
import urllib.parse

_CGNAT = ipaddress.ip_network("100.64.0.0/10")


class SSRFBlocked(Exception):
    """A host resolved to an address outbound requests may not reach."""

    def __init__(self, address, host=None):
        self.address = address
        self.host = host
        where = f"{host} resolves to {address}" if host and host != address else address
        super().__init__(f"{where}: not a globally routable address and not in DOO_WEBHOOKS_ALLOWED_NETWORKS")


def _embedded_ipv4(addr):
    """The IPv4 address an IPv6 address stands for (mapped or 6to4), else None."""
    return (addr.ipv4_mapped or addr.sixtofour) if addr.version == 6 else None


def _routable(addr):
    # is_global alone lets multicast (and on some Python versions more) through.
    return (addr.is_global and not (
        addr.is_multicast or addr.is_reserved or addr.is_unspecified or addr.is_loopback
        or addr.is_link_local or addr.is_private
        or (addr.version == 4 and addr in _CGNAT)
        or (addr.version == 6 and addr.is_site_local)))


def is_blocked(ip, allowed_networks):
    """True when ``ip`` may not be contacted: not globally routable and not allowed."""
    try:
        addr = ipaddress.ip_address(str(ip).split("%", 1)[0])  # drop an IPv6 zone id
    except ValueError:
        return True  # fail closed on anything unparseable
    embedded = _embedded_ipv4(addr)
    forms = (addr,) if embedded is None else (addr, embedded)
    if any(form in network for form in forms for network in allowed_networks):
        return False
    # The packets go to the embedded IPv4 address, so that is the one to judge.
    return not _routable(forms[-1])


def literal_address(host):
    """The IP address ``host`` is written as (any form getaddrinfo accepts), else None."""
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        pass
    try:
        # getaddrinfo also accepts legacy forms like 127.1 or 2130706433 without DNS.
        return ipaddress.ip_address(socket.inet_aton(host))
    except (OSError, ValueError):
        return None


def check_url_literal(url, allowed_networks):
    """A reason string when the URL's host is an IP literal the guard would refuse, else None."""
    try:
        host = urllib.parse.urlsplit(url).hostname
    except ValueError:
        return None
    addr = literal_address(host) if host else None
    if addr is not None and is_blocked(str(addr), allowed_networks):
        return f"{host} is not a globally routable address and not in DOO_WEBHOOKS_ALLOWED_NETWORKS"
    return None


def check_resolved(host, addresses, allowed_networks):
    """Raise SSRFBlocked when ANY of the addresses ``host`` resolved to is blocked: all of them,
    not just the one tried first, or a failed first connect would fall through to the next."""
    for address in addresses:
        if is_blocked(address, allowed_networks):
            raise SSRFBlocked(address, host)
