"""NATS URLs with and without their credentials.

A connection dials a URL that may carry a user and password (``nats://user:pw@host:port``,
understood by nats-py and by the bare-socket readers alike); what is shown to people —
messages, records, logs — is the same URL without them.
"""

from __future__ import annotations

import ssl
from typing import NamedTuple
from urllib.parse import quote, unquote, urlsplit, urlunsplit


class Endpoint(NamedTuple):
    """Where a connection goes: its URL (login included) and the TLS context that
    verifies the server (None: a plain connection, unless the server asks for TLS)."""

    url: str
    tls: ssl.SSLContext | None = None


class Address(NamedTuple):
    """Where a bare socket connects, and what it says in CONNECT."""

    host: str
    port: int
    user: str | None
    password: str | None


def with_user(url: str, user: str, password: str) -> str:
    """``url`` dialing as ``user`` (a URL that names a user already is kept)."""
    parts = urlsplit(url)
    if parts.username or not parts.netloc:
        return url
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{parts.netloc}"
    return _with_netloc(url, netloc)


def public(url: str) -> str:
    """``url`` without user and password: what may be printed."""
    parts = urlsplit(url)
    if not parts.username and not parts.password:
        return url
    return _with_netloc(url, parts.netloc.rsplit("@", 1)[1])


def user_of(url: str) -> str | None:
    """The user a URL logs in as, if any."""
    name = urlsplit(url).username
    return unquote(name) if name else None


def address(url: str) -> Address:
    """Host, port and credentials of a ``nats://`` or ``tls://`` URL (ValueError for
    another scheme)."""
    parts = urlsplit(url)
    if parts.scheme not in ("nats", "tls", ""):
        raise ValueError(f"{public(url)}: not a nats:// or tls:// URL")
    return Address(
        parts.hostname or "127.0.0.1",
        parts.port or 4222,
        unquote(parts.username) if parts.username else None,
        unquote(parts.password) if parts.password else None,
    )


def _with_netloc(url: str, netloc: str) -> str:
    scheme, _, path, query, fragment = urlsplit(url)
    return urlunsplit((scheme, netloc, path, query, fragment))
