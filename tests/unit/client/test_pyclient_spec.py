"""Calculations read from disk, ``--set`` changes, clones, target choice, SSE parsing and the
credential file: the client's pure parts."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from hpcgate.client._core import SseParser, api_error, refresh_cookie
from hpcgate.client.credentials import CredentialStore, Login
from hpcgate.client.errors import ClientError
from hpcgate.client.models import CalculationDetail, Cluster
from hpcgate.client.spec import (
    apply_changes,
    clone_body,
    load_submission,
    parse_assignment,
    pick_target,
)


def test_a_directory_without_spec_sends_every_file(tmp_path: Path) -> None:
    (tmp_path / "h2o.fdf").write_text("SystemLabel h2o\n")
    (tmp_path / "O.psf").write_text("psf")
    (tmp_path / "el.TSHS").write_bytes(b"\x00\x01binary\xff")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))  # not UTF-8: binary
    (tmp_path / ".hidden").write_text("never sent")
    (tmp_path / "sub").mkdir()
    sub = load_submission(tmp_path)
    assert sub.name == tmp_path.name
    assert sub.configuration == {"inputs": {"O.psf": "psf", "h2o.fdf": "SystemLabel h2o\n"}}
    assert sorted(sub.binary) == ["el.TSHS", "latin1.txt"]
    assert sub.cluster is None
    assert sub.queue is None


def test_a_spec_file_lists_inputs_and_passes_configuration_keys(tmp_path: Path) -> None:
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "Au.psf").write_text("au")
    (tmp_path / "elec.fdf").write_text("e")
    (tmp_path / "device.fdf").write_text("d")
    (tmp_path / "unlisted.fdf").write_text("x")
    spec = tmp_path / "ladder.yaml"
    spec.write_text(yaml.safe_dump({
        "code": "siesta", "cluster": "hpc1", "queue": "short", "analyses": "a, b",
        "inputs": ["elec.fdf", "device.fdf", "shared/Au.psf"],
        "ladder": {"device": "device.fdf", "electrodes": {"Left": "elec.fdf"}, "biases_v": [0]},
        "resources": {"tasks": 2},
        "configuration": {"max_concurrent": 3},
    }))  # fmt: skip
    sub = load_submission(spec)
    assert sub.name == "ladder"
    assert (sub.code, sub.cluster, sub.queue, sub.analyses) == ("siesta", "hpc1", "short",
                                                               ["a", "b"])  # fmt: skip
    config = sub.configuration
    assert config["kind"] == "transiesta"
    assert config["device"] == "device.fdf"
    assert config["biases_v"] == [0]
    assert config["resources"] == {"tasks": 2}
    assert config["max_concurrent"] == 3
    assert set(config["inputs"]) == {"elec.fdf", "device.fdf", "Au.psf"}
    body = sub.body(cluster_id=4, queue="short")
    assert body.cluster_id == 4


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("command: [true\n", "not valid YAML"),
        ("- a list\n", "is a mapping"),
        ("inputs: 3\n", "'inputs' is a list"),
        ("inputs: [nope.fdf]\n", "is not a file"),
        ("ladder: [1]\n", "'ladder' must be a mapping"),
        ("configuration: [1]\n", "'configuration' must be a mapping"),
        ("analyses: 3\n", "list of analysis names"),
        ("inputs: [a/x.fdf, b/x.fdf]\n", "two inputs are named 'x.fdf'"),
    ],
)
def test_bad_specs_say_what_is_wrong(tmp_path: Path, text: str, fragment: str) -> None:
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "x.fdf").write_text("x")
    (tmp_path / "hpcgate.yaml").write_text(text)
    with pytest.raises(ClientError) as info:
        load_submission(tmp_path)
    assert fragment in info.value.message


def test_invalid_request_fields_are_refused_before_sending(tmp_path: Path) -> None:
    (tmp_path / "hpcgate.yaml").write_text("code: fortran\n")
    with pytest.raises(ClientError, match="code"):
        load_submission(tmp_path).body(1, "q")


def test_assignments_take_yaml_values() -> None:
    assert parse_assignment("MeshCutoff=200 Ry") == ("MeshCutoff", "200 Ry")
    assert parse_assignment("parameters.x=3") == ("parameters.x", 3)
    assert parse_assignment("biases_v=[0, 0.1]") == ("biases_v", [0, 0.1])
    assert parse_assignment("flag=true") == ("flag", True)
    assert parse_assignment("when=2024-01-01") == ("when", "2024-01-01")
    assert parse_assignment("empty=") == ("empty", "")
    for bad in ("noequals", "=3"):
        with pytest.raises(ClientError, match="key=value"):
            parse_assignment(bad)


def test_changes_go_into_configuration_or_the_request() -> None:
    body = {"name": "n", "logical_queue": "q", "configuration": {"parameters": {"a": 1}}}
    out = apply_changes(body, {"parameters.b": 2, "queue": "long", "analyses": "x,y",
                               "configuration.kind": "chain", "resources.tasks": 4})  # fmt: skip
    assert out["configuration"] == {
        "parameters": {"a": 1, "b": 2}, "kind": "chain", "resources": {"tasks": 4}
    }  # fmt: skip
    assert out["logical_queue"] == "long"
    assert out["analyses"] == ["x", "y"]
    assert body["configuration"] == {"parameters": {"a": 1}}  # the input is not changed
    with pytest.raises(ClientError, match="is not a mapping"):
        apply_changes(body, {"parameters.a.deeper": 1})
    with pytest.raises(ClientError, match="empty part"):
        apply_changes(body, {"parameters..a": 1})


def _detail(**config: object) -> CalculationDetail:
    now = datetime.now(UTC)
    return CalculationDetail(
        id=7, name="base", owner_id=1, cluster_id=2, logical_queue="q", code="siesta",
        state="completed", approved=True, priority=5, created_at=now, molecule_id=None,
        configuration={"inputs": {"a.fdf": {"bytes": 3}}, **config}, analyses=["energy"],
    )  # fmt: skip


def test_a_clone_resends_inputs_and_applies_changes() -> None:
    body = clone_body(_detail(parameters={"M": "100 Ry"}, binary_inputs={"e.TSHS": "ab"}),
                      {"a.fdf": "text"}, {"parameters.M": "200 Ry"})  # fmt: skip
    assert body["configuration"]["inputs"] == {"a.fdf": "text"}
    assert body["configuration"]["parameters"] == {"M": "200 Ry"}
    assert body["configuration"]["binary_inputs"] == {"e.TSHS": "ab"}
    assert body["name"] == "base (clone of #7)"
    assert "priority" not in body  # a moderator's priority is not copied
    assert body["analyses"] == ["energy"]


def _cluster(cid: int, name: str, *queues: str) -> Cluster:
    return Cluster.model_validate({
        "id": cid, "name": name, "scheduler": "slurm", "access_mode": "ssh",
        "scratch_root": "/s", "enabled": True, "require_approval": False, "online": True,
        "queues": [{"id": i, "cluster_id": cid, "logical_queue": q, "partition": "p"}
                   for i, q in enumerate(queues)],
    })  # fmt: skip


def test_the_target_is_the_only_one_or_named() -> None:
    one = [_cluster(1, "laptop", "default")]
    assert pick_target(one, None, None)[0].id == 1
    assert pick_target(one, None, None)[1] == "default"
    two = [*one, _cluster(2, "hpc1", "short", "long")]
    assert pick_target(two, "hpc1", "long")[0].id == 2
    assert pick_target(two, "2", "short")[0].name == "hpc1"
    with pytest.raises(ClientError, match=r"name the cluster .*hpc1, laptop"):
        pick_target(two, None, None)
    with pytest.raises(ClientError, match=r"name the queue .*long, short"):
        pick_target(two, "hpc1", None)
    with pytest.raises(ClientError, match="no queue 'x'"):
        pick_target(two, "hpc1", "x")
    with pytest.raises(ClientError, match="no cluster 'mars'"):
        pick_target(two, "mars", None)


def test_sse_events_are_parsed_line_by_line() -> None:
    parser = SseParser()
    lines = ["retry: 3000", "", "id: 5", "event: log", 'data: {"a":', "data: 1}", "",
             ": keepalive", "", "event: end", "data: {}", ""]  # fmt: skip
    events = [e for e in (parser.feed(ln) for ln in lines) if e is not None]
    assert events == [("log", '{"a":\n1}', "5"), ("end", "{}", "5")]


def test_api_errors_and_cookies_are_read_from_responses() -> None:
    import httpx

    req = httpx.Request("GET", "http://x/calculations/1")
    resp = httpx.Response(404, json={"detail": "calculation 1 does not exist", "code": "x"},
                          request=req)  # fmt: skip
    err = api_error(resp)
    assert (err.status_code, err.message, err.code) == (404, "calculation 1 does not exist", "x")
    assert str(err) == "calculation 1 does not exist (HTTP 404)"
    fastapi_422 = httpx.Response(422, json={"detail": [{"loc": ["body", "name"], "msg": "bad"}]},
                                 request=req)  # fmt: skip
    assert api_error(fastapi_422).message == "name: bad"
    html = httpx.Response(502, text="<html>bad gateway</html>", request=req)
    assert api_error(html).message == "Bad Gateway"
    limited = httpx.Response(429, json={"detail": "slow down"}, headers={"Retry-After": "7"},
                             request=req)  # fmt: skip
    assert api_error(limited).retry_after == 7
    cookie = httpx.Response(200, headers=[
        ("set-cookie", "other=1; Path=/"),
        ("set-cookie", "hpcgate_refresh=abc.def; HttpOnly; Path=/auth; Secure; SameSite=strict"),
    ], request=req)  # fmt: skip
    assert refresh_cookie(cookie) == "abc.def"


def test_the_credential_file_is_private_and_atomic(tmp_path: Path) -> None:
    store = CredentialStore(tmp_path / "cfg" / "hpcgate" / "credentials.json")
    assert store.get("http://a") is None
    store.put(Login("http://a", "tok", 1e12, "ref", "me@x"))
    store.put(Login("http://b", "tok2", 1e12))
    assert store.path.stat().st_mode & 0o777 == 0o600
    assert store.get("http://a/") == Login("http://a", "tok", 1e12, "ref", "me@x")
    assert store.current_url() == "http://b"
    assert [p.name for p in store.path.parent.iterdir() if p.name.startswith(".")] == []
    os.chmod(store.path, 0o644)
    store.get("http://a")
    assert store.path.stat().st_mode & 0o777 == 0o600
    assert store.remove("http://b")
    assert store.current_url() is None
    assert json.loads(store.path.read_text())["servers"].keys() == {"http://a"}
    store.path.write_text("{not json")
    with pytest.raises(ClientError, match="log in again"):
        store.get("http://a")
    with pytest.raises(ClientError, match="must start with http"):
        store.get("ftp://a")
