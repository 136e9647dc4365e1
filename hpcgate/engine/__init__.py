"""The calculation engine's cluster-side half, shared by the worker (SSH/local) and the agent.

Nothing here touches the database: the worker and the agent each provide a ``StepStore``
(DB transactions vs. HTTP reports) and the same algorithms run against it. That is what
keeps agent mode and SSH mode behaving identically.
"""
