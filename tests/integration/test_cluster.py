"""On a 3-node cluster with replicas 3, the log, the work queue, the buckets and the
object store keep three copies, and appends and reads go on when the node leading the
log is killed -9 (the others elect a new leader)."""

from __future__ import annotations

import anyio

from jobstream.events import JobSubmitted, WorkflowSubmitted
from jobstream.host.cluster import LocalCluster
from jobstream.model import JobDef
from jobstream.streams.connection import open_connection, patiently
from jobstream.streams.subjects import EVENTS_STREAM, WORK_STREAM, job_subjects


async def test_a_cluster_keeps_three_copies_and_survives_its_leader(
    nats_cluster: LocalCluster,
) -> None:
    async with open_connection(nats_cluster.dial_url, "test", upgrade=print, replicas=3) as conn:
        for stream in (EVENTS_STREAM, WORK_STREAM, "OBJ_LOGS", "KV_JOBS", "KV_WORKERS"):
            info = await conn.js.stream_info(stream)
            assert info.config.num_replicas == 3, stream
            assert info.cluster is not None and len(info.cluster.replicas or []) == 2, stream
        submitted = WorkflowSubmitted(
            wf="w", at=1.0, actor="user:t", name="w", user="t", spec_digest="-", job_count=1
        )
        await conn.store.append(submitted, None)
        leader = (await conn.js.stream_info(EVENTS_STREAM)).cluster
        assert leader is not None and leader.leader is not None
        nats_cluster.kill(leader.leader)
        job = JobSubmitted(
            wf="w", job=0, at=2.0, actor="user:t", spec=JobDef(index=0, name="a", command="true")
        )
        with anyio.fail_after(30):  # an election, then the append is taken
            await patiently(conn, "a leader was elected", lambda: conn.store.append(job, None))
            found = await conn.store.last(job_subjects("w", 0))
        assert found is not None
        after = (await conn.js.stream_info(EVENTS_STREAM)).cluster
        assert after is not None and after.leader not in (None, leader.leader)
