"""A log written in subject layout 1 (before the kind was the last token) is upgraded in
place by the server's owner, refused by everyone else, and survives a crash mid-way."""

from __future__ import annotations

import json
from pathlib import Path

import nats
import pytest
from nats.js import JetStreamContext

from jobstream.errors import ServerError
from jobstream.streams import layout
from jobstream.streams.connection import open_connection
from jobstream.streams.layout import SIDE_STREAM
from jobstream.streams.reader import decode_batch, read_raw_batches
from jobstream.streams.setup import events_config, work_config
from jobstream.streams.subjects import EVENTS_STREAM, LAYOUT, LAYOUT_KEY, WORK_STREAM

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "logs" / "failure_cascade.jsonl"
LOGGED = [json.loads(line) for line in GOLDEN.open()]


async def _old_store(url: str) -> None:
    """EVENTS as a layout-1 server left it (no layout mark), holding a recorded log and a
    message that is no event, and a dispatch in WORK."""
    nc = await nats.connect(url)
    js = nc.jetstream()
    old = events_config()
    old.metadata = None
    await js.add_stream(old)
    await js.add_stream(work_config())
    for message in LOGGED:
        await js.publish(message["subject"], message["data"].encode(), headers=message["headers"])
    await js.publish(LOGGED[1]["subject"], b"GARBAGE")
    await js.publish("work.default.c1", b"{}")
    await nc.close()


async def _subjects(url: str) -> list[str]:
    async with open_connection(url) as conn:
        return [s for raw in [b async for b in read_raw_batches(conn.js, follow=False)]
                for s in raw.subjects]  # fmt: skip


async def test_the_owner_upgrades_a_layout_1_log_and_others_are_refused(nats_url: str) -> None:
    await _old_store(nats_url)
    with pytest.raises(ServerError, match=r"older jobstream.*which upgrades it"):
        async with open_connection(nats_url):
            pass
    told: list[str] = []
    async with open_connection(nats_url, upgrade=told.append) as conn:
        info = await conn.js.stream_info(EVENTS_STREAM)
        assert (info.config.metadata or {})[LAYOUT_KEY] == LAYOUT
        assert info.state.messages == len(LOGGED) + 1 and info.state.first_seq == 1
        assert (await conn.js.stream_info(WORK_STREAM)).state.messages == 0
        batches = [b async for b in read_raw_batches(conn.js, follow=False)]
        decoded = [decode_batch(raw) for raw in batches]
        assert sum(len(b.events) for b in decoded) == len(LOGGED)  # every event kept, readable
        assert [len(b.ill_formed) for b in decoded] == [1]
    subjects = await _subjects(nats_url)
    assert subjects[:2] == [
        LOGGED[0]["subject"] + ".WorkflowSubmitted",
        LOGGED[1]["subject"] + ".JobSubmitted",
    ]
    assert subjects[-1] == LOGGED[1]["subject"] + "." + layout.ILL_FORMED_KIND
    assert any("copying" in line for line in told) and "upgraded" in told[-1]


async def test_an_upgrade_interrupted_after_the_copy_finishes_from_the_copy(
    nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worst moment: EVENTS deleted, nothing written back yet. Others are refused
    until the owner finishes it from the complete copy."""
    await _old_store(nats_url)
    delete_stream = JetStreamContext.delete_stream

    async def dies_after_deleting(js: JetStreamContext, name: str) -> bool:
        await delete_stream(js, name)
        raise RuntimeError(f"killed after deleting {name}")

    with monkeypatch.context() as patch:
        patch.setattr(JetStreamContext, "delete_stream", dies_after_deleting)
        with pytest.raises(RuntimeError, match="killed after deleting EVENTS"):
            async with open_connection(nats_url, upgrade=print):
                pass
    with pytest.raises(ServerError, match="upgrade of it was interrupted"):
        async with open_connection(nats_url):
            pass
    async with open_connection(nats_url, upgrade=print) as conn:
        assert (await conn.js.stream_info(EVENTS_STREAM)).state.messages == len(LOGGED) + 1
        assert SIDE_STREAM not in [s.config.name for s in await conn.js.streams_info()]
    assert len(await _subjects(nats_url)) == len(LOGGED) + 1
