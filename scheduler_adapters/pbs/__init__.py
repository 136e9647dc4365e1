"""PBS Pro / OpenPBS and Torque adapter.

``commands`` builds argv lists; ``values``, ``qstat``, ``qsub``, ``pbsnodes``, ``states`` and
``records`` turn output into records (all pure);
``adapter.PbsAdapter`` runs them through a Runner. Flavors and the Debian
``slurm-wlm-torque`` wrapper mode are described in ``docs/pbs.md``.
"""

from __future__ import annotations

__all__ = ["PbsAdapter"]


def __getattr__(name: str) -> object:
    # Lazy: the pure modules must import without Jinja2 (agent-side parsing tests).
    if name == "PbsAdapter":
        from scheduler_adapters.pbs.adapter import PbsAdapter

        return PbsAdapter
    raise AttributeError(name)
