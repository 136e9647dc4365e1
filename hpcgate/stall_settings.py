"""``settings.stall``: stall detection of running steps (``services/stall.py``).

A step is stalled when for ``after_s`` seconds its output has not grown and no SCF or
geometry marker was printed, or its CPU use stayed below ``min_cpu_ratio`` CPU seconds
per wall second (0: this test is off). ``action``: ``notify`` (owner and admins), or
``cancel_retry`` (cancel the job and hand the step to the recovery ladder). A calculation
overrides any of them with ``configuration.stall``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class StallSettings(BaseModel):
    after_s: float = Field(default=1800.0, ge=1, le=1e7)
    min_cpu_ratio: float = Field(default=0.02, ge=0, le=1)
    action: Literal["notify", "cancel_retry"] = "notify"
