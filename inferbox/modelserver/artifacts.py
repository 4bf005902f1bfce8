"""Model artifacts, trained once from datasets shipped with scikit-learn and cached on disk.

- ``iris``: logistic regression on the iris dataset; the same classes as KServe's public
  ``gs://kfserving-examples/models/sklearn/1.0/model`` example (setosa 0, versicolor 1, virginica 2).
- ``iris-2``: a second iris model (a random forest), standing in for KServe's
  ``gs://kfserving-examples/models/sklearn/1.0/model-2`` canary example: the same classes, another
  artifact, so a canary revision really serves a different model.
- ``digits``: an image classifier on scikit-learn's 8x8 handwritten digits (an image tensor in,
  the digit class out), standing in for a PyTorch image model without a multi-GB install.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import joblib
import sklearn

from inferbox.model_kinds import PREDICTIVE_ARTIFACTS

ARTIFACTS = PREDICTIVE_ARTIFACTS


def cache_dir() -> Path:
    base = os.environ.get("INFERBOX_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "inferbox"
    )
    return Path(base) / "models" / f"sklearn-{sklearn.__version__}"


def _train(name: str) -> Any:
    if name == "iris":
        from sklearn.datasets import load_iris
        from sklearn.linear_model import LogisticRegression

        x, y = load_iris(return_X_y=True)
        return LogisticRegression(max_iter=500).fit(x, y)
    if name == "iris-2":
        from sklearn.datasets import load_iris
        from sklearn.ensemble import RandomForestClassifier

        x, y = load_iris(return_X_y=True)
        return RandomForestClassifier(n_estimators=25, random_state=7).fit(x, y)
    if name == "digits":
        from sklearn.datasets import load_digits
        from sklearn.neural_network import MLPClassifier

        x, y = load_digits(return_X_y=True)
        return MLPClassifier(hidden_layer_sizes=(64,), max_iter=400, random_state=7).fit(x / 16.0, y)
    raise ValueError(f"unknown model artifact {name!r}; known: {', '.join(ARTIFACTS)}")


def artifact_path(name: str) -> Path:
    """The cached artifact, trained on first use (written atomically so parallel starts are safe)."""
    path = cache_dir() / f"{name}.joblib"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        joblib.dump(_train(name), tmp)
        os.replace(tmp, path)
    return path
