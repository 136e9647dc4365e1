"""Any program: hpcgate knows nothing of its inputs and gives the parameters as data."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from hpcgate.codes.plugin import PreparedInputs, check_params

__all__ = ["prepare_generic"]


def prepare_generic(
    files: Mapping[str, str],
    main: str,
    params: Mapping[str, Any],
    dependent: bool,
    *,
    binary: frozenset[str] = frozenset(),
) -> PreparedInputs:
    """Any program: parameters arrive as a JSON file (data) and as ``HPCGATE_PARAM_*``
    variables, which the job script itself exports (``codes/generic/params.py``; never a sourced
    file, which a user's upload could replace)."""
    check_params(params)
    out = dict(files)
    out["hpcgate-params.json"] = json.dumps(dict(params), indent=1, default=str)
    return PreparedInputs(out, {})
