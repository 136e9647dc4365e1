"""Array helpers for ``extract``: keep what travels back from the cluster small.

Kept apart from ``analyses.base`` because it imports numpy, which the catalogue doesn't need.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from analyses.base import MAX_POINTS
from analyses.results import rounded

__all__ = ["bin_average", "downsample_indices", "interp_at", "rounded_list"]

FloatArray = NDArray[np.float64]


def downsample_indices(n: int, max_points: int = MAX_POINTS) -> NDArray[np.intp]:
    """Evenly spaced indices keeping the first and the last point."""
    if n <= max_points:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, max_points).round().astype(np.intp))


def bin_average(
    x: ArrayLike, ys: Sequence[ArrayLike], max_points: int = MAX_POINTS
) -> tuple[FloatArray, list[FloatArray]]:
    """Average consecutive points into at most ``max_points`` bins.

    Averaging (not striding) keeps peaks' areas, which is what a DOS or a transmission
    integral needs; x is averaged the same way so bins stay centred.
    """
    xa = np.asarray(x, dtype=float)
    arrays = [np.asarray(y, dtype=float) for y in ys]
    n = xa.shape[0]
    if n <= max_points:
        return xa, arrays
    edges = np.linspace(0, n, max_points + 1).round().astype(np.intp)
    counts = np.diff(edges).astype(float)
    starts = edges[:-1]

    def avg(a: FloatArray) -> FloatArray:
        return np.asarray(np.add.reduceat(a, starts, axis=-1) / counts, dtype=float)

    return avg(xa), [avg(a) for a in arrays]


def interp_at(x: ArrayLike, y: ArrayLike, at: float) -> float | None:
    """y(at) by linear interpolation; None outside the sampled range."""
    xa = np.asarray(x, dtype=float)
    ya = np.asarray(y, dtype=float)
    if xa.size == 0 or at < float(xa.min()) or at > float(xa.max()):
        return None
    order = np.argsort(xa)
    return float(np.interp(at, xa[order], ya[order]))


def rounded_list(values: ArrayLike, digits: int = 6) -> list[float | None]:
    return rounded(np.asarray(values, dtype=float).ravel().tolist(), digits)
