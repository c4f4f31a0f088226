"""Synchronous in-process events: how a lower area tells a higher one that something happened.

An event runs its subscribers in-line, in the sender's session and transaction (blinker lets a
subscriber's exception through to the sender), so the change, its audit event and the reaction
land together or not at all. Subscribers are connected in one place, govern.subscribers.connect_all,
which create_app calls, so the web, SCIM, every CLI command and the jobs runner all react alike.

Use an event only for a reaction that several entry points must never forget; when one higher
area drives both steps, it calls them itself.
"""

from __future__ import annotations

from blinker import Namespace

_events = Namespace()

#: Someone lost access to an account (a grant was revoked or expired): rotate what they saw or could
#: have seen. Sent by govern.grants.services.revoke_grant and expire_grants with the grant as sender
#: and ``session``, ``actor`` (None for the jobs runner), ``person``, ``account`` and ``reason``
#: ("exposure" or "offboarding"). Not sent by revoke_grants_of_leaver: the offboarding, higher on
#: the ladder, opens all of the leaver's rotation tasks itself in one go.
access_lost = _events.signal("access-lost")

#: A person accepted the current version of a policy tier (govern.policies.services.accept_version), with the
#: version as sender and ``session``, ``actor`` and ``person_id``: a group's grant that waited for it follows.
policy_accepted = _events.signal("policy-accepted")

#: The events a security reaction hangs on: each must have its subscriber connected in every entry
#: point (tests/test_events.py checks it).
SECURITY_EVENTS = (access_lost,)
