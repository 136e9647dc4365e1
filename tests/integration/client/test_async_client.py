"""``AsyncClient`` against the live API and the real worker: the same calls as ``Client``,
from asyncio code (a Jupyter cell awaits them the same way)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpcgate.client import ApiError, AsyncClient, CredentialStore, NotLoggedIn, Submission
from tests.helpers.aio import run_coroutine
from tests.integration.client.conftest import Live

pytestmark = pytest.mark.integration


def test_async_client_submits_waits_and_reads_back(live: Live, tmp_path: Path) -> None:
    store = CredentialStore(tmp_path / "credentials.json")

    async def scenario() -> None:
        async with AsyncClient(live.base, store=store) as hg:
            with pytest.raises(NotLoggedIn):
                await hg.me()
            with pytest.raises(ApiError) as refused:
                await hg.login(live.email, "wrong password")
            assert refused.value.status_code == 401
            assert refused.value.message == "invalid e-mail or password"
            token = await hg.login(live.email, live.password)
            assert token.user.email == live.email
            sub = Submission(
                name="async sweep",
                configuration={
                    "kind": "sweep",
                    "variants": [{"label": f"x={x}", "parameters": {"x": x}} for x in (1, 2, 3)],
                    "command": ["bash", "-c", 'echo "$((HPCGATE_PARAM_X * 10))" > out.txt'],
                    "inputs": {"note.txt": "hi"},
                },
                binary={"raw.bin": b"\x00\x01\x02"},
            )
            calc = await hg.submit(sub)
            seen: list[str] = []
            done = await hg.wait(calc.id, poll_s=0.3, on_update=lambda c: seen.append(c.state))
            assert done.state == "completed"
            assert seen[-1] == "completed"
            assert await hg.input_text(calc.id, "note.txt") == "hi"
            assert set(done.configuration["binary_inputs"]) == {"raw.bin"}
            page = await hg.calculations(query="async sweep")
            assert [c.id for c in page.items] == [calc.id]
            workdir = Path(done.steps[0].workdir or "")
            assert sorted(p.read_text().strip() for p in workdir.rglob("out.txt")) == [
                "10", "20", "30"
            ]  # fmt: skip
            again = await hg.clone(calc.id, {"name": "async again"})
            assert again.name == "async again"
            cancelled = await hg.cancel(again.id)
            assert cancelled.state == "cancelled"
            with pytest.raises(ApiError) as missing:
                await hg.calculation(10**9)
            assert missing.value.status_code == 404

    run_coroutine(scenario())
    assert store.get(live.base) is not None
