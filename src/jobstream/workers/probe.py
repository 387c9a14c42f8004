"""Ask the worker holding a job whether it still holds it, before taking the job over.

JetStream redelivers a dispatch when its lease was not renewed in time: the holder died,
or only a renewal went missing (sent while the server restarted, or forgotten by a
server killed before it wrote it down). Only a dead holder is a reason to run the job
again, so the worker given the redelivery asks the holder first. A live holder answers
(and renews its lease) as soon as it is connected; a dead one never does, and the server
says at once that nobody listens. The asking goes on for a window long enough for a
holder to reconnect after a server restart.
"""

from __future__ import annotations

import anyio
import msgspec
from nats.aio.client import Client
from nats.errors import TimeoutError as NatsTimeout

from jobstream.model import JobNotice
from jobstream.streams.subjects import lease_probe_subject

HELD, FREE = b"held", b"free"  # the holder's answers
ASK_TIMEOUT_S = 1.0
ASK_AGAIN_S = 0.25  # after "nobody listens" or a lost connection
WINDOW_MAX_S = 10.0


def probe_window(lease_s: float) -> float:
    """How long a holder has to answer: half a lease, at most WINDOW_MAX_S."""
    return min(lease_s / 2, WINDOW_MAX_S)


async def holder_answers(nc: Client, window_s: float, holder: str, wf: str, job: int) -> bool:
    """Whether ``holder`` says, within ``window_s``, that it holds the job."""
    request = msgspec.json.encode(JobNotice(wf=wf, job=job))
    deadline = anyio.current_time() + window_s
    while (left := deadline - anyio.current_time()) > 0:
        try:
            reply = await nc.request(
                lease_probe_subject(holder), request, timeout=min(ASK_TIMEOUT_S, left)
            )
        except NatsTimeout:
            continue
        except Exception:  # nobody listens (yet), or the server is away: ask again
            await anyio.sleep(min(ASK_AGAIN_S, left))
            continue
        return reply.data == HELD
    return False
