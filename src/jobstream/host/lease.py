"""One active scheduler (and projector) among several: a lease in the KV bucket LEASES.

Several ``jobstream server`` processes may run on one log; for each role (a scheduler
partition, the projector) one holds the lease and works, the others wait as standbys.
The holder renews its entry every RENEW_S (a KV update on the revision it last wrote,
so two can never both hold it); a standby that sees the same revision for TTL_S takes
it over the same way. The revision that acquired the lease is its fencing token,
growing with every takeover.

Fencing: a holder that has not renewed for TTL_S - RENEW_S stops its work before any
standby may take over (both measure on their own monotonic clocks, and the standby
starts counting later than the holder's last renewal). A holder that was paused past
that (SIGSTOP, a frozen VM) and writes on: every scheduler write is a CAS on the job's
last sequence and every dispatch has a deterministic message id, so its late writes
are refused or deduplicated; the projector's late KV puts are re-projections of the
same log, overwritten by the active one's next write of that job.

A clean stop deletes the entry: the standby takes over at its next look (POLL_S),
not after TTL_S.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

import anyio
import msgspec
from anyio.abc import TaskStatus
from nats.aio.client import Client as NATS
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from jobstream.errors import ConfigError
from jobstream.host.supervise import Service
from jobstream.streams.setup import ensure_kv
from jobstream.streams.subjects import LEASES_BUCKET

log = logging.getLogger(__name__)
TTL_S = 3.0
RENEW_S = 1.0
POLL_S = 0.25
SHARE_DELAY_S = 1.0
BALANCE_S = 5.0  # how often a holder of several leases looks whether it holds too many
PRESENT = "present"  # keys present.<holder>: the servers there are
PRESENT_S = 10.0  # a server not heard of for this long is not counted
PROJECTOR = "projector"  # its lease's key (the schedulers': scheduler/partition.py)
SLURM_WATCHER = "slurm-watcher"  # records allocations' starts and ends (slurm/watch.py)


class Held(msgspec.Struct, frozen=True):
    """A lease entry: who holds it, and since when (for people; expiry is judged by
    revisions, never by comparing clocks)."""

    holder: str
    since: float


def holder_id() -> str:
    """This process among all servers: host, pid and a random part (a restarted process
    with a reused pid is someone else)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(2)}"


@dataclass
class Observation:
    """What a standby saw of the lease: the revision, and since when (monotonic) it has
    not changed."""

    revision: int | None = None
    since: float = 0.0
    free_since: float | None = None  # since when it has been free (or expired)

    def saw(self, revision: int, now: float) -> None:
        if revision != self.revision:
            self.revision, self.since = revision, now

    def expired(self, now: float, ttl_s: float = TTL_S) -> bool:
        """True when the holder has not renewed for ``ttl_s``: it stopped, or is about to."""
        return self.revision is not None and now - self.since >= ttl_s

    def my_turn(self, now: float, holding: int) -> bool:
        """Whether a process that holds ``holding`` leases of this kind takes a free one
        now: at once when it holds none, else after SHARE_DELAY_S per lease held, so
        that servers started together share the partitions."""
        if self.free_since is None:
            self.free_since = now
        return now - self.free_since >= SHARE_DELAY_S * holding


def must_stop(
    last_renewed: float, now: float, ttl_s: float = TTL_S, renew_s: float = RENEW_S
) -> bool:
    """A holder that could not renew for this long stops working: a standby may take
    over once TTL_S has passed, and the holder must be gone by then."""
    return now - last_renewed >= ttl_s - renew_s


async def ensure_leases(nc: NATS, replicas: int) -> KeyValue:
    """The LEASES bucket (one entry per role), read and written with a short timeout:
    an answer later than a lease's renewal interval is no use."""
    return await ensure_kv(nc.jetstream(timeout=RENEW_S), LEASES_BUCKET, replicas)


async def agree(kv: KeyValue, key: str, value: str, what: str) -> None:
    """Record a value every server of a deployment must share (the first one to start
    records it); ConfigError when this server's differs."""
    try:
        await kv.create(key, value.encode())
        return
    except KeyWrongLastSequenceError:
        found = (await kv.get(key)).value or b""
    if found.decode() != value:
        raise ConfigError(
            f"{what} is {found.decode()} in this deployment (recorded in the {LEASES_BUCKET} "
            f"bucket, key {key!r}); this server was given {value}: give every server the same"
        )


