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
    past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=2)
    with pytest.raises(auth.Unauthorized):
        auth.verify_token(SECRET, auth.issue_token(SECRET, "ann", "agent", 60, now=past))


def test_unsigned_and_tampered_tokens_are_refused():
    unsigned = jwt.encode(
        {"sub": "ann", "role": "admin", "exp": 9999999999}, None, algorithm="none"
    )
    with pytest.raises(auth.Unauthorized):
        auth.verify_token(SECRET, unsigned)
    token = auth.issue_token(SECRET, "ann", "agent", 60)
    header, _payload, signature = token.split(".")
    forged = jwt.encode({"sub": "ann", "role": "admin", "exp": 9999999999}, "other-key" * 5)
    with pytest.raises(auth.Unauthorized):
        auth.verify_token(SECRET, ".".join([header, forged.split(".")[1], signature]))


@pytest.mark.parametrize(
    "role,allowed,ok",
    [
        ("agent", ("agent",), True),
        ("manager", ("agent",), True),
        ("admin", ("manager",), True),
        ("agent", ("manager",), False),
        ("integration", ("agent",), False),
        ("integration", ("integration", "admin"), True),
        ("agent", ("integration", "admin"), False),
        ("admin", ("integration", "admin"), True),
    ],
)
def test_roles(role, allowed, ok):
    assert auth.role_allows(role, allowed) is ok


def test_a_verified_token_is_remembered_until_it_expires_and_only_for_its_secret():
    token = auth.issue_token(SECRET, "ann", "agent", 60)
    claims = auth.verify_token(SECRET, token)
    claims["role"] = "admin"  # a caller changing its copy changes nothing remembered
    assert auth.verify_token(SECRET, token)["role"] == "agent"
    with pytest.raises(auth.Unauthorized):
        auth.verify_token("another-secret-" + "x" * 30, token)
    # An expired token is refused even while remembered: the expiry is checked on every use.
    past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=2)
    expired = auth.issue_token(SECRET, "ann", "agent", 60, now=past)
    auth._VERIFIED[(SECRET, expired)] = {
        "sub": "ann",
        "role": "agent",
        "exp": int(past.timestamp()) + 60,
    }
    with pytest.raises(auth.Unauthorized):
        auth.verify_token(SECRET, expired)
    assert (SECRET, expired) not in auth._VERIFIED


def test_the_remembered_tokens_are_bounded(monkeypatch):
    monkeypatch.setattr(auth, "_VERIFIED_MAX", 3)
    monkeypatch.setattr(auth, "_VERIFIED", {})
    tokens = [auth.issue_token(SECRET, f"user{i}", "agent", 60) for i in range(5)]
    for token in tokens:
        auth.verify_token(SECRET, token)
        assert len(auth._VERIFIED) <= 3
    assert all(
        auth.verify_token(SECRET, token)["sub"] == f"user{i}" for i, token in enumerate(tokens)
    )
