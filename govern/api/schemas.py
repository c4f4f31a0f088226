"""The shapes the API reads and answers (pydantic): the same models validate requests and describe them."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

Text = Annotated[str, StringConstraints(max_length=2000)]
ShortText = Annotated[str, StringConstraints(max_length=200)]
Reason = Annotated[str, StringConstraints(min_length=1, max_length=500)]
Id = Annotated[int, Field(ge=1, le=2**31 - 1)]


def _in_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:59-14:00 is past the calendar's end in UTC
        raise ValueError("the moment is out of range once converted to UTC") from None


#: A moment a request gives: with a time zone (a time without one is ambiguous), stored in UTC.
Moment = Annotated[AwareDatetime, AfterValidator(_in_utc)]


class Strict(BaseModel):
    """A request body: unknown fields are refused, not ignored (a typo must not pass silently)."""

    model_config = ConfigDict(extra="forbid")


class Out(BaseModel):
    """An answer, read from the ORM objects' attributes."""

    model_config = ConfigDict(from_attributes=True)


class Paging(Strict):
    """Every list's query: a page size and the cursor of the previous page's ``next``."""

    limit: int = Field(50, ge=1, le=200, description="Rows per page (1-200).")
    cursor: str | None = Field(None, max_length=200, pattern=r"^[A-Za-z0-9_-]*$",
                               description="The cursor from the previous page's next link.")


class Deleted(Out):
    """The answer of a change that leaves nothing to show."""

    ok: bool = True


# --- people ----------------------------------------------------------------------------------------------

PersonStatus = Literal["active", "leaving", "departed"]


class PersonOut(Out):
    id: int
    full_name: str
    email: str
    employee_id: str | None
    department: str | None
    title: str | None
    manager_id: int | None
    status: str
    start_date: date | None
    end_date: date | None
    source: str
    updated_at: datetime


class PersonList(Out):
    items: list[PersonOut]
    next: str | None = Field(description="The URL of the next page; null on the last.")


class PeopleQuery(Paging):
    q: str | None = Field(None, max_length=320, description="Part of a name, email or employee id.")
    department: str | None = Field(None, max_length=120)
    status: PersonStatus | None = None
    manager_id: Id | None = None


class PersonCreate(Strict):
    full_name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    email: Annotated[str, StringConstraints(min_length=3, max_length=320)]
    employee_id: ShortText | None = None
    department: ShortText | None = None
    title: ShortText | None = None
    manager: ShortText | None = Field(None, description="The manager's email or employee id.")
    start_date: date | None = None
    end_date: date | None = Field(None, description="A last day: the person is offboarded on it.")


class PersonUpdate(Strict):
    full_name: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    email: Annotated[str, StringConstraints(min_length=3, max_length=320)] | None = None
    employee_id: ShortText | None = None
    department: ShortText | None = None
    title: ShortText | None = None
    manager: ShortText | None = Field(None, description="The manager's email or employee id; empty to clear.")
    start_date: date | None = None
    end_date: date | None = None
