"""Every API call the clients make, once, as an ``Op`` (path, query, body, answer model)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from hpcgate.client._core import Op, create_op, model, model_list, nothing, raw_bytes, raw_json
from hpcgate.client.models import (
    AnalysisInfo,
    CalculationCreate,
    CalculationDetail,
    CalculationPage,
    Cluster,
    LogPage,
    OutputListing,
    Preview,
    Results,
    StepDetail,
    StoredInput,
    Token,
    User,
)

ReportFormat = Literal["html", "pdf", "json", "csv"]


def login(email: str, password: str) -> Op[Token]:
    return Op(
        "POST", "/auth/login", model(Token), json={"email": email, "password": password}, auth=False
    )


def me() -> Op[User]:
    return Op("GET", "/auth/me", model(User))


def logout(refresh_token: str | None) -> Op[None]:
    headers = {"Cookie": f"hpcgate_refresh={refresh_token}"} if refresh_token else {}
    return Op("POST", "/auth/logout", nothing, extra_headers=headers)


def clusters() -> Op[list[Cluster]]:
    return Op("GET", "/clusters", model_list(Cluster))


def analyses() -> Op[list[AnalysisInfo]]:
    return Op("GET", "/analyses", model_list(AnalysisInfo))


def create(body: CalculationCreate, files: Mapping[str, bytes] | None) -> Op[CalculationDetail]:
    op: Op[CalculationDetail] = create_op(body, files)
    return op


def preview(body: CalculationCreate) -> Op[Preview]:
    return Op("POST", "/calculations/preview", model(Preview), json=body.model_dump(mode="json"))


def upload(files: Mapping[str, bytes]) -> Op[list[StoredInput]]:
    def parse(resp: object) -> list[StoredInput]:
        data = raw_json(resp)  # type: ignore[arg-type]
        return [StoredInput.model_validate(f) for f in data["files"]]

    return Op("POST", "/inputs", parse, files=dict(files))


def calculations(
    *,
    state: str | None = None,
    owner: Literal["me", "all"] | None = "me",
    query: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> Op[CalculationPage]:
    return Op(
        "GET",
        "/calculations",
        model(CalculationPage),
        params={"state": state, "owner": owner, "q": query, "limit": limit, "offset": offset},
    )


def calculation(calc_id: int) -> Op[CalculationDetail]:
    return Op("GET", f"/calculations/{int(calc_id)}", model(CalculationDetail))


def input_text(calc_id: int, name: str) -> Op[str]:
    from urllib.parse import quote

    return Op(
        "GET",
        f"/calculations/{int(calc_id)}/inputs/{quote(name, safe='')}",
        lambda r: str(r.json()["text"]),
    )


def cancel(calc_id: int) -> Op[CalculationDetail]:
    return Op("POST", f"/calculations/{int(calc_id)}/cancel", model(CalculationDetail))


def results(calc_id: int) -> Op[Results]:
    return Op("GET", f"/calculations/{int(calc_id)}/results", model(Results))


def step(step_id: int) -> Op[StepDetail]:
    return Op("GET", f"/steps/{int(step_id)}", model(StepDetail))


def logs(
    *,
    calculation_id: int | None = None,
    level: str | None = None,
    source: str | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> Op[LogPage]:
    return Op(
        "GET",
        "/logs",
        model(LogPage),
        params={
            "calculation_id": calculation_id,
            "level": level,
            "source": source,
            "limit": limit,
            "cursor": cursor,
        },
    )


def report(calc_id: int, fmt: ReportFormat) -> Op[bytes]:
    if fmt not in ("html", "pdf", "json", "csv"):
        raise ValueError(f"unknown report format {fmt!r}")
    return Op("GET", f"/calculations/{int(calc_id)}/report.{fmt}", raw_bytes)


def _step_path(calc_id: int, step: int) -> str:
    return f"/calculations/{int(calc_id)}/steps/{int(step)}"


def list_outputs(calc_id: int, step: int, path: str = "") -> Op[OutputListing]:
    return Op(
        "GET", f"{_step_path(calc_id, step)}/outputs", model(OutputListing),
        params={"path": path or None},
    )


def output_file(calc_id: int, step: int, path: str) -> Op[bytes]:
    from urllib.parse import quote

    # Dot segments percent-encoded: sent as given (the API refuses them), never resolved
    # by the URL layer into another route.
    quoted = "/".join(
        quote(part, safe="").replace(".", "%2E") if part in (".", "..") else quote(part, safe="")
        for part in path.split("/")
    )
    return Op("GET", f"{_step_path(calc_id, step)}/outputs/{quoted}", raw_bytes)


def output_tail(
    calc_id: int, step: int, file: str | None, offset: int | None, max_duration_s: float
) -> Op[None]:
    return Op(
        "GET",
        f"{_step_path(calc_id, step)}/tail",
        nothing,
        params={"file": file, "offset": offset, "max_duration_s": max_duration_s},
    )
