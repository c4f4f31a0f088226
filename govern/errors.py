"""One hierarchy of domain errors; views turn them into form errors or HTTP answers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

T = TypeVar("T")


class GovernError(Exception):
    """Base of every domain error; ``message`` is safe to show to the user."""

    status_code = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFoundError(GovernError):
    """The object does not exist, or the actor may not know that it does."""

    status_code = 404


class ForbiddenError(GovernError):
    """The actor may not do this."""

    status_code = 403


class ConflictError(GovernError):
    """The state changed underneath the request (concurrent change, duplicate)."""

    status_code = 409


class InvalidError(GovernError):
    """Input breaks a rule; ``reasons`` maps field names to messages."""

    status_code = 400

    def __init__(self, message: str, reasons: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.reasons = dict(reasons or {})


class ThrottledError(GovernError):
    """Too many failed attempts; try again after ``retry_after`` seconds."""

    status_code = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class AuditWriteError(GovernError):
    """The audit event could not be written, so the change it records must not happen."""

    status_code = 503


def get_or_raise(session: Session, model: type[T], ident: object, message: str) -> T:
    """The row of ``model`` with primary key ``ident``, or NotFoundError(``message``) when there is none."""
    row = session.get(model, ident)
    if row is None:
        raise NotFoundError(message)
    return row
