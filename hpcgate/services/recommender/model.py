"""The quantile model: p50 and p90 of elapsed time and peak memory from input features.

Pure (no database): :func:`train` takes the history (:class:`~.history.Run`, oldest
first) and returns a :class:`Trained` model with its held-out evidence; :func:`predict`
answers for one new calculation. Targets are learnt in log space (run times span orders
of magnitude); features are ``log1p`` of the code's numeric features plus one-hot
columns for the calculation kind and the (cluster, partition) the run used. Models stay
in memory on the server: nothing is pickled, nothing is loaded from user data.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from sklearn.ensemble import GradientBoostingRegressor

from hpcgate.services.recommender.history import Run

__all__ = ["MIN_RUNS", "Heldout", "Trained", "predict", "similar_runs", "train"]

#: Fewer finished runs of a code than this: no model, the queue's defaults answer.
MIN_RUNS = 20
#: The last fifth of the history (by finish time) is held out to measure the error.
HELDOUT_FRACTION = 0.2
ALPHAS = (0.5, 0.9)
#: Two runs are "similar" when every feature is within this factor of the other's.
NEAR_FACTOR = 1.5

Matrix = NDArray[np.float64]


@dataclass(frozen=True)
class Encoder:
    features: tuple[str, ...]
    kinds: tuple[str, ...]
    places: tuple[tuple[int, str], ...]

    @classmethod
    def fit(cls, runs: Sequence[Run], features: tuple[str, ...]) -> Encoder:
        return cls(
            features=features,
            kinds=tuple(sorted({r.kind for r in runs})),
            places=tuple(sorted({(r.cluster_id, r.partition) for r in runs})),
        )

    def numeric(self, values: dict[str, float]) -> Matrix:
        raw = np.array([max(0.0, values.get(f, 0.0)) for f in self.features], dtype=np.float64)
        out: Matrix = np.log1p(raw)
        return out

    def row(self, values: dict[str, float], kind: str, place: tuple[int, str]) -> Matrix:
        kinds = [1.0 if kind == k else 0.0 for k in self.kinds]
        places = [1.0 if place == p else 0.0 for p in self.places]
        return np.concatenate([self.numeric(values), kinds, places])

    def matrix(self, runs: Sequence[Run]) -> Matrix:
        return np.array([self.row(r.features, r.kind, (r.cluster_id, r.partition)) for r in runs])


@dataclass(frozen=True)
class Heldout:
    """Error on the held-out (latest) runs of a model trained on the earlier ones."""

    runs: int
    mae: float  # of the p50, in the target's unit (s or MB)
    coverage_p90: float  # share of held-out runs at or below their p90


@dataclass
class Quantiles:
    models: dict[float, GradientBoostingRegressor] = field(default_factory=dict)

    @classmethod
    def fit(cls, x: Matrix, y_log: Matrix) -> Quantiles:
        out = cls()
        for alpha in ALPHAS:
            model = GradientBoostingRegressor(
                loss="quantile",
                alpha=alpha,
                n_estimators=100,
                max_depth=3,
                learning_rate=0.1,
                min_samples_leaf=3,
                random_state=0,
            )
            out.models[alpha] = model.fit(x, y_log)
        return out

    def predict(self, x: Matrix) -> tuple[Matrix, Matrix]:
        """(p50, p90) in the target's unit; p90 never below p50."""
        p50 = np.exp(self.models[0.5].predict(x))
        p90 = np.maximum(np.exp(self.models[0.9].predict(x)), p50)
        return p50, p90


@dataclass
class Trained:
    encoder: Encoder
    runs: list[Run]
    time: Quantiles
    memory: Quantiles | None
    time_heldout: Heldout | None
    memory_heldout: Heldout | None
    numeric: Matrix  # log1p features of every run, for similarity


def _heldout(x: Matrix, y_log: Matrix) -> Heldout | None:
    cut = int(len(y_log) * (1 - HELDOUT_FRACTION))
    if cut < MIN_RUNS // 2 or len(y_log) - cut < 3:
        return None
    early = Quantiles.fit(x[:cut], y_log[:cut])
    p50, p90 = early.predict(x[cut:])
    actual = np.exp(y_log[cut:])
    return Heldout(
        runs=len(actual),
        mae=float(np.mean(np.abs(p50 - actual))),
        coverage_p90=float(np.mean(actual <= p90)),
    )


def train(runs: Sequence[Run], features: tuple[str, ...]) -> Trained | None:
    """Fit p50/p90 of time (and memory where MaxRSS is known); None below :data:`MIN_RUNS`."""
    runs = list(runs)
    if len(runs) < MIN_RUNS:
        return None
    encoder = Encoder.fit(runs, features)
    x = encoder.matrix(runs)
    y_time = np.log(np.array([max(1.0, r.elapsed_s) for r in runs]))
    with_mem = [i for i, r in enumerate(runs) if r.max_rss_mb]
    memory = memory_heldout = None
    if len(with_mem) >= MIN_RUNS:
        y_mem = np.log(np.array([max(1.0, runs[i].max_rss_mb or 1.0) for i in with_mem]))
        memory = Quantiles.fit(x[with_mem], y_mem)
        memory_heldout = _heldout(x[with_mem], y_mem)
    return Trained(
        encoder=encoder,
        runs=runs,
        time=Quantiles.fit(x, y_time),
        memory=memory,
        time_heldout=_heldout(x, y_time),
        memory_heldout=memory_heldout,
        numeric=np.array([encoder.numeric(r.features) for r in runs]),
    )


@dataclass(frozen=True)
class Prediction:
    p50_s: float
    p90_s: float
    p50_mb: float | None
    p90_mb: float | None


def predict(
    model: Trained, values: dict[str, float], kind: str, place: tuple[int, str]
) -> Prediction:
    x = model.encoder.row(values, kind, place).reshape(1, -1)
    p50, p90 = model.time.predict(x)
    m50 = m90 = None
    if model.memory is not None:
        mem50, mem90 = model.memory.predict(x)
        m50, m90 = float(mem50[0]), float(mem90[0])
    return Prediction(float(p50[0]), float(p90[0]), m50, m90)


def similar_runs(model: Trained, values: dict[str, float], place: tuple[int, str]) -> int:
    """Runs on the same cluster and partition whose every feature is within
    :data:`NEAR_FACTOR` of the new calculation's (``log1p`` distance)."""
    same = np.array([(r.cluster_id, r.partition) == place for r in model.runs])
    if not same.any():
        return 0
    near = np.abs(model.numeric - model.encoder.numeric(values)) <= math.log(NEAR_FACTOR)
    return int(np.sum(same & near.all(axis=1)))
