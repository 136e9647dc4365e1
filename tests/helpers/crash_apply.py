"""Apply one reported observation in a separate process (so a test can SIGKILL it at a
crash point inside the harvest's transaction, e.g. ``after_retry_decided``).

Usage: python -m tests.helpers.crash_apply DATABASE_URL DATA_DIR CLUSTER_ID OBSERVATION_JSON
"""

from __future__ import annotations

import json
import sys

from hpcgate.db.session import session_scope
from hpcgate.engine.work import StepObservation
from hpcgate.services.harvest import apply_observations
from tests.helpers.crash_worker import tick_process


def main() -> None:
    with tick_process(sys.argv) as (_, factory, _conns, settings):
        obs = StepObservation.from_dict(json.loads(sys.argv[4]))
        with session_scope(factory) as s:
            apply_observations(s, int(sys.argv[3]), [obs], lost_after=3, settings=settings)


if __name__ == "__main__":
    main()
