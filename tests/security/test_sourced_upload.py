"""Issue 15 item 11: no job sources a file the user can write.

Exploit: sweep (and generic) jobs ran ``[ -f hpcgate-params.env ] && . ./hpcgate-params.env``
in the run directory, and ``hpcgate-params.env`` was a file name a user could upload (or a
parent step could leave behind for an inheriting child), so its content ran as shell code
inside any job, a SIESTA sweep included. Now:

* input names starting with ``hpcgate-`` are reserved: 422, nothing written;
* the parameters are rendered into the job script (``case $HPCGATE_TASK_INDEX``), so the
  preview shows no sourced file;
* on the real local executor (a real ``hpcgate worker``), a chain whose first step plants
  ``hpcgate-params.env`` for its child runs to completion with the right parameters, and
  the planted file is never executed.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.security.conftest import SecurityStack, tree_snapshot

pytestmark = pytest.mark.integration

TABLES = ("calculations", "steps", "step_edges", "array_tasks")
PAYLOAD = "touch /tmp/hpcgate-pwned-by-upload\n"


def _sweep(s: SecurityStack, inputs: dict[str, str], code: str = "generic") -> dict[str, Any]:
    config: dict[str, Any] = {
        "kind": "sweep",
        "variants": [{"label": f"x{i}", "parameters": {"x": i}} for i in range(3)],
        "inputs": inputs,
    }
    if code == "generic":
        config["command"] = ["bash", "-c", 'echo "x=$HPCGATE_PARAM_X" > out.txt']
    return s.calculation_body(code=code, configuration=config)


@pytest.mark.parametrize(
    "name", ["hpcgate-params.env", "hpcgate-params.json", "HPCGATE-params.env", "hpcgate-x"]
)
def test_reserved_input_names_are_refused(security_stack: SecurityStack, name: str) -> None:
    s = security_stack
    before, files = s.snapshot(*TABLES), tree_snapshot(s.scratch)
    with s.api("user") as api:
        for path in ("/calculations", "/calculations/preview"):
            r = api.post(path, json=_sweep(s, {name: PAYLOAD, "in.txt": "1\n"}))
            assert r.status_code == 422, (path, r.text)
            assert "reserved" in r.json()["detail"]
            assert name in r.json()["detail"]
    assert s.snapshot(*TABLES) == before
    assert tree_snapshot(s.scratch) == files


def test_preview_scripts_source_nothing(security_stack: SecurityStack) -> None:
    s = security_stack
    with s.api("user") as api:
        r = api.post("/calculations/preview", json=_sweep(s, {"in.txt": "1\n"}))
    assert r.status_code == 200, r.text
    (step,) = r.json()["steps"]
    script = step["script"]
    assert "hpcgate-params.env" not in script
    assert "hpcgate-params.env" not in " ".join(step["files"])
    assert not any(line.strip().startswith((". ", "source ")) for line in script.splitlines()), (
        script
    )
    for i in range(3):
        assert f"  {i})\n    export HPCGATE_PARAM_X={i}\n" in script


def _wait_final(s: SecurityStack, calc_id: int, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    state = ""
    with s.api("user") as api:
        while time.monotonic() < deadline:
            state = api.get(f"/calculations/{calc_id}").json()["state"]
            if state in ("completed", "failed", "cancelled"):
                return state
            time.sleep(0.5)
    raise AssertionError(f"calculation {calc_id} still {state} after {timeout} s")


def test_a_planted_params_file_is_never_sourced(
    security_stack: SecurityStack, security_worker: Any
) -> None:
    """A parent step writes ``hpcgate-params.env`` and the child inherits it: not run."""
    s = security_stack
    plant = "echo sourced > sourced.txt"
    body = s.calculation_body(
        configuration={
            "kind": "chain",
            "variants": [{"label": f"s{i}", "parameters": {"x": i}} for i in range(2)],
            "inherit": ["hpcgate-params.env"],
            "command": [
                "bash",
                "-c",
                f'echo "x=$HPCGATE_PARAM_X" > out.txt; echo {plant!r} > hpcgate-params.env',
            ],
        }
    )
    with s.api("user") as api:
        r = api.post("/calculations", json=body)
    assert r.status_code == 201, r.text
    calc_id = r.json()["id"]
    state = _wait_final(s, calc_id)
    log = s.extra.get("worker_log")
    assert state == "completed", Path(log).read_text(errors="replace") if log else state
    with s.api("user") as api:
        steps = api.get(f"/calculations/{calc_id}").json()["steps"]
    child = Path(sorted(steps, key=lambda x: x["index"])[-1]["workdir"])
    assert (child / "hpcgate-params.env").read_text().strip() == plant  # it was planted
    assert (child / "out.txt").read_text().strip() == "x=1"  # parameters still arrive
    assert not (child / "sourced.txt").exists()  # and the planted file never ran
