"""All tables; importing this package registers them on ``Base.metadata``."""

from hpcgate.db.models.accounts import ClusterAccount
from hpcgate.db.models.calculations import ArrayTask, Calculation, Molecule, Step, StepEdge
from hpcgate.db.models.cluster_telemetry import ClusterNode, PartitionSample
from hpcgate.db.models.clusters import Cluster, QueueMapping
from hpcgate.db.models.inputs import CalculationInput, InputBlob
from hpcgate.db.models.liveness import StepLiveness, TaskLiveness
from hpcgate.db.models.ml import MlModel, Prediction, PredictionValue
from hpcgate.db.models.notifications import NotificationOutbox
from hpcgate.db.models.outputs import OutputRequest
from hpcgate.db.models.results import AnalysisResult, ExtractedResult
from hpcgate.db.models.step_attempts import StepAttempt
from hpcgate.db.models.telemetry import (
    HeartbeatRollup,
    HeartbeatSample,
    ServiceLog,
    WorkerHeartbeat,
)
from hpcgate.db.models.usage import StepUsage, UsageQuota
from hpcgate.db.models.users import ApiKey, RefreshToken, User

__all__ = [
    "AnalysisResult",
    "ApiKey",
    "ArrayTask",
    "Calculation",
    "CalculationInput",
    "Cluster",
    "ClusterAccount",
    "ClusterNode",
    "ExtractedResult",
    "HeartbeatRollup",
    "HeartbeatSample",
    "InputBlob",
    "MlModel",
    "Molecule",
    "NotificationOutbox",
    "OutputRequest",
    "PartitionSample",
    "Prediction",
    "PredictionValue",
    "QueueMapping",
    "RefreshToken",
    "ServiceLog",
    "Step",
    "StepAttempt",
    "StepEdge",
    "StepLiveness",
    "StepUsage",
    "TaskLiveness",
    "UsageQuota",
    "User",
    "WorkerHeartbeat",
]
