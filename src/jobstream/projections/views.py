"""Ready-made SQL views over the read models: the questions users ask most."""

from __future__ import annotations

from jobstream.projections import counts

VIEWS: dict[str, str] = {
    # Jobs per state, per workflow (kept by the projector, so not a count over all jobs).
    "state_counts": f"""
        SELECT wf, state, jobs FROM {counts.TABLE} WHERE jobs > 0 ORDER BY wf, state
    """,
    # Jobs that failed or timed out, with their last attempt's return code and stderr tail.
    "failed_jobs": """
        SELECT j.wf, j.job, j.name, j.state, j.attempt, a.return_code, a.worker, a.host,
               a.stderr_tail, a.stderr, a.ended_at
        FROM jobs j LEFT JOIN attempts a
          ON a.wf = j.wf AND a.job = j.job AND a.attempt = j.attempt
        WHERE j.state IN ('failed', 'timed_out')
        ORDER BY j.wf, j.job
    """,
    # Run-time distribution of completed attempts per hardware class.
    "runtime_percentiles": """
        SELECT j.hardware_class, count(*) AS attempts,
               quantile_cont(a.exec_time_s, 0.5) AS p50_s,
               quantile_cont(a.exec_time_s, 0.9) AS p90_s,
               quantile_cont(a.exec_time_s, 0.99) AS p99_s,
               max(a.exec_time_s) AS max_s
        FROM attempts a JOIN jobs j ON a.wf = j.wf AND a.job = j.job
        WHERE a.outcome = 'completed'
        GROUP BY ALL ORDER BY j.hardware_class
    """,
    # Per worker and minute: the share of its CPUs that running jobs held.
    "worker_utilization": """
        WITH minutes AS (
            SELECT w.worker, w.num_cpus,
                   unnest(generate_series(
                       date_trunc('minute', w.started_at),
                       coalesce(w.stopped_at, (SELECT max(ended_at) FROM attempts),
                                w.started_at),
                       INTERVAL 1 MINUTE)) AS minute
            FROM workers w
        )
        SELECT m.worker, m.minute,
               coalesce(sum(j.num_cpus * greatest(0, epoch(
                   least(a.ended_at, m.minute + INTERVAL 1 MINUTE)
                   - greatest(a.started_at, m.minute)))), 0)
                 / (60.0 * greatest(m.num_cpus, 1)) AS cpu_utilization,
               count(a.job) AS attempts
        FROM minutes m
        LEFT JOIN attempts a ON a.worker = m.worker
             AND a.started_at < m.minute + INTERVAL 1 MINUTE
             AND coalesce(a.ended_at, a.started_at) >= m.minute
        LEFT JOIN jobs j ON j.wf = a.wf AND j.job = a.job
        GROUP BY m.worker, m.minute, m.num_cpus ORDER BY m.worker, m.minute
    """,
    # Slurm allocations: what each was for, how it went, and the work done inside it.
    "slurm_allocations": """
        SELECT a.allocation, a.slurm_job_id, a.wf, a.scheduler, a.state, a.nodes,
               a.nodes_list, a.walltime_s, a.submitted_at, a.started_at, a.ended_at,
               count(DISTINCT w.worker) AS workers, count(t.job) AS attempts
        FROM allocations a
        LEFT JOIN workers w ON w.slurm_job_id = a.slurm_job_id
        LEFT JOIN attempts t ON t.worker = w.worker
        GROUP BY ALL ORDER BY a.submitted_at, a.allocation
    """,
}


def view_ddl() -> list[str]:
    return [f"CREATE OR REPLACE VIEW {name} AS {sql.strip()}" for name, sql in VIEWS.items()]
