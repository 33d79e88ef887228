"""Moodle's error bodies as typed errors, each saying what the bridge should do about it.

Moodle answers most failures with HTTP 200 and ``{"exception", "errorcode", "message"}``.
Moodle 5 namespaces the exception classes (``core\\exception\\moodle_exception``); both forms
are recognised. Nothing here ever includes the token.
"""

from __future__ import annotations

from typing import Any

from bridge.errors import BridgeError, Remedy


class MoodleError(BridgeError):
    """An ``exception`` body from a Moodle site."""

    remedy = Remedy.FIX_CONFIG

    def __init__(self, site: str, function: str, exception: str, errorcode: str, message: str) -> None:
        self.site = site
        self.function = function
        self.exception = exception
        self.errorcode = errorcode
        self.moodle_message = message
        super().__init__(self.describe())

    def describe(self) -> str:
        return f"Moodle site '{self.site}' refused {self.function}: {self.moodle_message} ({self.errorcode})"


class InvalidToken(MoodleError):
    def describe(self) -> str:
        return f"Moodle rejected the token for site '{self.site}'"


class AccessDenied(MoodleError):
    """Function not in the token's service, service disabled, token expired, or IP restriction."""

    def describe(self) -> str:
        return (
            f"Moodle site '{self.site}' denied access to {self.function}: add the function to the web "
            "service the token belongs to, and check the service is enabled and the token not expired"
        )


class MissingCapability(MoodleError):
    def describe(self) -> str:
        return f"the web-service user on Moodle site '{self.site}' lacks a capability for {self.function}: {self.moodle_message}"


class InvalidParameter(MoodleError):
    pass


class MissingRecord(MoodleError):
    """A record (user, course, plan...) does not exist: only this item is affected."""

    remedy = Remedy.SKIP_ITEM


class UnknownFunction(MoodleError):
    def describe(self) -> str:
        return f"Moodle site '{self.site}' has no web-service function {self.function} (too old a version?)"


class NotEnrolled(MoodleError):
    remedy = Remedy.SKIP_ITEM


class ItemError(MoodleError):
    """Any other failure about one item (no completion criteria, no manual enrolment instance...)."""

    remedy = Remedy.SKIP_ITEM


class SiteMaintenance(MoodleError):
    remedy = Remedy.RETRY

    def describe(self) -> str:
        return f"Moodle site '{self.site}' is in maintenance mode"


class TransportError(BridgeError):
    """The site could not be reached or did not answer in the web-service protocol."""

    remedy = Remedy.RETRY

    def __init__(
        self,
        site: str,
        function: str,
        detail: str,
        retry_after: float | None = None,
        status: int | None = None,
    ) -> None:
        self.site = site
        self.function = function
        self.retry_after = retry_after
        self.status = status  # the HTTP status, when the site answered one
        super().__init__(f"Moodle site '{site}' could not answer {function}: {detail}")


ITEM_CODES = {
    "nocriteriaset",
    "wsnoinstance",
    "wsusercannotassign",
    "wscannotenrol",
    "cannotviewreport",
    "accessdenied",
}


def short_class(exception: str) -> str:
    return exception.rsplit("\\", 1)[-1]


def from_body(site: str, function: str, body: dict[str, Any]) -> MoodleError:
    exception = short_class(str(body.get("exception", "")))
    code = str(body.get("errorcode", ""))
    message = str(body.get("message", ""))
    kind: type[MoodleError] = MoodleError
    if code == "invalidtoken":
        kind = InvalidToken
    elif exception == "webservice_access_exception" or code == "accessexception":
        kind = AccessDenied
    elif exception == "required_capability_exception" or code == "nopermissions":
        kind = MissingCapability
    elif exception == "invalid_parameter_exception" or code == "invalidparameter":
        kind = InvalidParameter
    elif code == "sitemaintenance":
        kind = SiteMaintenance
    elif code in ("usernotenroled", "notenroled"):
        kind = NotEnrolled
    elif exception == "dml_missing_record_exception" and "external_functions" in message:
        kind = UnknownFunction
    elif exception == "dml_missing_record_exception":
        kind = MissingRecord
    elif code in ITEM_CODES:
        kind = ItemError
    return kind(site, function, exception, code, message)
