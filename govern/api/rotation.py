"""Rotation tasks: IT's queue of secrets that must get a new value, and why (never a value)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from flask import Response
from pydantic import Field
from sqlalchemy import select

from govern.api import cursors
from govern.api.blueprint import answer, answer_page, bp
from govern.api.schemas import Out, Paging
from govern.api.spec import endpoint, query_of
from govern.db import get_session
from govern.errors import get_or_raise
from govern.rotation.models import TASK_STATUSES, RotationTask

TAG = ["rotation"]
#: live: open or staged (the dashboard's queue); all: every task; else one status.
TaskStatusFilter = Literal[("live", "all", *TASK_STATUSES)]  # type: ignore[valid-type]
LIVE = ("open", "staged")


class PersonWhy(Out):
    person_id: int | None = None
    name: str | None = None
    why: str | None = None


class TaskOut(Out):
    id: int
    secret_id: int
    secret_label: str
    account_id: int
    account_name: str
    status: str = Field(description="open, staged (a new value waits to be confirmed), done or cancelled.")
    reason: str = Field(description="The most pressing of reasons.")
    reasons: list[str]
    people: list[PersonWhy] = Field(description="The people whose access makes the rotation necessary.")
    notes: list[str]
    is_urgent: bool
    due_at: datetime
    assignee_id: int | None = Field(description="The IT user it is assigned to; null: the IT team.")
    incident_id: int | None
    new_token_expires_at: date | None
    created_at: datetime
    staged_at: datetime | None
    completed_at: datetime | None
    cancelled_at: datetime | None
    cancel_reason: str | None


class TaskList(Out):
    items: list[TaskOut]
    next: str | None = Field(description="The URL of the next page; null on the last.")


class TasksQuery(Paging):
    status: TaskStatusFilter = Field("live", description="live (open or staged, the default), all, or one status.")


def _task_out(task: RotationTask) -> TaskOut:
    return TaskOut(id=task.id, secret_id=task.secret_id, secret_label=task.secret.label, account_id=task.account_id,
                   account_name=task.secret.account.display_name, status=task.status, reason=task.reason,
                   reasons=task.reasons, people=[PersonWhy.model_validate(p) for p in task.people], notes=task.notes,
                   is_urgent=task.is_urgent, due_at=task.due_at, assignee_id=task.assignee_id,
                   incident_id=task.incident_id, new_token_expires_at=task.new_token_expires_at,
                   created_at=task.created_at, staged_at=task.staged_at, completed_at=task.completed_at,
                   cancelled_at=task.cancelled_at, cancel_reason=task.cancel_reason)


@bp.get("/rotation-tasks")
@endpoint(operation_id="listRotationTasks", permission_name="rotation.read", scope="rotation:read", tags=TAG,
          query=TasksQuery, responses={200: TaskList})
def list_tasks() -> Response:
    """Rotation tasks (by default the live ones) with their secret and account, in id order."""
    args = query_of(TasksQuery)
    statement = select(RotationTask)
    if args.status != "all":
        statement = statement.where(RotationTask.status.in_(LIVE if args.status == "live" else (args.status,)))
    # The secret and its account come joined with each task (eager many-to-one): one query a page.
    page = cursors.read_slice(get_session(), statement, RotationTask.id, cursor=args.cursor, limit=args.limit)
    return answer_page(TaskList, [_task_out(t) for t in page.rows], page.next_cursor)


@bp.get("/rotation-tasks/<int:task_id>")
@endpoint(operation_id="getRotationTask", permission_name="rotation.read", scope="rotation:read", tags=TAG,
          responses={200: TaskOut, 404: None})
def get_task(task_id: int) -> Response:
    """One rotation task."""
    return answer(_task_out(get_or_raise(get_session(), RotationTask, task_id, "No such rotation task.")))
