#!/usr/bin/env bash
# Regenerate the portal's typed API client from the API itself.
#
#   1. dump the OpenAPI document of `hpcgate.api.app.create_app(settings).openapi()` into
#      web/openapi.json (no database is contacted: the app is only built, never served);
#   2. dump the built-in analyses catalogue (analyses.registry.catalogue()) into
#      web/src/api/analyses-catalogue.json, the fallback when the server has no
#      GET /analyses route;
#   3. run openapi-typescript: web/openapi.json -> web/src/api/schema.d.ts.
#
# The generated files are committed, so building the portal never needs Python.
# Run it after changing an API route or schema:  bash web/scripts/gen-api.sh
set -euo pipefail
WEB="$(cd "$(dirname "$0")/.." && pwd)"
ROOT="$(cd "$WEB/.." && pwd)"
PY="${HPCGATE_PYTHON:-$ROOT/.venv/bin/python}"
[ -x "$PY" ] || { echo "gen-api: no Python at $PY (run scripts/bootstrap.sh first)" >&2; exit 1; }

cd "$ROOT"
"$PY" - "$WEB/openapi.json" "$WEB/src/api/analyses-catalogue.json" <<'PY'
import json
import sys

from hpcgate.api.app import create_app
from hpcgate.settings import Settings

settings = Settings(
    env="dev",
    database={"url": "postgresql+psycopg://nobody@127.0.0.1:1/never-contacted"},
    auth={"secret_key": "schema-dump-only-0123456789"},
)
spec = create_app(settings).openapi()
with open(sys.argv[1], "w", encoding="utf-8") as fh:
    json.dump(spec, fh, indent=2, sort_keys=False)
    fh.write("\n")
try:
    from analyses.registry import Registry, build_registry

    catalogue = build_registry(use_entry_points=False).catalogue()
except ImportError:
    catalogue = []
with open(sys.argv[2], "w", encoding="utf-8") as fh:
    json.dump(catalogue, fh, indent=2)
    fh.write("\n")
print(f"gen-api: {len(spec['paths'])} paths, {len(catalogue)} built-in analyses")
PY

cd "$WEB"
[ -d node_modules ] || npm ci --no-audit --no-fund
# --default-non-nullable false: a field with a default is optional in a request body.
npx --no-install openapi-typescript openapi.json --default-non-nullable false -o src/api/schema.d.ts
