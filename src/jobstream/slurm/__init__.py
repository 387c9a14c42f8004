"""Slurm: workers as allocations. The batch script of an allocation, from the workflow's
``slurm_schedulers`` (torc's spec section; ``script``), and the watcher that records when
allocations start and end (``watch``). Submitting them, with credentials of their own,
is ``host.allocations`` (``jobstream slurm schedule-nodes``).

May import: the core, ``spec`` and ``streams``.
"""
