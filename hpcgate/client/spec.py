"""Calculations described on disk (a directory or a YAML spec) and changes to existing ones.

Pure: reads local files, never the network. ``Client.submit_spec``/``clone`` resolve the
cluster name and send. A spec (``hpcgate.yaml`` in the directory, or any YAML file)::

    name: H2O mesh sweep
    code: siesta
    kind: sweep                 # single | chain | sweep | dag | transiesta
    cluster: local              # name or id (default: the only cluster)
    queue: default              # logical queue (default: the cluster's only queue)
    analyses: [energy]
    inputs: [h2o.fdf, O.psf, H.psf]   # or {name: path}; default: every file of the directory
    main_input: h2o.fdf
    variants:
      - {label: "100 Ry", parameters: {MeshCutoff: 100 Ry}}
    ladder:                     # kind: transiesta (see docs/siesta.md)
      device: device.fdf
      electrodes: {Left: elec.fdf, Right: elec.fdf}
      biases_v: [0, 0.1]

Every other key goes into the calculation's ``configuration`` unchanged (the API checks
it). Files that are UTF-8 text go to ``configuration.inputs``; other files (``.TSHS``,
``.DM``) are uploaded beside the calculation as binary inputs.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hpcgate.client.errors import ClientError
from hpcgate.client.models import CalculationCreate, CalculationDetail, Cluster

SPEC_NAMES = ("hpcgate.yaml", "hpcgate.yml", "calculation.yaml", "calculation.yml")
MAX_SPEC_BYTES = 1 << 20
# Keys of the request itself; every other spec key belongs to the configuration.
_REQUEST_KEYS = {"name", "description", "code", "cluster", "queue", "analyses", "molecule_id"}
_SPEC_ONLY = {"inputs", "ladder", "configuration"}
# ``--set`` keys that change the request rather than its configuration.
_TOP_LEVEL = {
    "name": "name",
    "description": "description",
    "queue": "logical_queue",
    "logical_queue": "logical_queue",
    "analyses": "analyses",
    "priority": "priority",
    "molecule_id": "molecule_id",
    "code": "code",
}


@dataclass
class Submission:
    """A calculation read from disk, before its cluster name is resolved to an id."""

    name: str
    code: str = "generic"
    cluster: str | int | None = None
    queue: str | None = None
    description: str = ""
    analyses: list[str] = field(default_factory=list)
    configuration: dict[str, Any] = field(default_factory=dict)
    binary: dict[str, bytes] = field(default_factory=dict)
    molecule_id: int | None = None

    def body(self, cluster_id: int, queue: str) -> CalculationCreate:
        try:
            return CalculationCreate(
                name=self.name,
                description=self.description,
                cluster_id=cluster_id,
                logical_queue=queue,
                code=self.code,
                configuration=self.configuration,
                analyses=self.analyses,
                molecule_id=self.molecule_id,
            )
        except ValueError as exc:
            raise ClientError(f"invalid calculation: {_first_error(exc)}") from None


def _first_error(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        return f"{where}: {first.get('msg')}" if where else str(first.get("msg"))
    return str(exc)


def is_text(data: bytes) -> bool:
    """What the API accepts in ``inputs``: UTF-8 without NUL (PostgreSQL text)."""
    if b"\x00" in data:
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _read_spec(path: Path) -> dict[str, Any]:
    try:
        if path.stat().st_size > MAX_SPEC_BYTES:
            raise ClientError(f"{path}: a spec is at most {MAX_SPEC_BYTES} bytes")
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ClientError(f"cannot read {path}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ClientError(f"{path}{where}: not valid YAML") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ClientError(f"{path}: a spec is a mapping of keys (name, code, kind, ...)")
    return data


def _input_paths(spec: dict[str, Any], base: Path, spec_file: Path | None) -> dict[str, Path]:
    listed = spec.get("inputs")
    if listed is None:
        if spec_file is not None and spec_file.parent != base:
            return {}
        return {
            p.name: p
            for p in sorted(base.iterdir())
            if p.is_file() and not p.name.startswith(".") and p != spec_file
        }
    if isinstance(listed, list):
        pairs = [(Path(str(item)).name, base / str(item)) for item in listed]
    elif isinstance(listed, dict):
        pairs = [(str(name), base / str(where)) for name, where in listed.items()]
    else:
        raise ClientError("'inputs' is a list of files or a mapping {name: path}")
    out: dict[str, Path] = {}
    for name, path in pairs:
        if name in out:
            raise ClientError(f"two inputs are named {name!r}")
        if not path.is_file():
            raise ClientError(f"input {name!r}: {path} is not a file")
        out[name] = path
    return out


def load_submission(path: Path) -> Submission:
    """Read a directory (with an optional ``hpcgate.yaml``) or a YAML spec file."""
    if path.is_dir():
        spec_file = next((path / n for n in SPEC_NAMES if (path / n).is_file()), None)
        base = path
    elif path.is_file():
        spec_file, base = path, path.parent
    else:
        raise ClientError(f"{path} is neither a directory nor a spec file")
    spec = _read_spec(spec_file) if spec_file is not None else {}
    config: dict[str, Any] = {}
    extra = spec.get("configuration") or {}
    if not isinstance(extra, dict):
        raise ClientError("'configuration' must be a mapping")
    config.update(extra)
    for key, value in spec.items():
        if key not in _REQUEST_KEYS and key not in _SPEC_ONLY:
            config[key] = value
    ladder = spec.get("ladder")
    if ladder is not None:
        if not isinstance(ladder, dict):
            raise ClientError("'ladder' must be a mapping (device, electrodes, biases_v, ...)")
        config.update(ladder)
        config.setdefault("kind", "transiesta")
    texts: dict[str, str] = dict(config.get("inputs") or {})
    binary: dict[str, bytes] = {}
    for name, file in _input_paths(spec, base, spec_file).items():
        data = file.read_bytes()
        if is_text(data):
            texts[name] = data.decode("utf-8")
        else:
            binary[name] = data
    if texts:
        config["inputs"] = texts
    analyses = spec.get("analyses") or []
    if isinstance(analyses, str):
        analyses = [a.strip() for a in analyses.split(",") if a.strip()]
    if not isinstance(analyses, list):
        raise ClientError("'analyses' is a list of analysis names")
    name = spec.get("name") or (base.name if spec_file is None else spec_file.stem)
    if spec_file is not None and spec_file.name in SPEC_NAMES and "name" not in spec:
        name = base.resolve().name
    return Submission(
        name=str(name),
        code=str(spec.get("code", "generic")),
        cluster=spec.get("cluster"),
        queue=str(spec["queue"]) if spec.get("queue") is not None else None,
        description=str(spec.get("description", "")),
        analyses=[str(a) for a in analyses],
        configuration=config,
        binary=binary,
        molecule_id=spec.get("molecule_id"),
    )


def parse_assignment(text: str) -> tuple[str, Any]:
    """``key=value`` with a YAML value: ``MeshCutoff=200 Ry`` (text), ``x=3`` (number),
    ``biases_v=[0, 0.1]`` (list)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ClientError(f"--set {text!r}: write key=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    if isinstance(value, str | int | float | bool | list | dict) or value is None:
        return key, value
    return key, raw  # dates and other YAML types stay text


def apply_changes(body: dict[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """Dotted keys into the configuration (``parameters.MeshCutoff``), a few top-level keys
    (``name``, ``queue``, ``analyses``, ``priority``, ...) into the request."""
    out = copy.deepcopy(body)
    for key, value in changes.items():
        if key in _TOP_LEVEL:
            if key == "analyses" and isinstance(value, str):
                value = [a.strip() for a in value.split(",") if a.strip()]
            out[_TOP_LEVEL[key]] = value
            continue
        parts = key.removeprefix("configuration.").split(".")
        if any(not p for p in parts):
            raise ClientError(f"--set {key!r}: empty part in the key")
        node = out.setdefault("configuration", {})
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ClientError(f"--set {key!r}: {part!r} is not a mapping")
            node = child
        node[parts[-1]] = value
    return out


def clone_body(
    detail: CalculationDetail, inputs: Mapping[str, str], changes: Mapping[str, Any]
) -> dict[str, Any]:
    """The create request that re-runs ``detail`` (its input texts fetched separately: the
    API lists only their sizes), with ``changes`` applied."""
    config = copy.deepcopy(detail.configuration)
    if inputs:
        config["inputs"] = dict(inputs)
    body: dict[str, Any] = {
        "name": f"{detail.name} (clone of #{detail.id})"[:200],
        "description": detail.description,
        "molecule_id": detail.molecule_id,
        "cluster_id": detail.cluster_id,
        "logical_queue": detail.logical_queue,
        "code": detail.code,
        "configuration": config,
        "analyses": list(detail.analyses),
    }
    return apply_changes(body, changes)


def pick_target(
    clusters: list[Cluster], cluster: str | int | None, queue: str | None
) -> tuple[Cluster, str]:
    """The cluster (by id or name; the only one when not named) and its logical queue (the
    only one when not named); a clear error naming the choices otherwise."""
    names = ", ".join(sorted(c.name for c in clusters)) or "none"
    if cluster is None:
        if len(clusters) != 1:
            raise ClientError(f"name the cluster (--cluster): one of {names}")
        chosen = clusters[0]
    else:
        text = str(cluster)
        number = int(text) if text.isascii() and text.isdigit() else None
        found = [c for c in clusters if c.name == text or c.id == number]
        if not found:
            raise ClientError(f"no cluster {text!r}: one of {names}")
        chosen = found[0]
    queues = sorted(q.logical_queue for q in chosen.queues)
    if queue is None:
        if len(queues) != 1:
            raise ClientError(
                f"name the queue (--queue): cluster {chosen.name} has {', '.join(queues) or 'none'}"
            )
        return chosen, queues[0]
    if queue not in queues:
        raise ClientError(
            f"cluster {chosen.name} has no queue {queue!r}: one of {', '.join(queues) or 'none'}"
        )
    return chosen, queue
