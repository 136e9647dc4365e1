"""The ML model registry: admins register, edit and delete models; the ML-API reads the
registrations and reports each model's state and health (docs/ml-api.md).

The main API owns these rows; the containers themselves are the ML-API's business.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hpcgate.db.models.ml import MlModel
from hpcgate.errors import Conflict, NotFound

# States in which the ML-API runs the model's container: deleting it then is refused.
ACTIVE_MODEL_STATES = frozenset({"starting", "running", "restarting"})


def get_model(session: Session, model_id: int) -> MlModel:
    model = session.get(MlModel, model_id)
    if model is None:
        raise NotFound(f"model {model_id} not found")
    return model


def list_models(session: Session, name: str | None = None) -> list[MlModel]:
    """Registrations by name and version; ``name`` filters on the exact name."""
    stmt = select(MlModel).order_by(MlModel.name, MlModel.version, MlModel.id)
    if name:
        stmt = stmt.where(MlModel.name == name.replace("\x00", ""))
    return list(session.scalars(stmt))


def all_models(session: Session) -> list[MlModel]:
    """Every registration, in registration order (what the ML-API loads)."""
    return list(session.scalars(select(MlModel).order_by(MlModel.id)))


def register_model(
    session: Session,
    *,
    name: str,
    version: str,
    image: str,
    description: str,
    resources: Mapping[str, Any],
    environment: Mapping[str, Any],
) -> MlModel:
    """A new registration; a name and version already registered is a conflict."""
    exists = session.scalar(
        select(MlModel.id).where(MlModel.name == name, MlModel.version == version)
    )
    if exists is not None:
        raise Conflict(f"model {name} {version} is already registered (id {exists})")
    model = MlModel(
        name=name,
        version=version,
        image=image,
        description=description,
        resources=dict(resources),
        environment=dict(environment),
    )
    session.add(model)
    session.flush()
    session.refresh(model)
    return model


def update_model(
    session: Session,
    model_id: int,
    *,
    image: str | None = None,
    description: str | None = None,
    resources: Mapping[str, Any] | None = None,
    environment: Mapping[str, Any] | None = None,
) -> MlModel:
    """Change what is given (None = keep); takes effect at the model's next run."""
    model = get_model(session, model_id)
    if image is not None:
        model.image = image
    if description is not None:
        model.description = description
    if resources is not None:
        model.resources = dict(resources)
    if environment is not None:
        model.environment = dict(environment)
    session.flush()
    session.refresh(model)
    return model


def delete_model(session: Session, model_id: int) -> None:
    """Refused while the ML-API runs it (stop it there first); its predictions go too."""
    model = get_model(session, model_id)
    if model.state in ACTIVE_MODEL_STATES:
        raise Conflict(f"model {model_id} is {model.state}: stop it in the ML-API first")
    session.delete(model)


def report_state(
    session: Session,
    model_id: int,
    *,
    state: str,
    health: str,
    restarts: int,
    last_error: str | None,
) -> MlModel:
    """The ML-API's report after a change of state or health (row locked: reports race)."""
    model = session.get(MlModel, model_id, with_for_update=True)
    if model is None:
        raise NotFound(f"model {model_id} not found")
    model.state = state
    model.health = health
    model.restarts = restarts
    model.last_error = last_error
    model.last_reported_at = datetime.now(UTC)
    session.flush()
    session.refresh(model)
    return model
