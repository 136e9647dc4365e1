#!/usr/bin/env python3
"""Train the example model on the pw.x runs of ``data/qe_scf_runs.csv`` and export it.

Two heads, both linear so that the model server needs no numpy:

* **risk**: logistic regression for P(the SCF does not converge within electron_maxstep);
* **iterations**: ridge regression of log(SCF iterations), fitted on the converged runs.

Evaluation, printed and stored in ``model.json`` (``metrics``):

* a stratified 75/25 split (seeded): accuracy, ROC AUC, Brier score, against the
  majority-class baseline;
* leave-one-system-out: every system (H2, Fe, Si8...) is held out in turn and predicted by
  a model that never saw it - how the model does on chemistry it was not trained on;
* a non-linear reference (gradient boosting, same split) to show what a linear model leaves.

The exported model is refitted on all rows. Needs numpy and scikit-learn (the ``ml`` extra);
the image does not.

    .venv/bin/python ml/example_model/train.py            # writes ml/example_model/model.json
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import sklearn
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import accuracy_score, brier_score_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_score, train_test_split
from sklearn.preprocessing import StandardScaler

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from features import DESCRIPTORS, FEATURES, vectorize  # noqa: E402

NAME = "qe-scf-convergence"
VERSION = "1.0.0"
SEED = 20261130
# Iterations do not depend on electron_maxstep once the SCF converged: left out of that head.
ITER_EXCLUDE = {"log_maxstep"}


def _cell(value: str) -> Any:
    if value == "":
        return None
    try:
        number = float(value)
    except ValueError:
        return value
    return int(number) if number.is_integer() and "." not in value and "e" not in value else number


def load(path: Path) -> tuple[list[dict[str, Any]], dict[str, int]]:
    rows, skipped = [], {"incomplete": 0}
    with open(path, newline="") as fh:
        for raw in csv.DictReader(fh):
            row = {k: _cell(v) for k, v in raw.items()}
            if row["status"] == "incomplete":  # pw.x timed out or never started: no label
                skipped["incomplete"] += 1
                continue
            rows.append(row)
    return rows, skipped


def _linear_export(scaler: StandardScaler, coef: np.ndarray, intercept: float) -> dict[str, Any]:
    return {
        "mean": [round(float(v), 10) for v in scaler.mean_],
        "scale": [round(float(v), 10) for v in scaler.scale_],
        "coef": [round(float(v), 10) for v in coef],
        "intercept": round(float(intercept), 10),
    }


def fit_classifier(x: np.ndarray, y: np.ndarray, c: float) -> tuple[StandardScaler, Any]:
    scaler = StandardScaler().fit(x)
    clf = LogisticRegression(C=c, max_iter=5000).fit(scaler.transform(x), y)
    return scaler, clf


def choose_c(x: np.ndarray, y: np.ndarray) -> float:
    best, best_c = -1.0, 1.0
    for c in (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0):
        scaler = StandardScaler().fit(x)
        score = cross_val_score(
            LogisticRegression(C=c, max_iter=5000),
            scaler.transform(x),
            y,
            cv=StratifiedKFold(5, shuffle=True, random_state=SEED),
            scoring="neg_log_loss",
        ).mean()
        if score > best:
            best, best_c = score, c
    return best_c


def fit_iterations(x: np.ndarray, iters: np.ndarray) -> tuple[StandardScaler, np.ndarray, float]:
    keep = [i for i, f in enumerate(FEATURES) if f not in ITER_EXCLUDE]
    scaler = StandardScaler().fit(x)
    xs = scaler.transform(x)[:, keep]
    reg = Ridge(alpha=1.0).fit(xs, np.log(iters))
    coef = np.zeros(len(FEATURES))
    coef[keep] = reg.coef_
    return scaler, coef, float(reg.intercept_)


def predict_iterations(scaler: StandardScaler, coef: np.ndarray, b: float, x: np.ndarray) -> Any:
    return np.exp(scaler.transform(x) @ coef + b)


def dataset(rows: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(features, 1 = did NOT converge, system names, SCF iterations) per row."""
    x = np.array([vectorize({k: r.get(k) for k in DESCRIPTORS}) for r in rows])
    y = np.array([0 if r["converged"] else 1 for r in rows])
    systems = np.array([r["system"] for r in rows])
    iters = np.array([float(r["scf_iterations"] or 0) for r in rows])
    return x, y, systems, iters


