"""Genesys-shaped errors: the ``ErrorBody`` JSON and the codes the sandbox answers with.

Every ``/api/v2`` error is ``{"message", "code", "status", "contextId", "details", "errors"}``
(plus ``limit`` on rate-limit 429s), and ``contextId`` equals the ``ININ-Correlation-Id``
response header.  The login host answers in the OAuth shape ``{"error", "description"}``.

Codes, with how sure we are of them ([C] = community sources, [U] = chosen here, unconfirmed):

==========================================  ======  ====================================
code                                        status  when
==========================================  ======  ====================================
``bad.request``                  [C]        400     malformed JSON, missing required field
``invalid.value``                [C]        400     a field fails validation
``name.already.exists``          [U]        400     a name is not unique in the org
``cannot.update.phone.columns``  [C]        400     PUT changes a list's phone columns
``cannot.update.column.names``   [U]        400     PUT changes a list's columns
``authentication.required``      [C]        401     no bearer token
``bad.credentials``              [C]        401     unknown token
``credentials.expired``          [C]        401     token past its lifetime
``not.found``                    [C]        404     unknown entity or route
``no.available.list.export.uri`` [C]        404     export not ready yet (status [U])
``method.not.allowed``           [U]        405     known path, wrong method
``version.mismatch``             [U]        409     PUT with a stale ``version``
``sender.sms.phone.number.in.use`` [U]      409     a 2nd running campaign on one number
``resource.in.use``              [U]        409     delete of a referenced/running entity
``request.entity.too.large``     [U]        413     more than 1,000 contacts in one add
``unsupported.media.type``       [U]        415     a body that is not JSON
``too.many.requests``            [C]        429     rate limit or injected 429
``service.unavailable``          [C]        503     injected 5xx
==========================================  ======  ====================================
"""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

__all__ = [
    "CORRELATION_HEADER",
    "ApiError",
    "bad_request",
    "error_body",
    "invalid_value",
    "name_exists",
    "not_found",
]

CORRELATION_HEADER = "ININ-Correlation-Id"


class ApiError(Exception):
    """An error answer; raised anywhere in a handler, rendered as ``ErrorBody``."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        field: str | None = None,
        headers: dict[str, str] | None = None,
        limit: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = headers or {}
        self.limit = limit

    def response(self, context_id: str) -> JSONResponse:
        details = [{"errorCode": self.code, "fieldName": self.field}] if self.field else []
        body = error_body(self.status, self.code, self.message, context_id, details=details)
        if self.limit is not None:
            body["limit"] = self.limit
        headers = {CORRELATION_HEADER: context_id, **self.headers}
        return JSONResponse(body, status_code=self.status, headers=headers)


def error_body(
    status: int,
    code: str,
    message: str,
    context_id: str,
    *,
    details: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "message": message,
        "code": code,
        "status": status,
        "contextId": context_id,
        "details": details or [],
        "errors": [],
    }


def bad_request(message: str, field: str | None = None) -> ApiError:
    return ApiError(400, "bad.request", message, field=field)


def invalid_value(message: str, field: str | None = None) -> ApiError:
    return ApiError(400, "invalid.value", message, field=field)


def name_exists(what: str, name: str) -> ApiError:
    return ApiError(
        400, "name.already.exists", f"A {what} named '{name}' already exists.", field="name"
    )


def not_found(what: str, entity_id: str) -> ApiError:
    return ApiError(404, "not.found", f"The requested {what} {entity_id} was not found.")
