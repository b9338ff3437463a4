"""A small built-in user store: names, roles and salted PBKDF2-SHA256 password hashes in one
JSON file; API tokens kept as SHA-256 hashes in another; and the sign-in sessions of the
running server (bearer tokens that expire, and end when their user is removed or changed).

Both files are re-read when they change on disk, so ``osed user remove`` or ``osed token
remove`` in another process takes effect on the server's next request."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from core.errors import OsedError

log = logging.getLogger("osed.api")
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


class _RecordFile:
    """``{section: {name: {field: value}}}`` in one JSON file (mode 600), written by atomic
    replacement and read again only when the file on disk changed."""

    def __init__(self, path: Path, section: str, what: str) -> None:
        self.path = path
        self.section = section
        self.what = what
        self.lock = threading.Lock()
        self._seen: tuple[int, int, int] | None = None
        self._records: dict[str, dict[str, str]] = {}

    def read(self) -> dict[str, dict[str, str]]:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return {}
        seen = (st.st_ino, st.st_mtime_ns, st.st_size)
        with self.lock:
            if seen != self._seen:
                self._records = self._parse()
                self._seen = seen
            return dict(self._records)

    def _parse(self) -> dict[str, dict[str, str]]:
        try:
            records = json.loads(self.path.read_text("utf-8"))[self.section]
        except (ValueError, KeyError, TypeError) as exc:
            raise OsedError(f"{self.path}: not a {self.what} file ({exc})") from None
        if not isinstance(records, dict) or not all(isinstance(r, dict) for r in records.values()):
            raise OsedError(f"{self.path}: '{self.section}' must be an object of objects")
        return records

    def write(self, records: dict[str, dict[str, str]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({self.section: records}, indent=1, sort_keys=True), "utf-8")
        os.chmod(tmp, 0o600)
        tmp.replace(self.path)


class UserStore:
    """``{"users": {name: {"role": ..., "password": "pbkdf2_sha256$..."}}}`` in one file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = _RecordFile(path, "users", "user")
        self._write_lock = threading.Lock()

    def _read(self) -> dict[str, dict[str, str]]:
        return self._file.read()

    def users(self) -> dict[str, str]:
        """Name -> role."""
        return {name: u.get("role", "viewer") for name, u in sorted(self._read().items())}

    def add(self, name: str, password: str, role: str) -> None:
        """Add a user, or set an existing one's password and role (which ends their sessions)."""
        if not _NAME.fullmatch(name):
            raise OsedError(f"invalid user name '{name[:80]}': 1-64 letters, digits, '.', '_', '@' or '-'")
        if role not in ROLES:
            raise OsedError(f"unknown role '{role}': use one of {', '.join(ROLES)}")
        if len(password) < 8:
            raise OsedError("a password needs at least 8 characters")
        with self._write_lock:
            users = self._read()
            users[name] = {"role": role, "password": hash_password(password)}
            self._file.write(users)

    def remove(self, name: str) -> bool:
        with self._write_lock:
            users = self._read()
            if users.pop(name, None) is None:
                return False
            self._file.write(users)
            return True

    def check(self, name: str, password: str) -> str | None:
        """The user's role if the password is right, else None."""
        found = self.authenticate(name, password)
        return found[0] if found else None

    def authenticate(self, name: str, password: str) -> tuple[str, str] | None:
        """The user's role and :meth:`stamp` if the password is right, else None."""
        user = self._read().get(name)
        if user is None:
            # Same work as a real check, so timing does not tell which names exist.
            verify_password(password, hash_password("x", salt=b"0" * 16))
            return None
        if not verify_password(password, user.get("password", "")):
            return None
        return user.get("role", "viewer"), _stamp(user)

    def stamp(self, name: str) -> str | None:
        """A fingerprint of the user's record (role and password hash), None once removed: a
        session lives while it is unchanged."""
        user = self._read().get(name)
        return _stamp(user) if user is not None else None


def _stamp(user: dict[str, str]) -> str:
    text = f"{user.get('role', 'viewer')}\0{user.get('password', '')}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def token_hash(token: str) -> str:
    """How an API token is stored: ``sha256:`` and the hex digest (tokens are random, so a
    fast hash is enough; the plain token is never kept)."""
    return "sha256:" + hashlib.sha256(token.encode("utf-8")).hexdigest()


