"""Model registrations, as the main API keeps them (``ml_models`` rows, read with the ML-API key).

The main API is the truth for image, version, resources and environment; the copy here
lets listings and restarts go on while it is briefly unreachable, and ``run`` always reads
a fresh one.
"""

from __future__ import annotations

from typing import Any

from ml.errors import BadGateway
from ml.reporting import MainApiClient, MainApiError


class Registry:
    def __init__(self, main_api: MainApiClient | None) -> None:
        self.main_api = main_api
        self.entries: dict[int, dict[str, Any]] = {}
        self.error: str | None = None  # why the last refresh failed, if it did

    def get(self, model_id: int) -> dict[str, Any] | None:
        """The cached registration (no I/O)."""
        return self.entries.get(model_id)

    def refresh(self) -> bool:
        """Read every registration; False (cache kept) when the main API did not answer."""
        if self.main_api is None:
            return False
        try:
            models = self.main_api.list_models()
        except MainApiError as exc:
            self.error = str(exc)
            return False
        self.entries = {int(m["id"]): m for m in models if "id" in m}
        self.error = None
        return True

    def definition(self, model_id: int) -> dict[str, Any] | None:
        """The registration, fresh from the main API (cached copy if it is unreachable)."""
        if self.main_api is None:
            return self.entries.get(model_id)
        try:
            found = self.main_api.get_model(model_id)
        except MainApiError as exc:
            if model_id in self.entries:
                return self.entries[model_id]
            raise BadGateway(f"cannot read model {model_id} from the main API: {exc}") from None
        if found is None:
            self.entries.pop(model_id, None)
        else:
            self.entries[model_id] = found
        return found
