"""Raw outputs on a local-access cluster, through the live API and a real worker: a running
job's stdout followed live (SSE), its directory listed, a file downloaded, hostile paths and
symlinks refused, the size cap, and the read rule (shared across the lab)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import httpx
import pytest
import yaml

from hpcgate.client import ApiError, Client, CredentialStore
from tests.helpers.api import auth_headers, new_user
from tests.integration.client.conftest import Live

pytestmark = pytest.mark.integration


def _client(live: Live) -> Client:
    return Client(live.base, store=CredentialStore(live.home / "hpcgate" / "credentials.json"))


def _wait_step(hg: Client, calc_id: int, states: set[str], timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        step = hg.calculation(calc_id).steps[0]
        if step.state in states:
            return str(step.workdir)
        time.sleep(0.2)
    raise AssertionError(f"step of {calc_id} never reached {states}")


def _submit_ticker(hg: Client, tmp_path: Path) -> tuple[int, Path]:
    """A job printing a line every 0.2 s (one with terminal escapes) until ``flag`` exists."""
    flag = tmp_path / "go"
    script = (
        "i=0; printf 'esc \\033[31mred\\033[0m bell\\a\\n'; "
        f"while [ ! -e {flag} ]; do echo tick $i; i=$((i+1)); sleep 0.2; done; "
        "head -c 300000 /dev/urandom > data.bin; echo finished"
    )
    folder = tmp_path / "ticker"
    folder.mkdir()
    (folder / "hpcgate.yaml").write_text(
        yaml.safe_dump({"code": "generic", "command": ["bash", "-c", script]})
    )
    calc = hg.submit(folder)
    return calc.id, flag


def test_a_running_jobs_stdout_is_followed_then_its_files_listed_and_downloaded(
    live: Live, tmp_path: Path
) -> None:
    hg = _client(live)
    calc_id, flag = _submit_ticker(hg, tmp_path)
    _wait_step(hg, calc_id, {"running"})
    seen: list[str] = []

    def follow() -> None:
        for line in hg.follow_output(calc_id, 0, max_duration_s=60):
            seen.append(line)
            if line == "tick 3":
                flag.touch()

    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    reader.join(60)
    assert not reader.is_alive(), "the tail did not end with the step"
    assert "esc red bell" in seen  # escapes and control characters stripped
    assert seen.index("tick 0") < seen.index("tick 3") < seen.index("finished")

    hg.wait(calc_id, poll_s=0.3, timeout_s=60)
    listing = hg.list_outputs(calc_id, 0)
    by_name = {e.name: e for e in listing.entries}
    assert by_name["data.bin"].size == 300000
    assert by_name["data.bin"].kind == "file"
    assert listing.stdout in by_name
    workdir = Path(str(hg.calculation(calc_id).steps[0].workdir))
    data = hg.download_output(calc_id, 0, "data.bin")
    assert data == (workdir / "data.bin").read_bytes()
    written = hg.download_output(calc_id, 0, "data.bin", tmp_path)
    assert Path(written).read_bytes() == data


def test_hostile_paths_symlinks_and_the_size_cap(live: Live, tmp_path: Path) -> None:
    hg = _client(live)
    calc_id, flag = _submit_ticker(hg, tmp_path)
    flag.touch()
    hg.wait(calc_id, poll_s=0.3, timeout_s=60)
    workdir = Path(str(hg.calculation(calc_id).steps[0].workdir))
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the portal")
    os.symlink(secret, workdir / "innocent.txt")
    os.symlink(tmp_path, workdir / "up")
    token = hg.auth.headers(True)
    base = f"{live.base}/calculations/{calc_id}/steps/0"
    for raw in ("%2E%2E/%2E%2E/secret.txt", "innocent.txt", "up/secret.txt", "%2Fetc%2Fpasswd"):
        r = httpx.get(f"{base}/outputs/{raw}", headers=token)
        assert r.status_code == 422, (raw, r.status_code, r.text)
        assert "not for the portal" not in r.text
    r = httpx.get(f"{base}/outputs", params={"path": "../.."}, headers=token)
    assert r.status_code == 422
    assert "'..'" in r.json()["detail"]
    assert httpx.get(f"{base}/outputs/missing.txt", headers=token).status_code == 404
    r = httpx.get(f"{base}/tail", params={"file": "up/secret.txt"}, headers=token)
    assert r.status_code == 422

    (workdir / "big.bin").write_bytes(b"\0" * (2 << 20))
    cap = live.settings.outputs.max_download_mb
    live.settings.outputs.max_download_mb = 1
    try:
        with pytest.raises(ApiError) as err:
            hg.download_output(calc_id, 0, "big.bin")
        assert err.value.status_code == 413
        assert "max_download_mb" in err.value.message
    finally:
        live.settings.outputs.max_download_mb = cap


def test_reading_outputs_is_shared_across_the_lab_but_needs_a_login(
    live: Live, tmp_path: Path
) -> None:
    hg = _client(live)
    calc_id, flag = _submit_ticker(hg, tmp_path)
    flag.touch()
    hg.wait(calc_id, poll_s=0.3, timeout_s=60)
    colleague = new_user(live.engine)
    url = f"{live.base}/calculations/{calc_id}/steps/0/outputs"
    r = httpx.get(url, headers=auth_headers(colleague, live.settings))
    assert r.status_code == 200
    assert any(e["name"] == "data.bin" for e in r.json()["entries"])
    assert httpx.get(url).status_code == 401
    assert httpx.get(url + "/data.bin").status_code == 401
    r = httpx.get(
        f"{live.base}/calculations/{calc_id}/steps/7/outputs", headers=hg.auth.headers(True)
    )
    assert r.status_code == 404


def test_hpcgate_download_lists_and_fetches_raw_outputs(live: Live, tmp_path: Path) -> None:
    hg = _client(live)
    calc_id, flag = _submit_ticker(hg, tmp_path)
    flag.touch()
    hg.wait(calc_id, poll_s=0.3, timeout_s=60)
    res = live.cli("download", str(calc_id), "--list")
    assert res.exit_code == 0, res.output
    assert any(ln.split()[-1] == "data.bin" and "300000" in ln for ln in res.stdout.splitlines())
    out = tmp_path / "out"
    out.mkdir()
    res = live.cli("download", str(calc_id), "data.bin", "-o", str(out))
    assert res.exit_code == 0, res.output
    assert res.stdout.strip() == str(out / "data.bin")
    assert (out / "data.bin").stat().st_size == 300000
    res = live.cli("download", str(calc_id), "data.bin", "-o", str(out))
    assert res.exit_code == 2
    assert "exists" in res.stderr
    res = live.cli("download", str(calc_id), "../../etc/passwd", "-o", str(out))
    assert res.exit_code == 2
    assert "(HTTP 422)" in res.stderr


def test_a_tail_counts_against_the_log_stream_limit(live: Live, tmp_path: Path) -> None:
    hg = _client(live)
    calc_id, flag = _submit_ticker(hg, tmp_path)
    _wait_step(hg, calc_id, {"running"})
    limit = live.settings.log_stream.max_per_user
    live.settings.log_stream.max_per_user = 1
    url = f"{live.base}/calculations/{calc_id}/steps/0/tail"
    try:
        with httpx.stream("GET", url, headers=hg.auth.headers(True), timeout=30) as first:
            assert first.status_code == 200
            assert first.headers["content-type"].startswith("text/event-stream")
            second = httpx.get(url, headers=hg.auth.headers(True), timeout=30)
            assert second.status_code == 429
            assert "log streams" in second.json()["detail"]
    finally:
        live.settings.log_stream.max_per_user = limit
        flag.touch()
    hg.wait(calc_id, poll_s=0.3, timeout_s=60)