class Share:
    """What the leases of one kind (the scheduler partitions) of one process share: which
    it holds, how many there are, and this process's presence among the servers (a
    ``present.<holder>`` entry, written every RENEW_S), by which a holder of more than
    its share hands one over to a server that holds fewer."""

    def __init__(self, count: int, holder: str) -> None:
        self.count = count
        self.holdings: set[str] = set()
        self.presence_key = f"{PRESENT}.{re.sub(r'[^-_a-zA-Z0-9]', '_', holder)}"
        self.announced_at = 0.0

    async def announce(self, kv: KeyValue) -> None:
        """Say this server is here (at most once per RENEW_S, whichever lease calls)."""
        if time.monotonic() - self.announced_at >= RENEW_S:
            self.announced_at = time.monotonic()
            await kv.put(self.presence_key, msgspec.json.encode(time.time()))

    async def too_many(self, kv: KeyValue) -> bool:
        """Whether this process holds more than its share, the servers present counted."""
        if len(self.holdings) <= 1:
            return False
        present, now = 0, time.time()
        watcher = await kv.watch(f"{PRESENT}.*", ignore_deletes=True)
        try:
            async for entry in watcher:
                if entry is None:  # the values there are now have all come
                    break
                with contextlib.suppress(msgspec.DecodeError, TypeError):
                    present += now - msgspec.json.decode(entry.value or b"", type=float) < PRESENT_S
        finally:
            await watcher.stop()  # type: ignore[no-untyped-call]
        return len(self.holdings) > -(-self.count // max(1, present))


class Leased:
    """A service (:class:`~jobstream.host.supervise.Service`) that runs only while this
    process holds the lease ``key``; otherwise it waits as a standby. Ready at once (a
    standby is ready); ``active`` says which it is now."""

    def __init__(
        self,
        kv: KeyValue,
        key: str,
        holder: str,
        make: Callable[[], Service],
        say: Callable[[str], None] = log.info,
        share: Share | None = None,
    ) -> None:
        self.kv, self.key, self.holder, self.make, self.say = kv, key, holder, make, say
        # The leases of this kind this process holds (scheduler partitions): the more it
        # holds, the longer it lets a free one go to another server (Observation.my_turn).
        self.share = share or Share(1, holder)
        self.token: int | None = None  # the revision that acquired the lease, while held
        self.revision = 0  # the revision last written by this holder

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        try:
            ended = False
            while not ended:
                await self._acquire()
                self.say(f"{self.key}: active here (lease token {self.token})")
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._renew, tg.cancel_scope)
                    await self.make().run()  # cancelled when the lease is lost: wait again
                    ended = True  # the service ended by itself: so does the lease
                    tg.cancel_scope.cancel()
        finally:
            await self._release()

    async def _acquire(self) -> None:
        """Wait until this process holds the lease (at once when nobody does, or when it
        holds it already: a restarted service of the same process)."""
        seen, announced = Observation(), False
        while True:
            try:
                held = await self._try_acquire(seen)
            except Exception as exc:  # the server away or electing a leader: look again
                log.debug("%s: lease not reached (%s)", self.key, exc)
                held = None
            if held is True:
                return
            with contextlib.suppress(Exception):  # presence is for balancing only
                await self.share.announce(self.kv)
            if held not in (None, "?") and not announced:
                announced = True
                self.say(f"{self.key}: standby (active: {held})")
            await anyio.sleep(POLL_S)

    async def _try_acquire(self, seen: Observation) -> str | bool:
        """Take the lease if it is this process's, or free or expired and its turn;
        True when taken, else who holds it."""
        entry = await self._current()
        now = time.monotonic()
        holder, last = ("?", None) if entry is None else (entry[0].holder, entry[1])
        if last is not None:
            seen.saw(last, now)
        if holder == self.holder:  # a restarted service of this process
            return await self._write(last) or holder
        if last is not None and not seen.expired(now):
            seen.free_since = None
            return holder
        if not seen.my_turn(now, self._others()):
            return holder
        return await self._write(last) or holder

    def _others(self) -> int:
        return len(self.share.holdings - {self.key})

    async def _current(self) -> tuple[Held, int] | None:
        try:
            entry = await self.kv.get(self.key)
        except KeyNotFoundError:  # never held, or released (deleted)
            return None
        if not entry.value or entry.revision is None:
            return None
        try:
            return msgspec.json.decode(entry.value, type=Held), entry.revision
        except msgspec.DecodeError:
            return Held("?", 0.0), entry.revision  # not ours to read: expires like any

    async def _write(self, last: int | None) -> bool:
        """Write the lease on revision ``last`` (None: create it); False when someone
        else wrote first."""
        value = msgspec.json.encode(Held(self.holder, time.time()))
        try:
            if last is None:
                self.revision = await self.kv.create(self.key, value)
            else:
                self.revision = await self.kv.update(self.key, value, last=last)
        except KeyWrongLastSequenceError:
            return False
        if self.token is None:
            self.token = self.revision
            self.share.holdings.add(self.key)
        return True

    async def _renew(self, work: anyio.CancelScope) -> None:
        """Renew every RENEW_S; stop the work when the lease is lost or cannot be renewed
        in time (:func:`must_stop`)."""
        renewed = balanced = time.monotonic()
        while True:
            await anyio.sleep(RENEW_S)
            if time.monotonic() - balanced >= BALANCE_S:
                balanced = time.monotonic()
                if await self._hand_over_if_too_many():
                    work.cancel()
                    return
            try:
                with anyio.fail_after(max(0.1, TTL_S - RENEW_S - (time.monotonic() - renewed))):
                    kept = await self._write(self.revision)
            except Exception as exc:  # a server away: judged by the clock below
                log.warning("%s: lease not renewed (%s)", self.key, exc)
                kept = True
            else:
                if kept:
                    renewed = time.monotonic()
            if not kept or must_stop(renewed, time.monotonic()):
                self.say(f"{self.key}: lost the lease; stopped here (another server took over)")
                self.token = None
                self.share.holdings.discard(self.key)
                work.cancel()
                return

    async def _hand_over_if_too_many(self) -> bool:
        """Release this lease (the last of this process's, one at a time) when the process
        holds more than its share; True when released."""
        try:
            await self.share.announce(self.kv)
            if self.key != max(self.share.holdings) or not await self.share.too_many(self.kv):
                return False
        except Exception as exc:  # balancing waits for a server that answers
            log.debug("%s: share not known (%s)", self.key, exc)
            return False
        self.say(f"{self.key}: handed over to share the load")
        await self._release()
        return True

    async def _release(self) -> None:
        """Hand the lease over at once (a clean stop), if still held."""
        if self.token is None:
            return
        self.token = None
        self.share.holdings.discard(self.key)
        with anyio.CancelScope(shield=True), anyio.move_on_after(2):
            try:
                await self.kv.delete(self.key, last=self.revision)
            except Exception as exc:  # the standby then waits out TTL_S
                log.debug("%s: lease not released (%s)", self.key, exc)
