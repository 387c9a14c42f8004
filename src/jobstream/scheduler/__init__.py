"""The scheduler: a pure fold of the log into intents (``state``), turned into events
through the job repository and WORK messages (``dispatch``) by a thin service.

May import: the core and ``streams``.
"""
