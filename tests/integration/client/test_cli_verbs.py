"""Every client verb of ``hpcgate`` against the live API (uvicorn on loopback, real PostgreSQL)
and a real ``hpcgate worker`` running the jobs on the local executor.

What it proves: ``login`` stores a private token and the CLI renews it (expired, or refused
by the server) with the rotating refresh cookie; ``submit`` sends a directory's text files as
inputs and its binary files as uploaded blobs, the job sees both; a YAML spec becomes a sweep
whose tasks all run; ``status`` shows tables and ``--watch`` follows to the end (exit 0 when
completed, 1 when not); ``logs`` prints a calculation's lines and ``--follow`` prints a line
written while it follows; ``cancel`` stops a running job; ``clone --set`` re-runs with the
change; every failure is one line and a non-zero exit.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from hpcgate.client import Client, CredentialStore
from tests.integration.client.conftest import Live, one_line_error

pytestmark = pytest.mark.integration


def _write(folder: Path, files: dict[str, str | bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        if isinstance(content, bytes):
            (folder / name).write_bytes(content)
        else:
            (folder / name).write_text(content)
    return folder


def _client(live: Live, home: Path | None = None) -> Client:
    return Client(live.base, store=CredentialStore(
        (home or live.home) / "hpcgate" / "credentials.json"))  # fmt: skip


def _calc_id(stdout: str) -> int:
    first = stdout.strip().splitlines()[0]
    assert first.isdigit(), stdout
    return int(first)


def _login(live: Live, home: Path) -> None:
    res = live.cli("login", "--email", live.email, "--password-stdin", home=home,
                   stdin=live.password)  # fmt: skip
    assert res.exit_code == 0, res.output


# ------------------------------------------------------------------ login


def test_login_stores_a_private_token_and_renews_it(live: Live, tmp_path: Path) -> None:
    home = tmp_path / "home"
    wrong = live.cli("login", "--email", live.email, "--password-stdin", home=home,
                     stdin="not the password")  # fmt: skip
    assert one_line_error(wrong, "invalid e-mail or password").endswith("(HTTP 401)")
    assert wrong.exit_code == 2
    assert not (home / "hpcgate" / "credentials.json").exists()

    _login(live, home)
    path = home / "hpcgate" / "credentials.json"
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    stored = json.loads(path.read_text())
    assert stored["current"] == live.base
    first = stored["servers"][live.base]
    assert first["email"] == live.email
    assert first["access_token"]
    assert first["refresh_token"]

    # --refresh: a new access token and a rotated refresh cookie
    res = live.cli("login", "--refresh", home=home)
    assert res.exit_code == 0, res.output
    second = json.loads(path.read_text())["servers"][live.base]
    assert second["access_token"] != first["access_token"]
    assert second["refresh_token"] != first["refresh_token"]

    # an expired access token is renewed before the call
    second["expires_at"] = 0
    path.write_text(json.dumps({"current": live.base, "servers": {live.base: second}}))
    os.chmod(path, 0o644)  # loosened by hand: the client tightens it again
    res = live.cli("status", home=home)
    assert res.exit_code == 0, res.output
    third = json.loads(path.read_text())["servers"][live.base]
    assert third["access_token"] != second["access_token"]
    assert path.stat().st_mode & 0o777 == 0o600

    # a token the server refuses (401) is renewed once and the call repeated
    third["access_token"] = "not-a-jwt"
    third["expires_at"] = time.time() + 3600
    path.write_text(json.dumps({"current": live.base, "servers": {live.base: third}}))
    res = live.cli("status", home=home)
    assert res.exit_code == 0, res.output
    fourth = json.loads(path.read_text())["servers"][live.base]
    assert fourth["access_token"] != "not-a-jwt"

    # logout revokes the refresh family on the server and forgets the login here
    res = live.cli("logout", home=home)
    assert res.exit_code == 0, res.output
    assert live.base not in json.loads(path.read_text())["servers"]
    again = httpx.post(
        f"{live.base}/auth/refresh",
        headers={"Cookie": f"hpcgate_refresh={fourth['refresh_token']}"},
    )
    assert again.status_code == 401
    one_line_error(live.cli("status", home=home), "not logged in")


def test_two_processes_refreshing_at_once_keep_the_login(live: Live, tmp_path: Path) -> None:
    """Presenting a rotated refresh token revokes the whole login (theft detection): the
    second of two refreshers must take the token the first stored, not re-present its own."""
    home = tmp_path / "home"
    _login(live, home)
    a, b = _client(live, home), _client(live, home)  # both loaded the same login
    assert a.auth.login == b.auth.login
    a.refresh()
    b.refresh()  # must adopt a's token, not present the rotated cookie
    assert b.auth.login == a.auth.login
    assert a.me().email == b.me().email == live.email
    a.refresh()  # the login was not revoked: it still refreshes
    assert a.me().email == live.email
    a.close()
    b.close()


# ------------------------------------------------------------------ submit, status, results


def test_submit_a_directory_with_text_and_binary_inputs_and_wait(
    live: Live, tmp_path: Path
) -> None:
    blob = os.urandom(4096) + b"\x00\xff"
    folder = _write(tmp_path / "run", {
        "hpcgate.yaml": yaml.safe_dump({
            "code": "generic",
            "cluster": live.cluster_name,
            "queue": "default",
            "command": ["bash", "-c", "sha256sum blob.bin > sums.txt && cat note.txt >> sums.txt"],
        }),
        "note.txt": "hello from a directory\n",
        "blob.bin": blob,
    })  # fmt: skip
    res = live.cli("submit", str(folder), "--wait", "--interval", "0.3")
    assert res.exit_code == 0, res.output
    calc_id = _calc_id(res.stdout)
    assert "completed" in res.stderr
    with _client(live) as client:
        calc = client.calculation(calc_id)
    assert calc.name == "run"
    assert set(calc.configuration["inputs"]) == {"note.txt"}
    assert calc.configuration["binary_inputs"] == {"blob.bin": hashlib.sha256(blob).hexdigest()}
    sums = (Path(calc.steps[0].workdir or "") / "sums.txt").read_text()
    assert sums.split()[0] == hashlib.sha256(blob).hexdigest()
    assert "hello from a directory" in sums


def test_submit_a_yaml_sweep_then_status_and_watch(live: Live, tmp_path: Path) -> None:
    spec = tmp_path / "sweep.yaml"
    spec.write_text(yaml.safe_dump({
        "name": "sqrt sweep",
        "kind": "sweep",
        "variants": [{"label": f"a={a}", "parameters": {"a": a}} for a in (4, 9)],
        "command": ["bash", "-c", 'echo "sqrt=$(( ${HPCGATE_PARAM_A} ))" > out.txt'],
    }))  # fmt: skip
    # the only cluster and its only queue are chosen when the spec names none
    res = live.cli("submit", str(spec))
    assert res.exit_code == 0, res.output
    calc_id = _calc_id(res.stdout)

    watched = live.cli("status", str(calc_id), "--watch", "--interval", "0.3")
    assert watched.exit_code == 0, watched.output
    assert f"calculation {calc_id}" in watched.stdout
    assert "completed" in watched.stdout

    listing = live.cli("status")
    assert listing.exit_code == 0, listing.output
    row = next(ln for ln in listing.stdout.splitlines() if f" {calc_id} " in ln)
    assert "sqrt sweep" in row
    assert "completed" in row

    as_json = live.cli("status", "--json", "--state", "completed")
    assert as_json.exit_code == 0, as_json.output
    listed = {c["id"]: c for c in json.loads(as_json.stdout)}
    assert listed[calc_id]["kind"] == "sweep"

    detail = json.loads(live.cli("status", str(calc_id), "--json").stdout)
    (step,) = detail["steps"]
    assert step["array_size"] == 2
    outs = sorted(p.read_text().strip() for p in Path(step["workdir"]).rglob("out.txt"))
    assert outs == ["sqrt=4", "sqrt=9"]

    # a list --watch ends once every listed calculation has ended
    res = live.cli("status", "--watch", "--interval", "0.3", "--state", "completed")
    assert res.exit_code == 0, res.output


def test_watch_and_wait_exit_non_zero_when_the_calculation_fails(
    live: Live, tmp_path: Path
) -> None:
    folder = _write(tmp_path / "breaks", {"hpcgate.yaml": yaml.safe_dump(
        {"command": ["bash", "-c", "exit 7"]})})  # fmt: skip
    res = live.cli("submit", str(folder), "--wait", "--interval", "0.3")
    calc_id = _calc_id(res.stdout)
    # the live view went to stderr above it; the error is its own last line
    line = res.stderr.strip().splitlines()[-1]
    assert line.startswith(f"hpcgate: error: calculation {calc_id} ended failed")
    assert "exit code 7" in line
    assert res.exit_code == 1
    watched = live.cli("status", str(calc_id), "--watch")
    assert watched.exit_code == 1
    one_line_error(watched, "ended failed")  # the view itself is on stdout


# ------------------------------------------------------------------ logs


def test_logs_prints_and_follows_a_calculations_lines(live: Live, tmp_path: Path) -> None:
    flag = tmp_path / "go"
    folder = _write(tmp_path / "waits", {"hpcgate.yaml": yaml.safe_dump({
        "command": ["bash", "-c", f"while [ ! -e {flag} ]; do sleep 0.1; done"]})})  # fmt: skip
    calc_id = _calc_id(live.cli("submit", str(folder)).stdout)

    def agent_line(message: str, level: str = "info") -> None:
        r = httpx.post(
            f"{live.base}/agent/logs",
            headers={"X-API-Key": live.agent_key},
            json={"lines": [{"message": message, "level": level, "calculation_id": calc_id}]},
        )
        assert r.status_code == 201, r.text

    agent_line("first line")
    agent_line("second line", "warning")
    res = live.cli("logs", str(calc_id))
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    # the worker's own lines about this calculation are there too ("... submitted ...")
    ours = [ln for ln in lines if ln.endswith((" first line", " second line"))]
    assert [ln.split()[-2] for ln in ours] == ["first", "second"]  # oldest first
    assert "warning" in ours[1]
    assert any(f"calculation {calc_id} (waits) submitted" in ln for ln in lines)
    only_warnings = live.cli("logs", str(calc_id), "--level", "warning")
    assert "first line" not in only_warnings.stdout
    assert "second line" in only_warnings.stdout

    # --follow, as a real process: prints what exists, then a line written while it follows,
    # and returns once the calculation has ended
    proc = subprocess.Popen(
        [sys.executable, "-m", "hpcgate.cli", "logs", str(calc_id), "--follow"],
        env=live.subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    for _ in lines:  # everything that existed, first
        assert proc.stdout.readline().rstrip("\n") in lines
    agent_line("written while following")
    for _ in range(50):  # then the new line (after any the worker wrote meanwhile)
        if proc.stdout.readline().endswith(" written while following\n"):
            break
    else:
        raise AssertionError("the followed line never came")
    flag.touch()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    with _client(live) as client:
        assert client.calculation(calc_id).state == "completed"


# ------------------------------------------------------------------ cancel and clone


def test_cancel_stops_a_running_job(live: Live, tmp_path: Path) -> None:
    marker = tmp_path / "started"
    folder = _write(tmp_path / "long", {"hpcgate.yaml": yaml.safe_dump({
        "command": ["bash", "-c", f"touch {marker}; sleep 600"]})})  # fmt: skip
    calc_id = _calc_id(live.cli("submit", str(folder)).stdout)
    with _client(live) as client:
        while not marker.exists():  # the job really runs
            assert not client.calculation(calc_id).finished
            time.sleep(0.2)
        res = live.cli("cancel", str(calc_id))
        assert res.exit_code == 0, res.output
        assert f"calculation {calc_id}: cancelled" in res.stderr
        while client.calculation(calc_id).steps[0].state not in ("cancelled", "failed"):
            time.sleep(0.3)  # the worker cancels the job at its next tick
        assert client.calculation(calc_id).steps[0].state == "cancelled"
    one_line_error(live.cli("status", str(calc_id), "--watch"), "ended cancelled")
    again = live.cli("cancel", str(calc_id))
    assert again.exit_code == 2  # the API's refusal to cancel twice, one line
    assert len(again.stderr.strip().splitlines()) == 1


def test_clone_reruns_with_changes(live: Live, tmp_path: Path) -> None:
    blob = b"\x00binary electrode\xff"
    folder = _write(tmp_path / "param", {
        "hpcgate.yaml": yaml.safe_dump({
            "parameters": {"a": 2},
            "command": ["bash", "-c", 'echo "a=$HPCGATE_PARAM_A $(cat in.txt)" > a.txt; '
                        "sha256sum e.bin >> a.txt"],
        }),
        "in.txt": "text input",
        "e.bin": blob,
    })  # fmt: skip
    res = live.cli("submit", str(folder), "--wait", "--interval", "0.3")
    assert res.exit_code == 0, res.output
    original = _calc_id(res.stdout)

    res = live.cli("clone", str(original), "--set", "parameters.a=7", "--wait", "--interval",
                   "0.3")  # fmt: skip
    assert res.exit_code == 0, res.output
    cloned = _calc_id(res.stdout)
    assert cloned != original
    with _client(live) as client:
        before, after = client.calculation(original), client.calculation(cloned)
    assert after.name == f"param (clone of #{original})"
    assert before.configuration["parameters"] == {"a": 2}
    assert after.configuration["parameters"] == {"a": 7}
    assert after.configuration["binary_inputs"] == before.configuration["binary_inputs"]
    text = (Path(after.steps[0].workdir or "") / "a.txt").read_text()
    assert text.startswith("a=7 text input")
    assert hashlib.sha256(blob).hexdigest() in text
    assert (Path(before.steps[0].workdir or "") / "a.txt").read_text().startswith("a=2 ")

    bad = live.cli("clone", str(original), "--set", "kind=nonsense")
    assert bad.exit_code == 2
    assert len(bad.stderr.strip().splitlines()) == 1


# ------------------------------------------------------------------ errors


def test_every_failure_is_one_line(live: Live, tmp_path: Path) -> None:
    assert one_line_error(live.cli("status", "99999999"), "does not exist")
    assert live.cli("status", "99999999").exit_code == 2
    one_line_error(live.cli("status", home=tmp_path / "nobody"), "not logged in")
    one_line_error(
        live.cli("status", env={"HPCGATE_URL": "http://127.0.0.1:1", "HPCGATE_TOKEN": "x"}),
        "cannot reach http://127.0.0.1:1",
    )
    folder = _write(tmp_path / "bad", {"hpcgate.yaml": "code: generic\ncommand: [true\n"})
    one_line_error(live.cli("submit", str(folder)), "not valid YAML")
    folder = _write(
        tmp_path / "unknown",
        {
            "hpcgate.yaml": yaml.safe_dump(
                {"code": "generic", "command": ["true"], "analyses": ["no_such_analysis"]}
            )
        },
    )
    refused = live.cli("submit", str(folder))
    one_line_error(refused, "no_such_analysis")
    assert refused.exit_code == 2
    one_line_error(live.cli("submit", str(folder), "--cluster", "nowhere"), "no cluster 'nowhere'")
    one_line_error(live.cli("clone", "1", "--set", "noequals"), "write key=value")
    one_line_error(live.cli("results", "1", "--format", "xml"), "choose json or csv")
    one_line_error(live.cli("submit", str(tmp_path / "missing")), "neither a directory")

    # the installed entry point, as a process: the same one line
    env = live.subprocess_env(tmp_path / "nobody")
    proc = subprocess.run([sys.executable, "-m", "hpcgate.cli", "status"], env=env,
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"hpcgate: error: not logged in to {live.base}: run `hpcgate login` first"
    ]
    assert "Traceback" not in proc.stderr
