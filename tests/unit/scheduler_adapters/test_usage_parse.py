"""The core-hour columns: sacct CPUTimeRAW/AllocCPUS/ReqMem and PBS ncpus/mem (issue 18)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scheduler_adapters.errors import OutputParseError
from scheduler_adapters.pbs import usage as pbs_usage
from scheduler_adapters.slurm import parse
from scheduler_adapters.slurm.commands import SACCT_BASE_FIELDS, SACCT_FIELDS, SEP
from scheduler_adapters.slurm.usage import optional_usage_of, parse_req_mem_kb, usage_of

# A 2-CPU job as Slurm 22.05 prints it with our --format (the cluster in scripts/services).
ROW = SEP.join(
    ["41", "41", "burn", "COMPLETED", "0:0", "00:00:03", "00:02.457", "", "vm",
     "2026-12-07T14:00:00", "2026-12-07T14:00:03", "6", "2", "200M"]
)  # fmt: skip
STEP = SEP.join(
    ["41.batch", "41.batch", "batch", "COMPLETED", "0:0", "00:00:03", "00:02.457", "5120K",
     "vm", "2026-12-07T14:00:00", "2026-12-07T14:00:03", "6", "2", ""]
)  # fmt: skip


def test_sacct_row_carries_usage() -> None:
    [rec] = parse.parse_sacct(ROW + "\n" + STEP)
    assert (rec.alloc_cpus, rec.core_seconds, rec.req_mem_kb) == (2, 6.0, 200 * 1024)
    assert rec.cpu_time_s == pytest.approx(2.457)
    assert rec.max_rss_kb == 5120  # max over the job's steps
    assert rec.elapsed_s == 3


def test_rows_without_usage_columns_still_parse() -> None:
    old = SEP.join(ROW.split(SEP)[: len(SACCT_BASE_FIELDS)])
    [rec] = parse.parse_sacct(old)
    assert (rec.alloc_cpus, rec.core_seconds, rec.req_mem_kb) == (None, None, None)
    assert len(SACCT_FIELDS) == len(SACCT_BASE_FIELDS) + 3


def test_an_odd_usage_column_keeps_the_job_state() -> None:
    """sacct 22.05 prints ``ReqMem`` ``16?`` on some allocation rows: the record's state
    still arrives (a harvest must not stop on an optional column); only that column is unknown."""
    odd = SEP.join([*ROW.split(SEP)[:-1], "16?"])
    [rec] = parse.parse_sacct(odd + "\n" + STEP)
    assert rec.native_state == "COMPLETED"
    assert (rec.alloc_cpus, rec.core_seconds, rec.req_mem_kb) == (2, 6.0, None)


@pytest.mark.parametrize(
    ("text", "cpus", "kb"),
    [
        ("200M", 2, 204800),
        ("4G", None, 4 * 1024 * 1024),
        ("1000Mc", 4, 4000 * 1024),  # per CPU (Slurm < 21.08)
        ("2Gn", 4, 2 * 1024 * 1024),  # per node
        ("512K", 1, 512),
        ("0", 1, None),
        ("", 1, None),
        ("Unknown", 1, None),
    ],
)
def test_req_mem(text: str, cpus: int | None, kb: int | None) -> None:
    assert parse_req_mem_kb(text, cpus) == kb


@pytest.mark.parametrize("text", ["12X", "-3M", "M", "1.2.3G", "12 M"])
def test_req_mem_refuses_garbage(text: str) -> None:
    with pytest.raises(OutputParseError):
        parse_req_mem_kb(text, 1)


@pytest.mark.parametrize("bad", [{"AllocCPUS": "two"}, {"CPUTimeRAW": "1.5"}, {"ReqMem": "x"}])
def test_usage_refuses_garbage(bad: dict[str, str]) -> None:
    with pytest.raises(OutputParseError):
        usage_of(bad)


@given(st.text(max_size=30), st.text(max_size=30), st.text(max_size=30))
def test_usage_never_raises_anything_else(raw: str, cpus: str, mem: str) -> None:
    with contextlib.suppress(OutputParseError):
        out = usage_of({"CPUTimeRAW": raw, "AllocCPUS": cpus, "ReqMem": mem})
        assert out["alloc_cpus"] is None or out["alloc_cpus"] >= 0
        assert out["core_seconds"] is None or out["core_seconds"] >= 0
        assert out["req_mem_kb"] is None or out["req_mem_kb"] > 0


@given(st.integers(0, 10**9), st.integers(1, 4096), st.integers(1, 10**6))
def test_usage_round_trip(seconds: int, cpus: int, mem_mb: int) -> None:
    out = usage_of({"CPUTimeRAW": str(seconds), "AllocCPUS": str(cpus), "ReqMem": f"{mem_mb}M"})
    assert out == {"alloc_cpus": cpus, "core_seconds": float(seconds), "req_mem_kb": mem_mb * 1024}


# ----------------------------------------------------------------------------- PBS
def _getter(attrs: dict[str, str]):  # type: ignore[no-untyped-def]
    return attrs.get


@pytest.mark.parametrize(
    ("attrs", "cpus"),
    [
        ({"Resource_List.ncpus": "2"}, 2),  # Slurm's Torque wrappers, PBS Pro
        ({"resources_used.ncpus": "4", "Resource_List.ncpus": "2"}, 4),
        ({"Resource_List.nodes": "2:ppn=4"}, 8),  # Torque
        ({"Resource_List.nodes": "n1:ppn=2+n2:ppn=3"}, 5),
        ({"Resource_List.nodes": "1"}, 1),
        ({}, None),
        ({"Resource_List.ncpus": "lots"}, None),
    ],
)
def test_pbs_ncpus(attrs: dict[str, str], cpus: int | None) -> None:
    assert pbs_usage.ncpus(_getter(attrs)) == cpus


def test_pbs_usage_is_walltime_times_cpus() -> None:
    out = pbs_usage.usage_of(_getter({"Resource_List.ncpus": "2", "Resource_List.mem": "4gb"}), 30)
    assert out == {"alloc_cpus": 2, "core_seconds": 60.0, "req_mem_kb": 4 * 1024 * 1024}
    assert pbs_usage.usage_of(_getter({"Resource_List.mem": "a lot"}), None) == {
        "alloc_cpus": None,
        "core_seconds": None,
        "req_mem_kb": None,
    }


@given(st.dictionaries(st.sampled_from(["Resource_List.ncpus", "resources_used.ncpus",
                                        "Resource_List.nodes", "Resource_List.mem"]),
                       st.text(max_size=40)),
       st.none() | st.floats(0, 1e7))  # fmt: skip
def test_pbs_usage_never_raises(attrs: dict[str, str], walltime: float | None) -> None:
    out = pbs_usage.usage_of(_getter(attrs), walltime)
    assert out["alloc_cpus"] is None or out["alloc_cpus"] > 0


@pytest.mark.parametrize("odd", ["16?", "18446744073709551616.00", "lots"])
def test_an_odd_reqmem_costs_only_that_column(odd: str) -> None:
    """sacct 22.05 prints ReqMem oddly on some reads (``16?``, NO_VAL64 as a float): the
    allocation's CPUs and core-seconds are still known."""
    row = {"AllocCPUS": "2", "CPUTimeRAW": "14", "ReqMem": odd}
    assert optional_usage_of(row) == {"alloc_cpus": 2, "core_seconds": 14.0, "req_mem_kb": None}
    assert optional_usage_of({**row, "ReqMem": "512M"})["req_mem_kb"] == 512 * 1024
    assert optional_usage_of({**row, "AllocCPUS": "x", "ReqMem": "1000Mc"}) == {
        "alloc_cpus": None, "core_seconds": 14.0, "req_mem_kb": 1000 * 1024}  # fmt: skip
