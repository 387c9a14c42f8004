"""Every read model of the DuckDB projection, in the order they are written."""

from __future__ import annotations

from jobstream.projections.model import ReadModel
from jobstream.projections.tables import attempts, catalog, events, jobs, workers, workflows

READ_MODELS: tuple[ReadModel, ...] = (
    events.MODEL,
    workflows.MODEL,
    catalog.FILES,
    catalog.USER_DATA,
    jobs.MODEL,
    attempts.MODEL,
    workers.MODEL,
)
