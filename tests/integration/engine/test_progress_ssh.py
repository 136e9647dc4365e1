"""The output probe over the real SSH runner (loopback sshd, user hpctest): one remote
command per probe for every step, the same counts as on the local runner (issue 17)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import Any

import pytest

from hpcgate.engine.progress import ProbeTarget, ProgressTracker, count_markers
from tests.helpers.ssh_env import make_ssh_runner, require_ssh_env

pytestmark = [pytest.mark.integration]

SCF = "   scf:    1   -2345.67\n   scf:    2   -2345.70\n"


def test_one_remote_command_probes_every_step() -> None:
    env = require_ssh_env()
    root = PurePosixPath(env.scratch) / f"probe-{uuid.uuid4().hex[:8]}"
    runner = make_ssh_runner(env, str(env.scratch))
    calls: list[Sequence[str]] = []
    plain_run = runner.run

    def counted(argv: Sequence[str], **kw: Any) -> Any:
        calls.append(list(argv))
        return plain_run(argv, **kw)

    runner.run = counted  # type: ignore[method-assign]
    try:
        for i in range(3):
            runner.write_text(root / f"s{i}" / "output.out", SCF * (i + 1))
        tracker = ProgressTracker()
        targets = [ProbeTarget(i + 1, str(root / f"s{i}")) for i in range(3)]
        first = tracker.probe(runner, targets)
        assert len(calls) == 1
        for i in range(3):
            text = (SCF * (i + 1)).encode()
            assert (first[i + 1].output_bytes, first[i + 1].markers) == (
                len(text), count_markers(text)
            )
        runner.write_text(root / "s0" / "output.out", SCF * 3)  # grew by two SCF lines
        second = tracker.probe(runner, targets)
        assert len(calls) == 2
        assert second[1].markers == 6
        assert second[2] == first[2]
    finally:
        runner.run = plain_run  # type: ignore[method-assign]
        runner.remove_tree(root)
        runner.close()
