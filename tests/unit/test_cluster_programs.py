"""``options.programs``: strict checks of the paths that reach job scripts, and their lookup."""

from __future__ import annotations

from typing import Any

import pytest

from hpcgate.engine.programs import check_cluster_options, check_programs, resolve_program


def test_absolute_clean_paths_are_accepted() -> None:
    value = {"siesta": "/opt/siesta-4.1/bin/siesta", "tbtrans": "/opt/siesta-4.1/bin/tbtrans",
             "pw.x": "/usr/bin/pw.x"}  # fmt: skip
    assert check_programs(value) == value


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([], "must be an object"),
        ({"siesta": "bin/siesta"}, "absolute path"),
        ({"siesta": 3}, "absolute path"),
        ({"siesta": "/opt/siesta bin/siesta"}, "no spaces or shell characters"),
        ({"siesta": "/opt/siesta;rm -rf ~"}, "no spaces or shell characters"),
        ({"siesta": "/opt/$(id)/siesta"}, "no spaces or shell characters"),
        ({"siesta": "/opt/`id`/siesta"}, "no spaces or shell characters"),
        ({"siesta": "/opt/siesta\n/bin"}, "no spaces or shell characters"),
        ({"siesta": "/opt/../bin/siesta"}, "normalised"),
        ({"siesta": "/opt//siesta"}, "normalised"),
        ({"siesta": "/opt/siesta/"}, "normalised"),
        ({"siesta": "/" + "a" * 1100}, "no spaces"),
        ({"bad name": "/opt/x"}, "program name"),
        ({"-x": "/opt/x"}, "program name"),
        ({f"p{i}": "/opt/x" for i in range(40)}, "more than 32"),
    ],
)
def test_bad_programs_are_refused(value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_programs(value)


def test_cluster_options_check_only_programs() -> None:
    opts = {"key_filename": "/k", "programs": {"siesta": "/opt/s/siesta"}}
    assert check_cluster_options(opts) == opts
    assert check_cluster_options({"launcher": "srun"}) == {"launcher": "srun"}
    with pytest.raises(ValueError, match="absolute path"):
        check_cluster_options({"programs": {"siesta": "siesta"}})
    with pytest.raises(ValueError, match="options must be an object"):
        check_cluster_options(["x"])


def test_resolve_uses_the_step_program_then_the_code_default() -> None:
    programs = {"siesta": "/opt/s/siesta", "tbtrans": "/opt/s/tbtrans", "pw.x": "/opt/qe/pw.x"}
    assert resolve_program("siesta", {}, programs) == "/opt/s/siesta"
    assert resolve_program("siesta", {"program": "tbtrans"}, programs) == "/opt/s/tbtrans"
    assert resolve_program("qe", {}, programs) == "/opt/qe/pw.x"
    assert resolve_program("generic", {}, programs) is None
    assert resolve_program("siesta", {}, {}) is None  # found on PATH by the job
    assert resolve_program("siesta", {"program": "transiesta"}, programs) is None
