"""The submitter service: what a person with a submitter identity may do (submit, cancel,
read events, status and SQL), done for them by the server on their own workflows only;
submitters reach no JetStream themselves (docs/security.md). ``service`` answers,
``client`` asks, ``protocol`` is what passes between them.

May import: the core, ``streams``, ``archive``, ``projections``, ``views`` and ``ops``.
"""
