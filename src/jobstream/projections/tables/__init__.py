"""Every read model of the DuckDB projection, in the order they are written.

One module per table, each defining a :class:`~jobstream.projections.model.ReadModel`:
its columns, its key and its fold (SQL over one staged batch of events). A new table is
a new module here and a line in ``READ_MODELS``.
"""

from __future__ import annotations

from jobstream.projections.model import ReadModel
from jobstream.projections.tables import (
    allocations,
    archives,
    attempts,
    catalog,
    events,
    jobs,
    workers,
    workflows,
)

READ_MODELS: tuple[ReadModel, ...] = (
    events.MODEL,
    workflows.MODEL,
    catalog.FILES,
    catalog.USER_DATA,
    jobs.MODEL,
    attempts.MODEL,
    workers.MODEL,
    archives.MODEL,
    allocations.MODEL,
)