def holdout_metrics(
    x: np.ndarray, y: np.ndarray, c: float, tr: np.ndarray, te: np.ndarray
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The risk head on the split, against the baseline, log_maxstep alone and a
    non-linear reference: (split metrics, reference metrics)."""
    scaler, clf = fit_classifier(x[tr], y[tr], c)
    p = clf.predict_proba(scaler.transform(x[te]))[:, 1]
    majority = max(float(np.mean(y[te])), 1 - float(np.mean(y[te])))
    split = {
        "train_rows": len(tr),
        "test_rows": len(te),
        "accuracy": round(float(accuracy_score(y[te], p >= 0.5)), 4),
        "roc_auc": round(float(roc_auc_score(y[te], p)), 4),
        "brier": round(float(brier_score_loss(y[te], p)), 4),
        "majority_baseline_accuracy": round(majority, 4),
    }
    # how much do the other descriptors add to "how many SCF steps are allowed"?
    only = [FEATURES.index("log_maxstep")]
    s1, c1 = fit_classifier(x[tr][:, only], y[tr], c)
    p1 = c1.predict_proba(s1.transform(x[te][:, only]))[:, 1]
    split["maxstep_only_accuracy"] = round(float(accuracy_score(y[te], p1 >= 0.5)), 4)
    split["maxstep_only_roc_auc"] = round(float(roc_auc_score(y[te], p1)), 4)
    gb = HistGradientBoostingClassifier(random_state=SEED).fit(x[tr], y[tr])
    pg = gb.predict_proba(x[te])[:, 1]
    reference = {
        "model": "HistGradientBoostingClassifier (not exported)",
        "accuracy": round(float(accuracy_score(y[te], pg >= 0.5)), 4),
        "roc_auc": round(float(roc_auc_score(y[te], pg)), 4),
    }
    return split, reference


def iterations_metrics(
    x: np.ndarray, y: np.ndarray, iters: np.ndarray, tr: np.ndarray, te: np.ndarray
) -> dict[str, Any]:
    """The iterations head on the converged runs of the same split."""
    conv_tr = tr[y[tr] == 0]
    conv_te = te[y[te] == 0]
    isc, icoef, ib = fit_iterations(x[conv_tr], iters[conv_tr])
    pred_it = predict_iterations(isc, icoef, ib, x[conv_te])
    err = np.abs(pred_it - iters[conv_te])
    return {
        "test_rows": len(conv_te),
        "mae_iterations": round(float(np.mean(err)), 2),
        "median_abs_error_iterations": round(float(np.median(err)), 2),
        "within_30_percent": round(float(np.mean(err <= 0.3 * iters[conv_te])), 4),
        "mean_iterations_in_test": round(float(np.mean(iters[conv_te])), 2),
    }


def leave_one_system_out(
    x: np.ndarray, y: np.ndarray, systems: np.ndarray, c: float
) -> dict[str, Any]:
    per_system: dict[str, dict[str, Any]] = {}
    hits = 0
    for name in sorted(set(systems)):
        hold = systems == name
        s2, c2 = fit_classifier(x[~hold], y[~hold], c)
        ph = c2.predict_proba(s2.transform(x[hold]))[:, 1]
        correct = int(np.sum((ph >= 0.5) == (y[hold] == 1)))
        hits += correct
        per_system[name] = {
            "rows": int(hold.sum()),
            "not_converged": int(y[hold].sum()),
            "accuracy": round(correct / int(hold.sum()), 4),
        }
    return {"accuracy": round(hits / len(y), 4), "per_system": per_system}


def export(
    x: np.ndarray, y: np.ndarray, iters: np.ndarray, c: float, metrics: dict[str, Any]
) -> dict[str, Any]:
    """The model document, both heads refitted on every row (``training`` added by main)."""
    scaler_all, clf_all = fit_classifier(x, y, c)
    conv = y == 0
    isc_all, icoef_all, ib_all = fit_iterations(x[conv], iters[conv])
    weights = sorted(zip(FEATURES, clf_all.coef_[0], strict=True), key=lambda t: -abs(float(t[1])))
    return {
        "name": NAME,
        "version": VERSION,
        "task": "P(pw.x SCF does not converge within electron_maxstep) and expected SCF iterations",
        "features": list(FEATURES),
        "descriptors": list(DESCRIPTORS),
        "classifier": {
            "kind": "logistic",
            **_linear_export(scaler_all, clf_all.coef_[0], clf_all.intercept_[0]),
            "threshold": 0.5,
            "C": c,
        },
        "iterations": {
            "kind": "exp(linear) of log-iterations (ridge)",
            **_linear_export(isc_all, icoef_all, ib_all),
        },
        "risk_bands": {"low": 0.2, "high": 0.6},
        "metrics": metrics,
        "top_weights": [[f, round(float(w), 3)] for f, w in weights[:8]],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=HERE / "data" / "qe_scf_runs.csv")
    ap.add_argument("--out", type=Path, default=HERE / "model.json")
    args = ap.parse_args(argv)

    rows, skipped = load(args.data)
    x, y, systems, iters = dataset(rows)
    statuses: dict[str, int] = {}
    for r in rows:
        statuses[r["status"]] = statuses.get(r["status"], 0) + 1

    c = choose_c(x, y)
    idx = np.arange(len(rows))
    tr, te = train_test_split(idx, test_size=0.25, stratify=y, random_state=SEED)
    split, reference = holdout_metrics(x, y, c, tr, te)
    metrics = {
        "holdout_split": split,
        "leave_one_system_out": leave_one_system_out(x, y, systems, c),
        "iterations_holdout": iterations_metrics(x, y, iters, tr, te),
        "nonlinear_reference": reference,
    }
    doc = export(x, y, iters, c, metrics)
    doc["training"] = {
        "rows": len(rows),
        "skipped": skipped,
        "statuses": statuses,
        "systems": sorted(set(systems.tolist())),
        "not_converged_fraction": round(float(np.mean(y)), 4),
        "data_sha256": hashlib.sha256(args.data.read_bytes()).hexdigest(),
        "sklearn": sklearn.__version__,
        "source": "pw.x (Quantum ESPRESSO 6.7, Debian) runs judged by hpcgate.codes.validation",
    }
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    print(json.dumps(doc["metrics"], indent=1))
    print("top weights:", doc["top_weights"])
    print(f"rows {len(rows)} (skipped {skipped}), statuses {statuses}, C={c}")
    print(f"wrote {args.out}")
    assert all(math.isfinite(v) for v in doc["classifier"]["coef"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
