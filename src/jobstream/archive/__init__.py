"""Archived workflows: a finished workflow's events moved from EVENTS to Parquet.

A workflow finished longer ago than the ``retention_s`` setting is archived by the active
projector: its events are written to one Parquet object in the object store ARCHIVE, a
``WorkflowArchived`` event naming it is appended, and then its events up to the last
archived one are purged from EVENTS. The announcement stays in the log, so every
reader of the whole history (rebuild, ``--as-of``, ``events``, a projector catching up)
finds the archives there and reads their events in stream order with the log's.

May import: the core and ``streams``.
"""
