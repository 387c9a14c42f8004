"""What users do to workflows: submit, cancel, restart, explain, rebuild the read
models, check a spec, find a job by name. Each operation is one async function over a
connection; the CLI and ``jobstream.Client`` call the same ones.

May import: the core, ``spec``, ``streams``, ``archive``, ``projections`` and ``views``.
"""
