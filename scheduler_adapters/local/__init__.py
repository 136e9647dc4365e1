"""Local executor: runs job scripts as detached processes on this machine (no scheduler)."""

from scheduler_adapters.local.adapter import LocalAdapter

__all__ = ["LocalAdapter"]
