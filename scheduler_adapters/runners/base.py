"""The Runner seam: where an adapter's argv lists are executed.

Deliberately small (AiiDA's transport has ~60 methods; we need a handful). A runner
never interprets scheduler output: it runs argv lists and moves small files.
Every destructive or writing operation is confined to ``scratch_root``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import BinaryIO, Protocol, runtime_checkable

from scheduler_adapters.errors import UnsafePath
from scheduler_adapters.types import CommandResult


@runtime_checkable
class Runner(Protocol):
    scratch_root: PurePosixPath

    def run(
        self,
        argv: Sequence[str],
        *,
        stdin: str | None = None,
        cwd: PurePosixPath | None = None,
        timeout: float = 60,
    ) -> CommandResult: ...

    def write_text(self, path: PurePosixPath, text: str, *, mode: int = 0o644) -> None:
        """Atomic: write a temporary file beside ``path`` and rename it."""

    def write_bytes(
        self, path: PurePosixPath, data: bytes | BinaryIO, *, mode: int = 0o644
    ) -> None:
        """Like ``write_text``, byte for byte; a file object is streamed in chunks from its
        current position (binary inputs can be hundreds of MiB)."""

    def read_text(self, path: PurePosixPath, *, max_bytes: int = 1 << 20) -> str: ...

    def remove_tree(self, path: PurePosixPath) -> None:
        """Refuses anything that is not strictly inside ``scratch_root``."""

    def exists(self, path: PurePosixPath) -> bool: ...

    def close(self) -> None: ...


def check_inside(root: PurePosixPath, path: PurePosixPath) -> PurePosixPath:
    """Lexical containment check; runners add a real-path check on their side."""
    if not path.is_absolute():
        raise UnsafePath(f"path {str(path)!r} is not absolute")
    parts: list[str] = []
    for part in path.parts[1:]:
        if part in ("", "."):
            continue
        if part == "..":
            raise UnsafePath(f"path {str(path)!r} contains '..'")
        parts.append(part)
    norm = PurePosixPath("/", *parts)
    if norm == root or root not in norm.parents:
        raise UnsafePath(f"path {str(norm)!r} is not inside the scratch root {str(root)!r}")
    return norm
