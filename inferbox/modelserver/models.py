"""KServe models for the artifacts: V1 (``instances``) and V2 (Open Inference Protocol) inputs.

Malformed inputs raise ``InvalidInput`` so that KServe answers 400, never 500.
"""

from __future__ import annotations

from typing import Any

import joblib
import numpy as np
from kserve import Model
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferRequest
from kserve.utils.utils import get_predict_input, get_predict_response

from inferbox.modelserver.artifacts import artifact_path

# Expected feature layout per artifact: (features per instance, accepted instance shapes).
FEATURES = {"iris": 4, "iris-2": 4, "digits": 64}


class ArtifactModel(Model):  # type: ignore[misc]
    def __init__(self, name: str, artifact: str, validate: bool = True) -> None:
        super().__init__(name)
        self.artifact = artifact
        self.validate_inputs = validate
        self.estimator: Any = None

    def load(self) -> bool:
        self.estimator = joblib.load(artifact_path(self.artifact))
        self.ready = True
        return True

    def _features(self, payload: dict[str, Any] | InferRequest) -> np.ndarray:
        try:
            raw = get_predict_input(payload)
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"request has no usable input tensor: {exc}") from exc
        try:
            array = np.asarray(raw, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"inputs must be numeric: {exc}") from exc
        width = FEATURES[self.artifact]
        if array.ndim == 0 or array.shape[0] == 0:
            raise InvalidInput("at least one instance is required")
        flat = array.reshape(array.shape[0], -1)
        if flat.shape[1] != width:
            raise InvalidInput(f"each instance must have {width} values for model {self.name}, got {flat.shape[1]}")
        if not np.isfinite(flat).all():
            raise InvalidInput("inputs must be finite numbers")
        return flat / 16.0 if self.artifact == "digits" else flat

    async def predict(
        self,
        payload: dict[str, Any] | InferRequest,
        headers: dict[str, str] | None = None,  # noqa: ARG002 - KServe's Model.predict signature
        response_headers: dict[str, str] | None = None,  # noqa: ARG002 - KServe's Model.predict signature
    ) -> Any:
        if not self.validate_inputs:
            features = np.asarray(get_predict_input(payload), dtype=np.float64)
            rows = features.reshape(features.shape[0], -1)
            return get_predict_response(
                payload, self.estimator.predict(rows / 16.0 if self.artifact == "digits" else rows), self.name
            )
        if isinstance(payload, dict) and not isinstance(payload.get("instances"), list):
            raise InvalidInput('a V1 request body needs an "instances" list')
        predictions = self.estimator.predict(self._features(payload))
        return get_predict_response(payload, predictions, self.name)
