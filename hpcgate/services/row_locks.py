"""A calculation's row locks, in the one order every writer takes them (docs/engine.md,
"Lock order"): its steps by id, then the calculation. The harvest and the dispatcher's step
store lock a step before its calculation; a writer that took the calculation first and then
its steps deadlocked with them."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from hpcgate.db.models import Calculation, Step

__all__ = ["lock_calculation_with_steps"]


def lock_calculation_with_steps(s: Session, calc_id: int) -> Calculation | None:
    """Lock the calculation's steps (id order), then the calculation; None if it is gone."""
    s.scalars(
        select(Step).where(Step.calculation_id == calc_id).order_by(Step.id).with_for_update()
    ).all()
    return s.scalar(select(Calculation).where(Calculation.id == calc_id).with_for_update())
