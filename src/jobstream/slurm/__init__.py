"""Slurm: workers as allocations. ``jobstream slurm schedule-nodes`` writes one batch
script per allocation, from the workflow's ``slurm_schedulers`` (torc's spec section),
gives each allocation compute credentials of its own and submits it with ``sbatch``;
the worker inside reads its CPUs, memory and GPUs from the allocation's environment.

May import: the core, ``streams``, ``ops`` and ``host``.
"""
