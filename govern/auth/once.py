"""Values shown once, right after the POST that made them, on the GET it redirects to.

Recovery codes, a setup secret, a new SCIM token and a generated password are shown exactly once.
The POST that makes one redirects (so a reload does not make another), and the value waits in the
server-side session, sealed with the app's MFA box under the user and the kind of value (the same
protection as an enrolment's pending seed): the database row of the session holds no readable
secret. The GET takes it out, so it shows once; it is good for ONCE_TTL seconds.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import MutableMapping
from typing import Any

from govern.auth.kit import AuthKit
from govern.crypto.secretbox import SecretBoxError

#: The session key of the waiting value (one at a time: a newer one replaces it).
ONCE_KEY = "show_once"
#: Seconds between the POST and the GET that shows the value.
ONCE_TTL = 120


def _context(user_id: int, kind: str) -> bytes:
    return f"govern:show_once:{user_id}:{kind}".encode()


def keep(session: MutableMapping[str, Any], kit: AuthKit, *, user_id: int, kind: str, payload: dict[str, Any]) -> None:
    """Seal ``payload`` into the session for the next page of ``user_id`` to show once."""
    sealed = kit.mfa_box.seal(json.dumps({"at": time.time(), "payload": payload}).encode(), _context(user_id, kind))
    session[ONCE_KEY] = {"kind": kind, "sealed": base64.b64encode(sealed).decode("ascii")}


def take(session: MutableMapping[str, Any], kit: AuthKit, *, user_id: int, kind: str) -> dict[str, Any] | None:
    """The payload kept for ``user_id`` and ``kind``, removed from the session; None when there is none (any more)."""
    entry = session.get(ONCE_KEY)
    if not isinstance(entry, dict) or entry.get("kind") != kind:
        return None
    session.pop(ONCE_KEY, None)
    try:
        opened = kit.mfa_box.open(base64.b64decode(str(entry.get("sealed", ""))), _context(user_id, kind))[0]
        data = json.loads(opened)
    except (SecretBoxError, ValueError):
        return None
    if not isinstance(data, dict) or time.time() - float(data.get("at", 0)) > ONCE_TTL:
        return None
    payload = data.get("payload")
    return payload if isinstance(payload, dict) else None
