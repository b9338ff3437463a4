"""A small built-in user store: names, roles and salted PBKDF2-SHA256 password hashes in one
JSON file, plus the sign-in sessions of the running server (bearer tokens that expire)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from core.errors import OsedError

ROLES = ("viewer", "reviewer", "operator", "admin")
_ITERATIONS = 240_000
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")


def hash_password(password: str, *, salt: bytes | None = None, iterations: int = _ITERATIONS) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    b64 = base64.b64encode
    return f"pbkdf2_sha256${iterations}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, iterations, salt, digest = stored.split("$")
        if scheme != "pbkdf2_sha256":
            return False
        expected = base64.b64decode(digest)
        got = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), base64.b64decode(salt), int(iterations))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


class UserStore:
    """``{"users": {name: {"role": ..., "password": "pbkdf2_sha256$..."}}}`` in one file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def _read(self) -> dict[str, dict[str, str]]:
        if not self.path.exists():
            return {}
        try:
            data = json.loads(self.path.read_text("utf-8"))
            users = data["users"]
        except (ValueError, KeyError, TypeError) as exc:
            raise OsedError(f"{self.path}: not a user file ({exc})") from None
        if not isinstance(users, dict):
            raise OsedError(f"{self.path}: 'users' must be an object")
        return users

    def users(self) -> dict[str, str]:
        """Name -> role."""
        return {name: u.get("role", "viewer") for name, u in sorted(self._read().items())}

    def add(self, name: str, password: str, role: str) -> None:
        if not _NAME.match(name):
            raise OsedError(f"invalid user name '{name[:80]}': 1-64 letters, digits, '.', '_', '@' or '-'")
        if role not in ROLES:
            raise OsedError(f"unknown role '{role}': use one of {', '.join(ROLES)}")
        if len(password) < 8:
            raise OsedError("a password needs at least 8 characters")
        with self._lock:
            users = self._read()
            users[name] = {"role": role, "password": hash_password(password)}
            self._write(users)

    def remove(self, name: str) -> bool:
        with self._lock:
            users = self._read()
            if users.pop(name, None) is None:
                return False
            self._write(users)
            return True

    def check(self, name: str, password: str) -> str | None:
        """The user's role if the password is right, else None."""
        user = self._read().get(name)
        if user is None:
            # Same work as a real check, so timing does not tell which names exist.
            verify_password(password, hash_password("x", salt=b"0" * 16))
            return None
        return user.get("role") if verify_password(password, user.get("password", "")) else None

    def _write(self, users: dict[str, dict[str, str]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"users": users}, indent=1, sort_keys=True), "utf-8")
        os.chmod(tmp, 0o600)
        tmp.replace(self.path)


@dataclass(frozen=True)
class Session:
    user: str
    role: str
    expires: float


class Sessions:
    """Sign-in tokens of this server process (signing in again after a restart)."""

    def __init__(self, lifetime_s: float = 12 * 3600) -> None:
        self.lifetime_s = lifetime_s
        self._by_token: dict[str, Session] = {}
        self._lock = threading.Lock()

    def open(self, user: str, role: str) -> str:
        token = "osed_" + secrets.token_urlsafe(32)
        with self._lock:
            self._by_token[token] = Session(user, role, time.time() + self.lifetime_s)
        return token

    def get(self, token: str) -> Session | None:
        with self._lock:
            session = self._by_token.get(token)
            if session is not None and session.expires < time.time():
                del self._by_token[token]
                return None
            return session

    def close(self, token: str) -> None:
        with self._lock:
            self._by_token.pop(token, None)
