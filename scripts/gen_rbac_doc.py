#!/usr/bin/env python3
"""Regenerate docs/rbac.md from tests/integration/api/rbac_table.py (the one RBAC table)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.integration.api.rbac_table import render_doc  # noqa: E402

DOC = ROOT / "docs" / "rbac.md"


def main() -> int:
    text = render_doc()
    if DOC.exists() and DOC.read_text(encoding="utf-8") == text:
        print(f"{DOC.relative_to(ROOT)} is up to date")
        return 0
    DOC.write_text(text, encoding="utf-8")
    print(f"wrote {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
