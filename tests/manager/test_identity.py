"""Who sees what: a person their own jobs and workflows, an admin everyone's (manager/auth.py)."""

from __future__ import annotations

from tiercel.core.model import UserName
from tiercel.manager.auth import Identity


def test_a_user_sees_their_own_and_an_admin_everyones() -> None:
    alice, admin = Identity(UserName("alice"), "user"), Identity(UserName("root"), "admin")
    assert alice.sees("alice") and not alice.sees("bob")
    assert admin.sees("alice") and admin.sees("bob")


def test_a_worker_or_peer_token_named_after_a_person_is_still_that_name_only() -> None:
    # (the gateways refuse these roles before asking: sees() alone never widens them)
    assert not Identity(UserName("alice"), "worker").sees("bob")
    assert not Identity(UserName("alice"), "peer").sees("bob")
