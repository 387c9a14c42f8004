"""NATS URLs with and without their credentials.

A connection dials a URL that may carry a user and password (``nats://user:pw@host:port``,
understood by nats-py and by the bare-socket readers alike); what is shown to people —
messages, records, logs — is the same URL without them. A NATS cluster is given as its
servers' URLs separated by commas (``nats://n1:4222,nats://n2:4222``): each carries the
login, and a connection goes to whichever answers.
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


def servers(url: str) -> list[str]:
    """The servers a URL (or a comma-separated list of them: a cluster) names."""
    return [one.strip() for one in url.split(",") if one.strip()]


def with_user(url: str, user: str, password: str) -> str:
    """``url`` dialing as ``user`` (a server whose URL names a user already is kept)."""
    return ",".join(_one_with_user(one, user, password) for one in servers(url))


def _one_with_user(url: str, user: str, password: str) -> str:
    parts = urlsplit(url)
    if parts.username or not parts.netloc:
        return url
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{parts.netloc}"
    return _with_netloc(url, netloc)


def public(url: str) -> str:
    """``url`` without user and password: what may be printed."""
    return ",".join(_one_public(one) for one in servers(url))


def _one_public(url: str) -> str:
    parts = urlsplit(url)
    if not parts.username and not parts.password:
        return url
    return _with_netloc(url, parts.netloc.rsplit("@", 1)[1])


def user_of(url: str) -> str | None:
    """The user a URL (its first server) logs in as, if any."""
    found = servers(url)
    name = urlsplit(found[0]).username if found else None
    return unquote(name) if name else None


def login_of(url: str) -> dict[str, str]:
    """nats-py's login options for a URL list (its first server's user and password, or
    token): given as options, not in each URL, since nats-py dials the servers a
    cluster announces with no login of their own."""
    found = servers(url)
    parts = urlsplit(found[0]) if found else None
    if parts is None or not parts.username:
        return {}
    if parts.password is None:
        return {"token": unquote(parts.username)}
    return {"user": unquote(parts.username), "password": unquote(parts.password)}


def addresses(url: str) -> list[Address]:
    """Where each server of a URL list is reached (:func:`address`)."""
    return [address(one) for one in servers(url)]


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
