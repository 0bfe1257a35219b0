"""Workspace access on the audit chain: who viewed, exported or changed what (page views, exports, state changes)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from consent.audit import AuditEntry, AuditInput
from consent.store import append_audit
from hub.workspace.auth import Principal

#: the basis text of a workspace entry (the chain's ``basis``; the action code says what was done)
BASIS = "workspace"


def audit_access(session: Session, principal: Principal, action: str, *, household: str | None = None,
                 object_id: str | None = None, at: datetime | None = None) -> AuditEntry:
    """Append one entry (user, action, household or object id; never names or case text). The caller commits.

    ``action`` is a short code such as ``household.view``, ``household.fhir``, ``alert.acknowledge``.
    ``sourcerecord`` is ``household:<id>`` for a household, else ``<object_id>``, else ``workspace``.
    """
    if not action or len(action) > 64:
        raise ValueError("action: a code of 1-64 characters")
    if household is not None:
        subject = f"household:{household}"
    elif object_id is not None:
        subject = object_id
    else:
        subject = "workspace"
    entry = AuditInput(
        event=f"workspace-{uuid.uuid4().hex}",
        sourcerecord=subject[:200],
        person=None,
        field=None,
        route=None,
        decision=True,
        basis=BASIS if object_id is None or household is None else f"{BASIS} {object_id}"[:200],
        at=at if at is not None else datetime.now(UTC),
        user=principal.username,
        action=action,
    )
    return append_audit(session, [entry])[0]