_HASH = re.compile(r"sha256:[0-9a-f]{64}")


def is_token_hash(key: str) -> bool:
    return _HASH.fullmatch(key) is not None


class TokenStore:
    """API tokens by name: ``{"tokens": {name: {"role": ..., "hash": "sha256:..."}}}``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = _RecordFile(path, "tokens", "token")
        self._write_lock = threading.Lock()

    def tokens(self) -> dict[str, str]:
        """Name -> role."""
        return {name: t.get("role", "viewer") for name, t in sorted(self._file.read().items())}

    def add(self, name: str, role: str) -> str:
        """A new random token for ``name`` (replacing its old one); only its hash is kept."""
        if not _NAME.fullmatch(name):
            raise OsedError(f"invalid token name '{name[:80]}': 1-64 letters, digits, '.', '_', '@' or '-'")
        if role not in ROLES:
            raise OsedError(f"unknown role '{role}': use one of {', '.join(ROLES)}")
        token = "osedt_" + secrets.token_urlsafe(32)
        with self._write_lock:
            records = self._file.read()
            records[name] = {"role": role, "hash": token_hash(token)}
            self._file.write(records)
        return token

    def remove(self, name: str) -> bool:
        with self._write_lock:
            records = self._file.read()
            if records.pop(name, None) is None:
                return False
            self._file.write(records)
            return True

    def by_hash(self) -> dict[str, tuple[str, str]]:
        """``sha256:…`` -> (name, role)."""
        return {
            t["hash"]: (name, t.get("role", "viewer")) for name, t in self._file.read().items() if "hash" in t
        }


class ApiTokens:
    """The bearer tokens scripts use: those in settings (``api.tokens``: a plain token,
    development only, or its ``sha256:`` hash) and those in the token file."""

    def __init__(self, configured: Mapping[str, str], store: TokenStore) -> None:
        self._configured = {
            (k if is_token_hash(k) else token_hash(k)): role for k, role in configured.items()
        }
        self._store = store

    def identify(self, token: str) -> tuple[str, str] | None:
        """Who (for provenance) and which role, or None for an unknown token."""
        digest = token_hash(token)
        role = self._configured.get(digest)
        if role is not None:
            return f"token:{digest[len('sha256:') :][:10]}", role
        named = self._store.by_hash().get(digest)
        return (f"token:{named[0]}", named[1]) if named else None


@dataclass(frozen=True)
class Session:
    user: str
    role: str
    expires: float
    #: The user's record when the session opened (UserStore.stamp).
    stamp: str = ""


class Sessions:
    """Sign-in tokens of this server process (signing in again after a restart). A session
    ends when it expires, on sign-out, or when its user is removed or changed (role or
    password, by this server or by ``osed user`` in another process)."""

    def __init__(self, users: UserStore, lifetime_s: float = 12 * 3600) -> None:
        self.users = users
        self.lifetime_s = lifetime_s
        self._by_token: dict[str, Session] = {}
        self._lock = threading.Lock()

    def open(self, user: str, role: str, stamp: str) -> str:
        token = "osed_" + secrets.token_urlsafe(32)
        with self._lock:
            self._by_token[token] = Session(user, role, time.time() + self.lifetime_s, stamp)
        return token

    def get(self, token: str) -> Session | None:
        with self._lock:
            session = self._by_token.get(token)
            if session is None:
                return None
            if session.expires < time.time():
                del self._by_token[token]
                return None
        if self.users.stamp(session.user) != session.stamp:
            self.end_user(session.user)
            log.info("sessions of '%s' ended: the user was removed or changed", session.user)
            return None
        return session

    def end_user(self, user: str) -> int:
        """End every session of ``user``; how many there were."""
        with self._lock:
            ended = [t for t, s in self._by_token.items() if s.user == user]
            for t in ended:
                del self._by_token[t]
        return len(ended)

    def close(self, token: str) -> None:
        with self._lock:
            self._by_token.pop(token, None)
