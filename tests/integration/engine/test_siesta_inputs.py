"""SIESTA calculations are planned from real inputs (the TranSIESTA Au(100) fixture):
a bias chain gets one input per voltage, dependent steps restart from the parent's DM,
and broken inputs are refused at creation with a clear message."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from hpcgate.db.models import Calculation
from hpcgate.db.models.clusters import AccessMode
from hpcgate.db.session import session_scope
from hpcgate.errors import InvalidInput
from tests.helpers.engine_env import EngineEnv, engine_env
from tests.helpers.fixtures_path import require_siesta_fixture

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineEnv]:
    with engine_env(tmp_path_factory.mktemp("siesta"), "hpcgate_siesta") as e:
        yield e


def _inputs() -> dict[str, str]:
    root = require_siesta_fixture("ts_au_100_bias_siesta41")
    require_siesta_fixture("ts_au_100_bias_siesta41/0.00V/au_100.fdf")
    files = {
        "au_100.fdf": (root / "0.00V" / "au_100.fdf").read_text(errors="replace"),
        "Au.psf": (root / "Au.psf").read_text(errors="replace"),
    }
    elec = root / "0.00V" / "elec_au_100.fdf"
    if elec.exists():
        files["elec_au_100.fdf"] = elec.read_text(errors="replace")
    return files


def _cluster(env: EngineEnv, tmp_path: Path) -> int:
    return env.add_cluster(
        f"local-{tmp_path.name}",
        scheduler="local",
        access_mode=AccessMode.LOCAL,
        scratch_root=str(tmp_path / "s"),
        queues={"default": "local"},
    )


def test_bias_chain_inputs(env: EngineEnv, tmp_path: Path) -> None:
    calc_id = env.create(
        name="Au bias chain",
        cluster_id=_cluster(env, tmp_path),
        logical_queue="default",
        code="siesta",
        configuration={
            "kind": "chain",
            "inputs": _inputs(),
            "main_input": "au_100.fdf",
            "variants": [
                {"label": f"{v} V", "parameters": {"TS.Voltage": v}} for v in (0.0, 0.1, 0.25)
            ],
        },
    )
    steps = env.steps(calc_id)
    assert len(steps) == 3
    first, _, last = (s.spec["files"]["au_100.fdf"] for s in steps)
    assert "Au.psf" in steps[0].spec["files"]
    import re

    def voltage(text: str) -> str:
        m = re.search(r"(?im)^\s*TS[._-]?Voltage\s+(\S+)(?:\s+(\S+))?", text)
        assert m is not None
        return " ".join(g for g in m.groups() if g)

    assert voltage(first).startswith("0")
    assert voltage(last).startswith("0.25")
    assert "DM.UseSaveDM true" not in first
    assert "DM.UseSaveDM true" in last
    assert steps[2].spec["inherit"] == ["*.DM", "*.TSDE"]
    assert steps[0].spec["context"]["output"] == "au_100.out"


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda f: {k: v for k, v in f.items() if k != "Au.psf"}, "pseudopotential"),
        (lambda f: {**f, "au_100.fdf": f["au_100.fdf"] + "\n%block Unclosed\n1 2 3\n"}, "block"),
    ],
)
def test_broken_inputs_are_refused(
    env: EngineEnv, tmp_path: Path, mutate: object, fragment: str
) -> None:
    cid = _cluster(env, tmp_path)
    with session_scope(env.factory) as s:
        before = s.scalar(select(func.count()).select_from(Calculation))
    with pytest.raises(InvalidInput, match=fragment):
        env.create(
            name="broken",
            cluster_id=cid,
            logical_queue="default",
            code="siesta",
            configuration={
                "kind": "single",
                "inputs": mutate(_inputs()),  # type: ignore[operator]
                "main_input": "au_100.fdf",
            },
        )
    with session_scope(env.factory) as s:
        assert s.scalar(select(func.count()).select_from(Calculation)) == before
