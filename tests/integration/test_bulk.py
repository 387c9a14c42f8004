"""The bulk readers against a real server: the same events as nats-py's reader."""

from __future__ import annotations

import contextlib
from pathlib import Path

import anyio
import pytest

from jobstream.host.embedded import apply_users, embedded, server_binary
from jobstream.ops.submit import submit_workflow
from jobstream.streams.bulk import follow_bulk, read_bulk, read_to_end
from jobstream.streams.connection import Connection, open_connection
from jobstream.streams.pull import BulkUnavailable, plain_addresses, reachable
from jobstream.streams.reader import read_raw_batches
from jobstream.streams.subjects import EVENTS_STREAM
from jobstream.streams.urls import Endpoint
from jobstream.streams.wire import RawBatch

from .helpers import free_port, workflow


def flatten(batches: list[RawBatch]) -> list[tuple[int, str, bytes, str]]:
    return [
        (seq, subject, payload, (headers or {}).get("Jobstream-Type", ""))
        for b in batches
        for seq, subject, headers, payload in zip(
            b.seqs, b.subjects, b.headers, b.payloads, strict=True
        )
    ]


@pytest.mark.parametrize(
    ("subject_filter", "from_seq"), [("ev.>", 1), ("ev.*.job.7.*", 1), ("ev.>", 999)]
)
async def test_bulk_reads_what_the_ordered_reader_reads(
    conn: Connection, subject_filter: str, from_seq: int
) -> None:
    spec = workflow(*((f"j{i}", "true", ()) for i in range(1200)))
    await submit_workflow(conn, spec, workdir=".")  # 1,201 events
    bulk = [b async for b in read_bulk(conn.js, conn.endpoint, subject_filter, from_seq=from_seq)]
    assert not (await conn.js.consumers_info("EVENTS"))  # its consumer is gone
    ordered = [
        b async for b in read_raw_batches(conn.js, subject_filter, from_seq=from_seq, follow=False)
    ]
    assert flatten(bulk) == flatten(ordered) and flatten(bulk)
    assert bulk[-1].caught_up


async def test_bulk_of_nothing_is_one_empty_caught_up_batch(conn: Connection) -> None:
    async with read_to_end(conn.js, conn.endpoint, "ev.nothing.>") as batches:
        found = [b async for b in batches]
    assert [(b.seqs, b.caught_up) for b in found] == [([], True)]


def test_bare_readers_log_in_and_speak_tls() -> None:
    assert plain_addresses("nats://127.0.0.1:4333") == [("127.0.0.1", 4333, None, None)]
    (login,) = plain_addresses("nats://jobstream:a%2Fb@127.0.0.1:4333")
    assert (login.user, login.password) == ("jobstream", "a/b")
    assert plain_addresses("tls://127.0.0.1:4222")[0].port == 4222  # see test_tls.py
    cluster = plain_addresses("nats://u:p@127.0.0.1:4333,nats://u:p@127.0.0.1:4334")
    assert [(a.port, a.user) for a in cluster] == [(4333, "u"), (4334, "u")]
    with pytest.raises(BulkUnavailable):
        plain_addresses("ws://127.0.0.1:4222")


async def test_follower_hands_out_backlog_and_live_events_once_and_in_order(
    conn: Connection, caplog: pytest.LogCaptureFixture
) -> None:
    """The live reader of the scheduler and projector: a backlog, events that arrive while
    it follows, and its consumer lost midway (it reads again from where it was)."""
    await submit_workflow(conn, workflow(*((f"a{i}", "true", ()) for i in range(300))), workdir=".")
    follower = follow_bulk(conn.js, conn.endpoint, from_seq=5, size=100, poll_s=0.2)
    batches: list[RawBatch] = []
    async with contextlib.aclosing(follower):
        with anyio.fail_after(30):
            async for batch in follower:
                batches.append(batch)
                seen = sum(len(b.seqs) for b in batches)
                if seen == 297:  # the backlog: sequences 5..301
                    assert batch.caught_up
                    await submit_workflow(conn, workflow(("b", "true", ())), workdir=".")
                elif seen == 299:  # a consumer gone (as after a server restart)
                    for name in await conn.js.consumers_info(EVENTS_STREAM):
                        await conn.js.delete_consumer(EVENTS_STREAM, name.name)
                    await submit_workflow(conn, workflow(("c", "true", ())), workdir=".")
                elif seen == 301:
                    break
    assert max(len(b.seqs) for b in batches) <= 100
    every = [b async for b in read_raw_batches(conn.js, "ev.>", from_seq=5, follow=False)]
    assert flatten(batches) == flatten(every)
    assert [seq for seq, *_ in flatten(batches)] == list(range(5, 306))
    assert "event reader lost its connection" in caplog.text


async def test_quiet_follower_says_so_every_poll(conn: Connection) -> None:
    follower = follow_bulk(conn.js, conn.endpoint, from_seq=1, poll_s=0.2)
    async with contextlib.aclosing(follower):
        with anyio.fail_after(5):
            quiet = [await anext(follower) for _ in range(3)]
    assert all(b.caught_up and not b.seqs for b in quiet)
    assert not (await conn.js.consumers_info("EVENTS"))  # its consumer is gone


async def test_the_bare_reader_logs_in_with_a_token_as_nats_py_does(tmp_path: Path) -> None:
    """A site's own nats-server that takes a token (``nats://TOKEN@host``)."""
    port = free_port()
    server = await anyio.open_process(
        [str(server_binary()), "-js", "-a", "127.0.0.1", "-p", str(port),
         "--auth", "s3cret", "-sd", str(tmp_path / "store")],
    )  # fmt: skip
    async with server:
        try:
            url = f"nats://s3cret@127.0.0.1:{port}"
            with anyio.fail_after(10):
                while not await reachable(Endpoint(url)):
                    await anyio.sleep(0.05)
            async with open_connection(url) as conn:
                await submit_workflow(conn, workflow(("a", "true", ())), workdir=".")
                bulk = [b async for b in read_bulk(conn.js, conn.endpoint)]
                assert sum(len(b.seqs) for b in bulk) == 2
        finally:
            server.terminate()


async def test_bare_readers_ride_out_the_server_re_reading_its_users(tmp_path: Path) -> None:
    """Adding or revoking a user makes nats-server re-read its users and refuse every
    connection that had not finished logging in; a bulk reader caught so lost its
    connection mid-read, and the projector reading with it went down (a revoke in
    test_roles failed that way in CI). Before: about 3 in 100 reads failed here."""
    state = tmp_path / "state"
    async with embedded(state) as server, open_connection(server.dial_url) as conn:
        await submit_workflow(
            conn, workflow(*((f"j{i}", "true", ()) for i in range(50))), workdir="."
        )
        re_read, reads = anyio.Event(), 0

        async def re_read_users() -> None:
            for _ in range(30):
                assert await anyio.to_thread.run_sync(apply_users, state)
                await anyio.sleep(0.01)
            re_read.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(re_read_users)
            while not re_read.is_set():
                bulk = [b async for b in read_bulk(conn.js, conn.endpoint)]
                assert sum(len(b.seqs) for b in bulk) == 51
                reads += 1
        assert reads > 30
