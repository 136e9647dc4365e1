"""Slurm adapter: pure argv builders (``commands``), pure parsers (``parse``), ``SlurmAdapter``."""

from scheduler_adapters.slurm.adapter import SlurmAdapter

__all__ = ["SlurmAdapter"]
