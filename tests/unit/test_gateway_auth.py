"""Passwords, tokens and roles (no network)."""
import datetime

import jwt
import pytest

from services.gateway import auth

SECRET = "s" * 40


def test_passwords_are_salted_hashes():
    first, second = auth.hash_password("correct horse"), auth.hash_password("correct horse")
    assert first != second and "correct horse" not in first
    assert auth.verify_password("correct horse", first)
    assert not auth.verify_password("wrong", first)
    assert not auth.verify_password("x", "not-a-hash")


def test_tokens_round_trip_and_expire():
    token = auth.issue_token(SECRET, "ann", "agent", 60)
    assert auth.verify_token(SECRET, token)["sub"] == "ann"
    past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=2)
    with pytest.raises(auth.Unauthorized):
        auth.verify_token(SECRET, auth.issue_token(SECRET, "ann", "agent", 60, now=past))


def test_unsigned_and_tampered_tokens_are_refused():
    unsigned = jwt.encode({"sub": "ann", "role": "admin", "exp": 9999999999}, None, algorithm="none")
    with pytest.raises(auth.Unauthorized):
        auth.verify_token(SECRET, unsigned)
    token = auth.issue_token(SECRET, "ann", "agent", 60)
    header, payload, signature = token.split(".")
    forged = jwt.encode({"sub": "ann", "role": "admin", "exp": 9999999999}, "other-key" * 5)
    with pytest.raises(auth.Unauthorized):
        auth.verify_token(SECRET, ".".join([header, forged.split(".")[1], signature]))


@pytest.mark.parametrize("role,allowed,ok", [
    ("agent", ("agent",), True), ("manager", ("agent",), True), ("admin", ("manager",), True),
    ("agent", ("manager",), False), ("integration", ("agent",), False),
    ("integration", ("integration", "admin"), True), ("agent", ("integration", "admin"), False),
    ("admin", ("integration", "admin"), True)])
def test_roles(role, allowed, ok):
    assert auth.role_allows(role, allowed) is ok
