"""The DCS error envelope: every non-2xx response is one of these.

Services raise a ``DcsError`` subclass; one middleware (``httpserver.dcs_envelope``) renders it
as ``{"error_code", "error_msg", "error_ext_msg"}``. Nothing else builds an
error body.
"""

from __future__ import annotations


class DcsError(Exception):
    status = 400
    error_code = "DCS.4800"
    error_msg = "Invalid request."
    error_ext_msg: str | None = None  # how to fix it, beside DCS's own error_msg
    headers: dict[str, str] = {}  # extra response headers (e.g. Content-Range on a 416)

    def __init__(self, error_msg: str | None = None, error_code: str | None = None,
                 error_ext_msg: str | None = None):
        if error_msg is not None:
            self.error_msg = error_msg
        if error_code is not None:
            self.error_code = error_code
        if error_ext_msg is not None:
            self.error_ext_msg = error_ext_msg
        super().__init__(self.error_msg)

    def body(self) -> dict:
        return {"error_code": self.error_code, "error_msg": self.error_msg, "error_ext_msg": self.error_ext_msg}


class InvalidParameter(DcsError):
    """400 DCS.4800 ``Invalid {name} in the request.`` as DCS words it; ``hint`` (``error_ext_msg``)
    says what would be accepted."""

    def __init__(self, name: str, hint: str | None = None):
        super().__init__(f"Invalid {name} in the request.", error_ext_msg=hint)


class InvalidProjectId(DcsError):
    error_code = "DCS.4002"
    error_msg = "Invalid project_id in the request."


class InvalidInstanceId(DcsError):
    error_code = "DCS.4061"
    error_msg = "Invalid instance_id in the request."


class CollectionRunning(DcsError):
    error_code = "DCS.4017"
    error_msg = "A log collection for this replica is still running."


class InvalidTimeRange(DcsError):
    error_code = "DCS.4025"
    error_msg = "The end time must not be earlier than the start time."


class FileNotReady(DcsError):
    def __init__(self, status: str, needs: str = "a download link"):
        super().__init__(f"The log file is {status}: {needs} needs a file in status succeed.")


class UnreadableLog(DcsError):
    """The log holds no line in a known format (``dcslog agent``'s answer; the collection fails with it)."""

    status = 422


class Unauthorized(DcsError):
    status = 401
    error_code = "DCS.1001"
    error_msg = "Invalid token or signature."


class MissingCredentials(Unauthorized):
    error_code = "DCS.1003"
    error_msg = "No credentials in the request: send X-Auth-Token or an SDK-HMAC-SHA256 Authorization header."


class ExpiredCredentials(Unauthorized):
    error_code = "DCS.1002"
    error_msg = "The token has expired or X-Sdk-Date is outside the accepted window."


class ProjectMismatch(Unauthorized):
    error_code = "DCS.1004"
    error_msg = "The project in the path does not match the credential."


class Forbidden(DcsError):
    status = 403
    error_code = "DCS.2003"
    error_msg = "The credential's role may not perform this operation."


class LinkForbidden(DcsError):
    status = 403
    error_code = "DCS.2004"
    error_msg = "The download link is invalid or has expired."


class InstanceNotFound(DcsError):
    status = 404
    error_code = "DCS.3022"
    error_msg = "The instance does not exist."


class NotFound(DcsError):
    status = 404
    error_code = "DCS.4001"
    error_msg = "The requested resource does not exist."


class MethodNotAllowed(DcsError):
    status = 405
    error_code = "DCS.4001"
    error_msg = "Method not allowed."


class Throttled(DcsError):
    """Too many requests of one kind: the code and status Huawei Cloud's API gateway answers a
    throttled request with, so SDK users' handling of it applies. ``retry_after``: whole seconds."""
    status = 429
    error_code = "APIGW.0308"
    error_msg = "The throttling threshold has been reached."

    def __init__(self, error_ext_msg: str, *, retry_after: int):
        super().__init__(error_ext_msg=error_ext_msg)
        self.headers = {"Retry-After": str(retry_after)}


class InternalError(DcsError):
    status = 500
    error_code = "DCS.5000"
    error_msg = "Internal server error."
