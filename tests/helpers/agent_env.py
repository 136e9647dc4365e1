"""A real agent's configuration file for a cluster of an ``EngineEnv`` (key created here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from hpcgate.db.session import session_scope
from hpcgate.domain.access import ApiKeyOwner
from hpcgate.services.api_keys import create_api_key
from tests.helpers.engine_env import EngineEnv


def agent_config(
    env: EngineEnv, root: Path, base: str, cluster_id: int, name: str, **extra: Any
) -> Path:
    """``root/agent.yaml``: scratch and state under ``root``, the cluster's new API key;
    ``extra`` adds or overrides keys (``hpcgate_command``, ``intervals``, ...)."""
    with session_scope(env.factory) as s:
        _, key = create_api_key(s, owner_kind=ApiKeyOwner.CLUSTER, name="a", cluster_id=cluster_id)
    cfg = root / "agent.yaml"
    config = {
        "api_url": base,
        "api_key": key,
        "cluster": name,
        "name": "ladder-agent",
        "scheduler": "slurm",
        "scratch_root": str(root / "scratch"),
        "state_dir": str(root / "state"),
        **extra,
    }
    cfg.write_text(yaml.safe_dump(config))
    return cfg
