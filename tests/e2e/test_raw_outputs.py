"""Raw outputs in the portal: the live tail of a real running job (a generic step printing
lines with sleeps, run by the worker's local executor) appears line by line while it runs,
ends with the step, and an output file downloads from the step's directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Stack, login, page_errors, shot

pytestmark = pytest.mark.e2e

CONTENT = "result of the e2e run\n"


def test_live_tail_and_output_download(page: Any, stack: Stack, tmp_path: Path) -> None:
    script = (
        f"printf '{CONTENT.strip()}\\n' > result.txt; "
        "for i in $(seq 1 30); do echo tail-line $i; sleep 0.4; done"
    )
    with stack.api("user") as api:
        r = api.post(
            "/calculations",
            json={
                "name": "e2e live tail",
                "cluster_id": stack.clusters["local-e2e"],
                "logical_queue": "default",
                "code": "generic",
                "configuration": {"kind": "single", "command": ["bash", "-c", script]},
            },
        )
    assert r.status_code == 201, r.text
    calc_id = r.json()["id"]
    login(page, stack, "user", f"/calculations/{calc_id}")

    # Lines arrive while the job runs (the step is still running when line 3 shows).
    lines = page.locator("[data-testid=live-tail-lines]")
    page.wait_for_selector("[data-testid=live-tail-lines]:has-text('tail-line 3')", timeout=60_000)
    with stack.api("user") as api:
        steps = api.get(f"/calculations/{calc_id}").json()["steps"]
    assert steps[0]["state"] == "running"
    shot(page, "30-live-tail")
    page.wait_for_selector(
        "[data-testid=live-tail-status]:has-text('step ended')", timeout=60_000
    )
    text = lines.inner_text()
    numbers = [int(ln.split()[-1]) for ln in text.splitlines() if ln.startswith("tail-line")]
    assert numbers == list(range(numbers[0], 31))  # in order, none lost, to the last one

    # The outputs panel lists the step's files; one downloads with its content.
    page.click("[data-testid=outputs-panel] button:has-text('Refresh')")
    page.wait_for_selector("[data-testid=output-row-result\\.txt]")
    with page.expect_download() as info:
        page.click("[data-testid=output-download-result\\.txt]")
    download = info.value
    assert download.suggested_filename == "result.txt"
    saved = tmp_path / "result.txt"
    download.save_as(str(saved))
    assert saved.read_text() == CONTENT
    shot(page, "31-outputs-panel")
    assert page_errors(page) == []
