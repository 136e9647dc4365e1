"""The CLI as a user meets it: one-line errors, non-zero exits, and real effects."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

HPCGATE = [sys.executable, "-m", "hpcgate.cli"]


def run(
    args: list[str], env: dict[str, str], stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HPCGATE_")}
    return subprocess.run(
        [*HPCGATE, *args],
        env={**clean, **env},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert proc.returncode != 0
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("hpcgate: error: ")
    assert fragment in lines[0]
    assert "Traceback" not in proc.stderr


def test_malformed_database_url_is_one_line(tmp_path: Path) -> None:
    proc = run(["db", "upgrade"], {"HPCGATE_ENV": "dev", "HPCGATE_DATABASE_URL": "postgresql://"})
    assert_one_line_error(proc, "names no database")
    proc = run(["db", "upgrade"], {"HPCGATE_ENV": "dev", "HPCGATE_DATABASE_URL": "::nonsense::"})
    assert_one_line_error(proc, "malformed database URL")


def test_default_secret_in_production_is_refused() -> None:
    proc = run(
        ["serve"], {"HPCGATE_ENV": "production", "HPCGATE_DATABASE_URL": "postgresql://u@h/d"}
    )
    assert_one_line_error(proc, "built-in default")


def test_unreachable_database_is_one_line() -> None:
    proc = run(
        ["db", "upgrade"],
        {"HPCGATE_ENV": "dev", "HPCGATE_DATABASE_URL": "postgresql://u@127.0.0.1:1/none"},
    )
    assert_one_line_error(proc, "cannot reach the database")


def test_db_upgrade_then_user_create(database_url: str) -> None:
    env = {"HPCGATE_ENV": "dev", "HPCGATE_DATABASE_URL": database_url}
    proc = run(["db", "upgrade"], env)
    assert proc.returncode == 0, proc.stderr
    assert "upgraded" in proc.stdout
    email = f"cli-{os.getpid()}@example.org"
    proc = run(
        ["user", "create", "--email", email, "--role", "moderator", "--password-stdin"],
        env,
        stdin="a-good-password\n",
    )
    assert proc.returncode == 0, proc.stderr
    assert f"created moderator {email}" in proc.stdout
    again = run(
        ["user", "create", "--email", email, "--password-stdin"], env, stdin="a-good-password\n"
    )
    assert_one_line_error(again, "already exists")
    weak = run(["user", "create", "--email", "x" + email, "--password-stdin"], env, stdin="short\n")
    assert_one_line_error(weak, "at least 8")
    bad_role = run(
        ["user", "create", "--email", "y" + email, "--role", "root", "--password-stdin"],
        env,
        stdin="a-good-password\n",
    )
    assert_one_line_error(bad_role, "unknown role")
    # clean up the committed user (this test talks to the DB through a separate process)
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM users WHERE email = :e"), {"e": email})
    engine.dispose()


def test_every_command_has_help() -> None:
    for args in (
        ["--help"],
        ["serve", "--help"],
        ["worker", "--help"],
        ["db", "upgrade", "--help"],
        ["user", "create", "--help"],
        ["demo", "--help"],
    ):
        proc = run(args, {"HPCGATE_ENV": "dev"})
        assert proc.returncode == 0, (args, proc.stderr)
        assert "Usage" in proc.stdout
