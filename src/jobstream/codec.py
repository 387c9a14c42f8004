"""Bytes <-> events. JSON on the wire; type and version in headers; old versions upcast.

Decoding is strict: a malformed event raises :class:`MalformedEvent` naming the stream
sequence, so a consumer can report it instead of crashing on it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from jobstream.errors import JobstreamError
from jobstream.events import AnyEvent, Event

TYPE_HEADER = "Jobstream-Type"
VERSION_HEADER = "Jobstream-Version"

_encoder = msgspec.json.Encoder()
_decoder: msgspec.json.Decoder[AnyEvent] = msgspec.json.Decoder(AnyEvent)
_raw_decoder = msgspec.json.Decoder(dict[str, Any])

# (type name, version it upgrades from) -> function taking the raw dict to the next version.
Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
UPCASTERS: dict[tuple[str, int], Upcaster] = {}


class MalformedEvent(JobstreamError):
    """A stored message is not a valid jobstream event."""


def encode(event: Event) -> bytes:
    """The JSON body of an event (includes its ``type`` tag)."""
    return _encoder.encode(event)


def headers_for(event: Event) -> dict[str, str]:
    """Headers that name the event type and schema version."""
    return {TYPE_HEADER: type(event).__name__, VERSION_HEADER: str(type(event).VERSION)}


def schema_version(headers: dict[str, str] | None) -> int:
    """The schema version the headers name (0: none); ValueError if it is not a number."""
    return int((headers or {}).get(VERSION_HEADER, "0") or 0)


def decode(data: bytes, headers: dict[str, str] | None = None, where: str = "") -> AnyEvent:
    """Decode one stored event, upcasting it when it was written by an older version."""
    try:
        version = schema_version(headers)
        type_name = (headers or {}).get(TYPE_HEADER, "")
        upcast = UPCASTERS and version  # none today: skip the search
        if upcast and any(key[0] == type_name and key[1] >= version for key in UPCASTERS):
            raw = _raw_decoder.decode(data)
            while (type_name, version) in UPCASTERS:
                raw = UPCASTERS[(type_name, version)](raw)
                version += 1
            return msgspec.convert(raw, AnyEvent)  # type: ignore[no-any-return]
        return _decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
        raise MalformedEvent(f"malformed event{' at ' + where if where else ''}: {exc}") from exc


class _Timed(msgspec.Struct):
    at: float


_time_decoder = msgspec.json.Decoder(_Timed)


def event_time(data: bytes) -> float:
    """Only the decision time of an encoded event (cheap: the rest is skipped)."""
    try:
        return _time_decoder.decode(data).at
    except (msgspec.DecodeError, msgspec.ValidationError):
        return 0.0
