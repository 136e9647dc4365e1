"""The portal's typed client (web/openapi.json -> web/src/api/schema.d.ts) against the API.

The generated files are committed so building the portal needs no Python. A route the
client knows that the API no longer serves breaks the portal at run time, so that is a
failure here: regenerate with ``bash web/scripts/gen-api.sh`` and let ``tsc`` (run by the
build) point at the calls to fix. New API routes are fine until the portal uses them.
"""

from __future__ import annotations

import json
from pathlib import Path

from hpcgate.api.app import create_app
from hpcgate.settings import Settings

WEB = Path(__file__).resolve().parents[2] / "web"
METHODS = {"get", "post", "put", "patch", "delete"}


def _operations(spec: dict[str, object]) -> set[tuple[str, str]]:
    paths = spec.get("paths", {})
    assert isinstance(paths, dict)
    return {(m.upper(), p) for p, ops in paths.items() for m in ops if m in METHODS}


def test_every_route_the_client_knows_still_exists(tmp_path: Path) -> None:
    settings = Settings(
        env="test",
        database={"url": "postgresql+psycopg://nobody@127.0.0.1:1/not-contacted"},
        auth={"secret_key": "client-schema-secret-0123456789abcdef"},
        paths={"data_dir": str(tmp_path)},
    )
    live = _operations(create_app(settings).openapi())
    committed = _operations(json.loads((WEB / "openapi.json").read_text(encoding="utf-8")))
    gone = sorted(committed - live)
    assert gone == [], f"routes in web/openapi.json the API no longer serves: {gone}"
    assert (WEB / "src" / "api" / "schema.d.ts").stat().st_size > 10_000
