"""The read side, for people and programs: workflow status and following it
(``status``), SQL now or in the past (``sql``), the audit fold of the log (``audit``),
event histories (``history``) and the live workers (``workers``). Nothing here writes.

May import: the core, ``streams``, ``archive`` and ``projections``.
"""
