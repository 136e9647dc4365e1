"""Binary input files through the live API (uvicorn on loopback, real PostgreSQL).

What it proves: multipart uploads store bytes that are not UTF-8 (random bytes and a real
SIESTA ``.TSHS``) once by sha256; calculations reference them (link rows, step specs carry
references, not content); a sweep stores a shared file once; the size limits answer 413
while the body streams, and every refusal (413, 422) leaves nothing behind — no
calculation, no blob, no link row, no spooled file. The agent's blob route serves only
blobs of its own cluster's calculations being submitted.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session

from hpcgate.api.app import create_app
from hpcgate.db.models import Calculation, CalculationInput, InputBlob, QueueMapping, Step
from hpcgate.db.models.clusters import AccessMode
from hpcgate.domain.access import Role
from hpcgate.domain.states import CalculationState, StepState
from hpcgate.settings import InputSettings, Settings
from tests.helpers.api import auth_headers, new_api_key, new_cluster, new_user
from tests.helpers.fixtures_path import require_siesta_fixture
from tests.helpers.live_api import live_server

pytestmark = pytest.mark.integration

MAX_FILE = 256 << 10
MAX_CALC = 384 << 10
TSHS = "graphene_transiesta_siesta5/electrode/electrode.TSHS"
# Generous: creating a calculation may start the input-parsing worker processes first.
http = httpx.Client(timeout=120)


@dataclass
class Api:
    base: str
    engine: Engine
    settings: Settings
    headers: dict[str, str]
    cluster_id: int

    def counts(self) -> tuple[int, int, int]:
        with Session(self.engine) as s:
            return (
                s.scalar(select(func.count()).select_from(Calculation)) or 0,
                s.scalar(select(func.count()).select_from(InputBlob)) or 0,
                s.scalar(select(func.count()).select_from(CalculationInput)) or 0,
            )

    def spooled(self) -> list[Path]:
        root = self.settings.paths.data_dir / "uploads"
        return sorted(root.rglob("*")) if root.exists() else []


@pytest.fixture(scope="module")
def api(isolated_settings: Settings, isolated_engine: Engine) -> Iterator[Api]:
    settings = isolated_settings.model_copy(
        update={
            "max_body_mb": 1,
            "inputs": InputSettings(max_file_bytes=MAX_FILE, max_calculation_bytes=MAX_CALC),
        }
    )
    user = new_user(isolated_engine, role=Role.USER)
    cluster = new_cluster(
        isolated_engine,
        access_mode=AccessMode.LOCAL,
        scheduler="local",
        queues=[QueueMapping(logical_queue="default", partition="local")],
    )
    app = create_app(settings, engine=isolated_engine)
    with live_server(app) as base:
        yield Api(base, isolated_engine, settings, auth_headers(user, settings), cluster.id)


def _calculation(cluster_id: int, **config: Any) -> dict[str, Any]:
    return {
        "name": "binary inputs",
        "cluster_id": cluster_id,
        "logical_queue": "default",
        "code": "generic",
        "configuration": {"command": ["sha256sum", "--", "electrode.TSHS"], **config},
    }


def _post_calculation(
    api: Api, body: dict[str, Any], files: list[tuple[str, bytes]]
) -> httpx.Response:
    parts = [("calculation", (None, json.dumps(body).encode(), "application/json"))]
    parts += [("file", (name, data, "application/octet-stream")) for name, data in files]
    return http.post(f"{api.base}/calculations/upload", headers=api.headers, files=parts)


def test_upload_once_reference_by_hash(api: Api) -> None:
    tshs = require_siesta_fixture(TSHS).read_bytes()
    noise = os.urandom(50_000) + b"\xff\xfe\x00"
    with pytest.raises(UnicodeDecodeError):
        noise.decode("utf-8")
    r = http.post(
        f"{api.base}/inputs",
        headers=api.headers,
        files=[("file", ("electrode.TSHS", tshs)), ("file", ("noise.bin", noise))],
    )
    assert r.status_code == 201, r.text
    got = {f["name"]: f for f in r.json()["files"]}
    assert got["electrode.TSHS"]["sha256"] == hashlib.sha256(tshs).hexdigest()
    assert got["electrode.TSHS"]["size"] == len(tshs)
    assert got["noise.bin"]["sha256"] == hashlib.sha256(noise).hexdigest()
    assert all(f["new"] for f in got.values())
    # the same bytes again (under another name): still one row
    again = http.post(
        f"{api.base}/inputs", headers=api.headers, files=[("file", ("copy.TSHS", tshs))]
    )
    assert again.status_code == 201
    assert again.json()["files"][0]["new"] is False
    with Session(api.engine) as s:
        stored = s.scalar(
            select(InputBlob.content).where(InputBlob.sha256 == hashlib.sha256(tshs).hexdigest())
        )
    assert stored == tshs

    # a sweep referencing the blob: one blob row, one link row, a reference per task
    sha = hashlib.sha256(tshs).hexdigest()
    before = api.counts()
    r = http.post(
        f"{api.base}/calculations",
        headers=api.headers,
        json=_calculation(
            api.cluster_id,
            kind="sweep",
            binary_inputs={"electrode.TSHS": sha},
            variants=[{"label": f"p{i}", "parameters": {"x": i}} for i in range(4)],
        ),
    )
    assert r.status_code == 201, r.text
    calc_id = r.json()["id"]
    after = api.counts()
    assert after == (before[0] + 1, before[1], before[2] + 1)
    with Session(api.engine) as s:
        (step,) = s.scalars(select(Step).where(Step.calculation_id == calc_id))
        assert step.spec["blobs"] == {f"task-{i}/electrode.TSHS": sha for i in range(4)}
        assert "electrode.TSHS" not in json.dumps(step.spec["files"])  # no content in JSON
        links = s.scalars(
            select(CalculationInput).where(CalculationInput.calculation_id == calc_id)
        ).all()
        assert [(link.name, link.sha256) for link in links] == [("electrode.TSHS", sha)]


def test_preview_with_binary_inputs_saves_nothing(api: Api) -> None:
    data = os.urandom(2000) + b"\xff"
    r = http.post(f"{api.base}/inputs", headers=api.headers, files=[("file", ("e.bin", data))])
    assert r.status_code == 201
    sha = r.json()["files"][0]["sha256"]
    before = api.counts()
    r = http.post(
        f"{api.base}/calculations/preview",
        headers=api.headers,
        json=_calculation(api.cluster_id, binary_inputs={"electrode.TSHS": sha}),
    )
    assert r.status_code == 200, r.text
    assert api.counts() == before
    r = http.post(
        f"{api.base}/calculations/preview",
        headers=api.headers,
        json=_calculation(api.cluster_id, binary_inputs={"electrode.TSHS": "1" * 64}),
    )
    assert r.status_code == 422  # the same checks as creation
    assert "never uploaded" in r.json()["detail"]


def test_calculation_with_files_in_one_request(api: Api) -> None:
    tshs = require_siesta_fixture(TSHS).read_bytes()
    noise = os.urandom(40_000)
    r = _post_calculation(
        api, _calculation(api.cluster_id), [("electrode.TSHS", tshs), ("noise.bin", noise)]
    )
    assert r.status_code == 201, r.text
    detail = r.json()
    refs = detail["configuration"]["binary_inputs"]
    assert refs == {
        "electrode.TSHS": hashlib.sha256(tshs).hexdigest(),
        "noise.bin": hashlib.sha256(noise).hexdigest(),
    }
    with Session(api.engine) as s:
        (step,) = s.scalars(select(Step).where(Step.calculation_id == detail["id"]))
        assert step.spec["blobs"] == refs
        blob = s.scalar(select(InputBlob.content).where(InputBlob.sha256 == refs["noise.bin"]))
        assert blob == noise
    assert api.spooled() == []
    # and back, byte for byte
    url = f"{api.base}/calculations/{detail['id']}/binary-inputs"
    got = http.get(f"{url}/noise.bin", headers=api.headers)
    assert got.status_code == 200
    assert got.content == noise
    assert got.headers["x-content-sha256"] == refs["noise.bin"]
    assert http.get(f"{url}/other.bin", headers=api.headers).status_code == 404
    assert http.get(f"{url}/noise.bin").status_code == 401


def _refused(api: Api, response: httpx.Response, status: int, before: tuple[int, int, int]) -> str:
    assert response.status_code == status, response.text
    assert api.counts() == before  # no calculation, no blob, no link row
    assert api.spooled() == []  # no spooled file left
    detail: str = response.json()["detail"]
    return detail


def test_one_file_too_large_is_413_and_nothing_is_written(api: Api) -> None:
    before = api.counts()
    small = os.urandom(1000)
    big = os.urandom(MAX_FILE + 1)
    r = _post_calculation(api, _calculation(api.cluster_id), [("a.bin", small), ("b.bin", big)])
    detail = _refused(api, r, 413, before)
    assert "'b.bin'" in detail
    assert f"{MAX_FILE} bytes allowed per input file" in detail
    r = http.post(f"{api.base}/inputs", headers=api.headers, files=[("file", ("b.bin", big))])
    _refused(api, r, 413, before)


def test_calculation_total_too_large_is_413_and_nothing_is_written(api: Api) -> None:
    before = api.counts()
    files = [(f"part{i}.bin", os.urandom(MAX_FILE - 10)) for i in range(2)]  # each fits
    r = _post_calculation(api, _calculation(api.cluster_id), files)
    detail = _refused(api, r, 413, before)
    assert "per calculation" in detail
    # a declared body beyond the request limit is refused before it is read
    huge = os.urandom(MAX_CALC + (1 << 20) + 1)
    r = _post_calculation(api, _calculation(api.cluster_id), [("huge.bin", huge)])
    _refused(api, r, 413, before)


def test_referenced_blobs_count_towards_the_calculation_limit(api: Api) -> None:
    parts = []
    for i in range(2):
        data = os.urandom(MAX_FILE - 100)
        r = http.post(
            f"{api.base}/inputs", headers=api.headers, files=[("file", (f"x{i}.bin", data))]
        )
        assert r.status_code == 201
        parts.append(r.json()["files"][0]["sha256"])
    before = api.counts()
    r = http.post(
        f"{api.base}/calculations",
        headers=api.headers,
        json=_calculation(api.cluster_id, binary_inputs={"x0.bin": parts[0], "x1.bin": parts[1]}),
    )
    assert "a calculation may use" in _refused(api, r, 413, before)


@pytest.mark.parametrize(
    ("files", "config", "needle"),
    [
        ([("hpcgate-params.json", b"\x00")], {}, "reserved"),
        ([("../escape.bin", b"\x00")], {}, "not allowed"),
        ([("in.txt", b"\x00")], {"inputs": {"in.txt": "text"}}, "both as text"),
        ([], {"binary_inputs": {"x.bin": "0" * 64}}, "never uploaded"),
        ([], {"binary_inputs": {"x.bin": "not-a-hash"}}, "sha256"),
        ([("dup.bin", b"1"), ("dup.bin", b"2")], {}, "twice"),
    ],
)
def test_bad_names_and_references_are_422_and_nothing_is_written(
    api: Api, files: list[tuple[str, bytes]], config: dict[str, Any], needle: str
) -> None:
    before = api.counts()
    r = _post_calculation(api, _calculation(api.cluster_id, **config), files)
    assert needle in _refused(api, r, 422, before)


def test_blocked_user_cannot_upload(api: Api, isolated_engine: Engine) -> None:
    blocked = new_user(isolated_engine, role=Role.USER, blocked=True)
    before = api.counts()
    r = http.post(
        f"{api.base}/inputs",
        headers=auth_headers(blocked, api.settings),
        files=[("file", ("a.bin", b"\x00\x01"))],
    )
    assert r.status_code in (401, 403)
    assert api.counts() == before


def test_agent_reads_only_its_clusters_blobs_while_submitting(
    api: Api, isolated_engine: Engine
) -> None:
    agent_cluster = new_cluster(
        isolated_engine, queues=[QueueMapping(logical_queue="default", partition="debug")]
    )
    other = new_cluster(isolated_engine)
    _, key = new_api_key(isolated_engine, cluster=agent_cluster)
    _, other_key = new_api_key(isolated_engine, cluster=other)
    data = os.urandom(3000) + b"\x80"
    r = _post_calculation(api, _calculation(agent_cluster.id), [("electrode.TSHS", data)])
    assert r.status_code == 201, r.text
    calc_id = r.json()["id"]
    sha = hashlib.sha256(data).hexdigest()
    url = f"{api.base}/agent/blobs/{sha}"
    # not yet claimed: nobody may read it
    assert http.get(url, headers={"X-API-Key": key}).status_code == 404
    with Session(isolated_engine) as s:
        s.execute(
            update(Calculation)
            .where(Calculation.id == calc_id)
            .values(state=CalculationState.SUBMITTING, processed=True)
        )
        s.commit()
    got = http.get(url, headers={"X-API-Key": key})
    assert got.status_code == 200
    assert got.content == data
    assert got.headers["x-content-sha256"] == sha
    assert http.get(url, headers={"X-API-Key": other_key}).status_code == 404
    assert http.get(url, headers=api.headers).status_code == 401
    unknown = f"{api.base}/agent/blobs/{'0' * 64}"
    assert http.get(unknown, headers={"X-API-Key": key}).status_code == 404
    # Running, every step submitted: nothing to stage any more.
    with Session(isolated_engine) as s:
        s.execute(
            update(Calculation)
            .where(Calculation.id == calc_id)
            .values(state=CalculationState.RUNNING)
        )
        s.execute(update(Step).where(Step.calculation_id == calc_id).values(state=StepState.QUEUED))
        s.commit()
    assert http.get(url, headers={"X-API-Key": key}).status_code == 404
    # A step added to it (adaptive refinement) waits to be submitted: readable again.
    with Session(isolated_engine) as s:
        s.execute(
            update(Step).where(Step.calculation_id == calc_id).values(state=StepState.PLANNED)
        )
        s.commit()
    assert http.get(url, headers={"X-API-Key": key}).status_code == 200
    assert http.get(url, headers={"X-API-Key": other_key}).status_code == 404


def test_identical_uploads_at_once_store_one_row(isolated_engine: Engine, tmp_path: Path) -> None:
    """Two uploads of the same new bytes race past the existence check: the second COPY
    hits the first one's row, reports a duplicate, and its transaction stays usable (the
    unique violation is rolled back to a savepoint)."""
    from hpcgate.services.input_blobs import copy_blob, store_blob

    data = os.urandom(3 << 20)  # several COPY chunks
    sha = hashlib.sha256(data).hexdigest()
    path = tmp_path / "blob"
    path.write_bytes(data)
    with Session(isolated_engine) as first, path.open("rb") as fh:
        assert store_blob(first, fh, sha, len(data), None) is True
        first.commit()
    with Session(isolated_engine) as second, path.open("rb") as fh:
        assert copy_blob(second, fh, sha, len(data), None) is False  # as if it raced
        assert second.execute(select(1)).scalar() == 1  # still a healthy transaction
        second.commit()
    with Session(isolated_engine) as s:
        rows = s.execute(select(InputBlob.size, InputBlob.content).where(InputBlob.sha256 == sha))
        assert [(size, bytes(content)) for size, content in rows] == [(len(data), data)]


def test_a_file_that_changed_after_hashing_is_refused(
    isolated_engine: Engine, tmp_path: Path
) -> None:
    from hpcgate.errors import InvalidInput
    from hpcgate.services.input_blobs import store_blob

    path = tmp_path / "blob"
    path.write_bytes(b"\x00changed\xff")
    sha = hashlib.sha256(b"\x00original\xff").hexdigest()
    with Session(isolated_engine) as s, path.open("rb") as fh:
        with pytest.raises(InvalidInput, match="changed"):
            store_blob(s, fh, sha, 10, None)
        s.execute(select(1))
        assert s.scalar(select(func.count()).where(InputBlob.sha256 == sha)) == 0


def test_unused_uploads_are_pruned_after_keep_days(api: Api, isolated_engine: Engine) -> None:
    from sqlalchemy.orm import sessionmaker

    from hpcgate.services.input_blobs import prune_unused_blobs

    blobs = {}
    for name in ("old-unused.bin", "old-used.bin", "new-unused.bin"):
        r = http.post(
            f"{api.base}/inputs", headers=api.headers, files=[("file", (name, os.urandom(500)))]
        )
        assert r.status_code == 201
        blobs[name] = r.json()["files"][0]["sha256"]
    r = http.post(
        f"{api.base}/calculations",
        headers=api.headers,
        json=_calculation(api.cluster_id, binary_inputs={"e.bin": blobs["old-used.bin"]}),
    )
    assert r.status_code == 201, r.text
    with Session(isolated_engine) as s:
        s.execute(
            update(InputBlob)
            .where(InputBlob.sha256.in_([blobs["old-unused.bin"], blobs["old-used.bin"]]))
            .values(created_at=func.now() - func.make_interval(0, 0, 0, 8))
        )
        s.commit()
    assert prune_unused_blobs(sessionmaker(isolated_engine), keep_days=7) == 1
    with Session(isolated_engine) as s:
        left = set(s.scalars(select(InputBlob.sha256).where(InputBlob.sha256.in_(blobs.values()))))
    assert left == {blobs["old-used.bin"], blobs["new-unused.bin"]}
