"""Users, passwords and tokens. Roles are cumulative (docs/API.md):
agent < manager < admin; integration may only publish events."""

import base64
import datetime
import hashlib
import hmac
import os
import secrets
import threading
import time

import jwt

ROLES = ("agent", "manager", "admin", "integration")
STAFF_RANK = {"agent": 1, "manager": 2, "admin": 3}
ALGORITHM = "HS256"
SCRYPT = {"n": 2**14, "r": 8, "p": 1}


class Unauthorized(Exception):
    pass


def hash_password(password, salt=None):
    salt = salt or os.urandom(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, dklen=32, **SCRYPT)
    return "scrypt$" + base64.b64encode(salt).decode() + "$" + base64.b64encode(digest).decode()


def verify_password(password, stored):
    try:
        scheme, salt, digest = stored.split("$")
    except (AttributeError, ValueError):
        return False
    if scheme != "scrypt":
        return False
    candidate = hash_password(password, base64.b64decode(salt)).split("$")[2]
    return hmac.compare_digest(candidate, digest)


def issue_token(secret, username, role, ttl_s, now=None):
    now = now or datetime.datetime.now(datetime.UTC)
    claims = {
        "sub": username,
        "role": role,
        "iat": now,
        "exp": now + datetime.timedelta(seconds=ttl_s),
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_token(secret, token):
    """Claims of a valid token; Unauthorized for a tampered, expired, unsigned or foreign one.
    Only HS256 is accepted, so `alg: none` never verifies.

    A token that verified is remembered until it expires: a client sends the same token with
    every request, and decoding and checking its signature was a fifth of the gateway's own
    work per read. Of the checks, only the expiry can turn with time (a token is never
    revoked: it lives `token_ttl_s`), and it is checked again on every use."""
    key = (secret, token)
    claims = _VERIFIED.get(key)
    if claims is not None and int(claims["exp"]) > time.time():
        return dict(claims)
    try:
        claims = jwt.decode(
            token, secret, algorithms=[ALGORITHM], options={"require": ["exp", "sub", "role"]}
        )
    except jwt.PyJWTError as exc:
        _VERIFIED.pop(key, None)
        raise Unauthorized(str(exc)) from None
    if claims["role"] not in ROLES:
        raise Unauthorized("unknown role")
    _remember(key, claims)
    return dict(claims)


# Verified tokens: (secret, token) -> claims. Bounded: past the limit the expired go, and if
# that is not enough, all (each is verified again on its next use).
_VERIFIED = {}
_VERIFIED_MAX = 10_000
_verified_lock = threading.Lock()


def _remember(key, claims):
    with _verified_lock:
        if len(_VERIFIED) >= _VERIFIED_MAX:
            now = time.time()
            for stale in [k for k, c in _VERIFIED.items() if int(c["exp"]) <= now]:
                del _VERIFIED[stale]
            if len(_VERIFIED) >= _VERIFIED_MAX:
                _VERIFIED.clear()
        _VERIFIED[key] = dict(claims)


# Integration API keys: "hcrm_<key id>_<secret>". Only a SHA-256 of the key is stored; a
# 192-bit random secret needs no slow hash (nothing to brute-force, unlike a password).
KEY_PREFIX = "hcrm_"


def new_api_key():
    key_id = secrets.token_hex(6)
    return key_id, f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(24)}"


def api_key_id(key):
    """The key id inside a presented key; None for anything that is not shaped like one."""
    if not key.startswith(KEY_PREFIX):
        return None
    key_id, _, secret = key[len(KEY_PREFIX) :].partition("_")
    if len(key_id) != 12 or not secret:
        return None
    return key_id


def api_key_hash(key):
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def role_allows(role, allowed):
    """`allowed` names roles; a staff role also passes where a lower staff role is named."""
    if role in allowed:
        return True
    rank = STAFF_RANK.get(role)
    return rank is not None and any(STAFF_RANK.get(a, 99) <= rank for a in allowed)
