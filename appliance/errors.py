"""Domain errors. Each carries the gRPC status *name* it maps to; api/ turns it into a
grpc.StatusCode in one place. Messages never hold patient data: they name fields,
files and keys, and say what to do."""
from __future__ import annotations


class ApplianceError(Exception):
    status = "INTERNAL"


class ConfigError(ApplianceError):
    """A config file problem; the message names the file and the key."""

    status = "FAILED_PRECONDITION"

    def __init__(self, path: object, key: str, problem: str) -> None:
        super().__init__(f"{path}: [{key}] {problem}")
        self.path = path
        self.key = key


class StoreKeyError(ApplianceError):
    status = "FAILED_PRECONDITION"


class ModelIntegrityError(ApplianceError):
    status = "FAILED_PRECONDITION"


class InvalidMessage(ApplianceError):
    """Input that cannot be accepted as sent (HL7 AR / gRPC INVALID_ARGUMENT)."""

    status = "INVALID_ARGUMENT"

    def __init__(self, reason: str, *, segment: str = "", field: int = 0, ack_code: str = "AR",
                 hl7_error_code: str = "207") -> None:
        super().__init__(reason)
        self.reason = reason
        self.segment = segment
        self.field = field
        self.ack_code = ack_code
        # HL7 table 0357: 100 segment sequence, 101 required field missing, 102 data type,
        # 200 unsupported message type, 203 unsupported version, 207 application error.
        self.hl7_error_code = hl7_error_code


class NotFound(ApplianceError):
    status = "NOT_FOUND"


class QueueFull(ApplianceError):
    status = "RESOURCE_EXHAUSTED"


class NotReady(ApplianceError):
    status = "UNAVAILABLE"


class PermissionDenied(ApplianceError):
    """The caller may not do this over this channel; the message says where it is allowed."""

    status = "PERMISSION_DENIED"


class InvalidRequest(ApplianceError):
    """A request field is missing or malformed; the message names the field."""

    status = "INVALID_ARGUMENT"


class SummaryFailed(ApplianceError):
    status = "FAILED_PRECONDITION"
