"""A read model is a table plus a fold written as SQL over one batch of events.

Every batch is staged once as ``batch(seq, subject, version, payload, e)`` where ``e`` is
the event's JSON parsed into one struct (:data:`EVENT_STRUCT`: the fields of the job
events, which are nearly all of the log; fields an event does not have are NULL). Folds of
rare events parse their own fields too, from only those events (:func:`own_fields`).
A model's ``fold`` is a SELECT over ``batch`` producing at most one row
per key: the batch's *delta* for that key (NULL = unchanged), which the runner merges
into the table with COALESCE. Append models have no key. The folds run inside DuckDB,
vectorized, so projecting costs no Python per event. Adding a read model is one small
module in ``jobstream.projections.tables`` that defines a :class:`ReadModel`.
"""

from __future__ import annotations

import json
import typing
from dataclasses import dataclass

import msgspec

from jobstream.decide import STATE_BY_EVENT
from jobstream.events import AnyEvent

RESOURCE_FIELDS = {
    "num_cpus": "INTEGER",
    "memory_mib": "BIGINT",
    "num_gpus": "INTEGER",
    "num_nodes": "INTEGER",
    "runtime_s": "BIGINT",
}
# The fields that the folds of job events read. Every event is parsed into this struct, so
# it holds nothing else: every field in it is materialized for every event of a batch.
EVENT_STRUCT: dict[str, object] = {
    "type": "VARCHAR", "wf": "VARCHAR", "job": "INTEGER", "at": "DOUBLE", "actor": "VARCHAR",
    "worker": "VARCHAR", "attempt": "INTEGER", "lease_s": "DOUBLE", "pid": "INTEGER",
    "host": "VARCHAR", "gpu_ids": ["INTEGER"], "return_code": "INTEGER",
    "exec_time_s": "DOUBLE", "peak_memory_mib": "DOUBLE", "cpu_time_s": "DOUBLE",
    "stdout": "VARCHAR", "stderr": "VARCHAR", "stderr_tail": "VARCHAR", "reason": "VARCHAR",
    "spec": {
        "name": "VARCHAR", "command": "VARCHAR", "pool": "VARCHAR", "priority": "INTEGER",
        "depends_on": ["INTEGER"], "resources": RESOURCE_FIELDS,
    },
}  # fmt: skip
EVENT_STRUCT_JSON = json.dumps(EVENT_STRUCT)


def well_formed() -> str:
    """SQL that is true for an event of a known type with every required field of it that
    :data:`EVENT_STRUCT` holds, parsed (a field of the wrong type parses as NULL).

    The scheduler's decoder skips any other event; folding one would break a key
    constraint or count what the scheduler never saw. Types that require the same
    fields share one branch: binding the expression is most of its cost.
    """
    kinds_by_fields: dict[tuple[str, ...], list[str]] = {}
    for kind in typing.get_args(AnyEvent):
        required = tuple(
            field.encode_name
            for field in msgspec.structs.fields(kind)
            if field.required and field.encode_name in EVENT_STRUCT
        )
        kinds_by_fields.setdefault(required, []).append(str(kind.__struct_config__.tag))
    everyone = set.intersection(*(set(required) for required in kinds_by_fields))
    whens = " ".join(
        f"WHEN e.type IN ({types(*kinds)}) THEN {_present(set(required) - everyone)}"
        for required, kinds in kinds_by_fields.items()
    )
    return f"{_present(everyone)} AND CASE {whens} ELSE false END"


def _present(fields: set[str]) -> str:
    return " AND ".join(f"e.{name} IS NOT NULL" for name in sorted(fields)) or "true"


def own_fields(fields: dict[str, object], *kinds: str) -> str:
    """The batch's events of these types, with ``fields`` parsed from them as ``f``."""
    return (
        f"(SELECT seq, e, json_transform(payload, '{json.dumps(fields)}') AS f "
        f"FROM batch WHERE e.type IN ({types(*kinds)}))"
    )


def ts(field: str = "e.at") -> str:
    """A TIMESTAMP (UTC, microseconds) from unix seconds."""
    return f"make_timestamp(CAST({field} * 1000000 AS BIGINT))"


def state_case(event_type: str = "e.type") -> str:
    """SQL for the state a job is in after an event of this type (from decide's table)."""
    whens = " ".join(f"WHEN '{kind}' THEN '{state}'" for kind, state in STATE_BY_EVENT.items())
    return f"CASE {event_type} {whens} END"


def types(*names: str) -> str:
    return ", ".join(f"'{n}'" for n in names)


def latest(expr: str, *kinds: str) -> str:
    """The value from the batch's last event of these types (NULL if none)."""
    return f"arg_max({expr}, seq) FILTER (WHERE e.type IN ({types(*kinds)}))"


ENDINGS = ("JobCompleted", "JobFailed", "JobTimedOut", "JobRetryScheduled", "JobTerminated")


@dataclass(frozen=True)
class ReadModel:
    """One DuckDB table: columns ``name -> SQL type``, key columns, and its SQL fold."""

    name: str
    columns: dict[str, str]
    key: tuple[str, ...]
    fold: str
    reads: frozenset[str] = frozenset()  # event types the fold uses; empty = all

    def ddl(self) -> str:
        cols = [f'"{name}" {sql}' for name, sql in self.columns.items()]
        if self.key:
            cols.append(f"PRIMARY KEY ({_names(self.key)})")
        return f"CREATE TABLE IF NOT EXISTS {self.name} ({', '.join(cols)})"

    def insert_sql(self) -> str:
        """INSERT the fold's rows; upserts merge non-null values into the existing row."""
        sql = f"INSERT INTO {self.name} ({_names(tuple(self.columns))}) {self.fold}"
        if not self.key:
            return sql
        updates = ", ".join(
            f'"{c}" = COALESCE(EXCLUDED."{c}", {self.name}."{c}")'
            for c in self.columns
            if c not in self.key
        )
        return f"{sql} ON CONFLICT ({_names(self.key)}) DO UPDATE SET {updates}"


def _names(columns: tuple[str, ...]) -> str:
    return ", ".join(f'"{c}"' for c in columns)
