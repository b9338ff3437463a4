"""Abuse resisted: sign-in throttling, sessions that end with their user, security headers on
every page, API tokens kept as hashes (SPARQL values: test_sparql_values.py)."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from api._service import Platform
from api._users import UserStore, token_hash
from api.app import create_app
from api.settings import Settings
from mapper import read_points
from tests.conftest import FIXTURES

PASSWORD = "s3cret-pass"


def run_osed(
    *args: str, cwd: Path, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The CLI in its own process, on the data directory the tests' platform uses."""
    full = {**os.environ, "OSED_DATA_DIR": str(cwd / "var"), "OSED_AGENT__RETRIEVAL": "false", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *args], cwd=cwd, env=full, input=stdin, capture_output=True,
        text=True, timeout=600,
    )  # fmt: skip


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _app(platform: Platform) -> TestClient:
    platform.settings.api.anonymous_role = ""
    platform.import_points("hq", read_points(FIXTURES / "small_building.csv"))
    return TestClient(create_app(platform.settings, platform=platform))


def _login(c: TestClient, user: str, password: str) -> tuple[int, dict[str, str], dict[str, object]]:
    r = c.post("/auth/login", json={"username": user, "password": password})
    return r.status_code, dict(r.headers), r.json()


# -- sign-in throttling ----------------------------------------------------------------------
def test_forty_wrong_passwords_are_slowed_down_then_locked_out(
    platform: Platform, caplog: pytest.LogCaptureFixture
) -> None:
    UserStore(platform.settings.users_path()).add("rita", PASSWORD, "reviewer")
    caplog.set_level(logging.INFO, logger="osed.api")
    with _app(platform) as c:
        clock = Clock()
        c.app.state.login_throttle.clock = clock  # type: ignore[attr-defined]
        answers = [_login(c, "rita", f"guess-{n}") for n in range(40)]
        codes = [a[0] for a in answers]
        # Three failures are answered at once; then every try waits for the delay.
        assert codes[:3] == [401, 401, 401]
        assert set(codes[3:]) == {429}
        assert int(answers[3][1]["retry-after"]) >= 1
        # The right password is refused too while the wait lasts (it is not even checked).
        assert _login(c, "rita", PASSWORD)[0] == 429

        # Waiting out each delay: it doubles, and the tenth failure in a row locks.
        waits = []
        for n in range(3, 10):
            code, headers, _ = _login(c, "rita", "still-wrong")
            assert code == 429
            waits.append(int(headers["retry-after"]))
            clock.now += waits[-1]
            assert _login(c, "rita", f"guess-{n}")[0] == 401
        assert waits == [1, 2, 4, 8, 16, 32, 60]  # doubling, up to login_max_delay_s
        code, headers, body = _login(c, "rita", PASSWORD)
        assert code == 429 and int(headers["retry-after"]) > 800 and "try again" in str(body["detail"])
        clock.now += 15 * 60 + 1
        assert _login(c, "rita", PASSWORD)[0] == 200
    logged = caplog.text
    assert "next try in" in logged and "sign-in locked for user:rita" in logged
    assert "sign-in locked for address:testclient" in logged


def test_throttling_is_per_user_name_and_per_client_address(platform: Platform) -> None:
    users = UserStore(platform.settings.users_path())
    users.add("rita", PASSWORD, "reviewer")
    users.add("ralph", PASSWORD, "reviewer")
    with _app(platform) as c:
        clock = Clock()
        c.app.state.login_throttle.clock = clock  # type: ignore[attr-defined]
        other = TestClient(c.app, client=("192.0.2.7", 40000))
        # One address trying many names is slowed down whatever the name.
        assert [_login(c, f"user{n}", "x")[0] for n in range(4)] == [401, 401, 401, 429]
        assert _login(c, "ralph", PASSWORD)[0] == 429
        # Another address is not, and its right password signs in.
        assert _login(other, "ralph", PASSWORD)[0] == 200
        # Many addresses guessing one name: that name is slowed down everywhere.
        for n in range(3):
            assert _login(TestClient(c.app, client=(f"198.51.100.{n}", 1)), "rita", "x")[0] == 401
        assert _login(other, "rita", PASSWORD)[0] == 429


# -- sessions end with their user ------------------------------------------------------------
def test_removing_a_user_or_changing_their_role_ends_their_sessions_from_another_process(
    platform: Platform, tmp_path: Path
) -> None:
    users = UserStore(platform.settings.users_path())
    users.add("rita", PASSWORD, "reviewer")
    users.add("victor", PASSWORD, "admin")
    assert platform.settings.users_path() == tmp_path / "var" / "users.json"  # what the CLI edits
    with _app(platform) as c:
        rita = {"Authorization": f"Bearer {_login(c, 'rita', PASSWORD)[2]['token']}"}
        victor = {"Authorization": f"Bearer {_login(c, 'victor', PASSWORD)[2]['token']}"}
        assert c.get("/auth/me", headers=rita).status_code == 200
        assert run_osed("user", "remove", "rita", cwd=tmp_path).returncode == 0
        assert c.get("/auth/me", headers=rita).status_code == 401
        assert c.get("/buildings", headers=rita).status_code == 401
        # A role change (here from admin down to viewer) ends the sessions too: signing in
        # again gives the new role.
        changed = run_osed(
            "user",
            "add",
            "victor",
            "--role",
            "viewer",
            "--password-stdin",
            cwd=tmp_path,
            stdin=PASSWORD + "\n",
        )
        assert changed.returncode == 0, changed.stderr
        assert c.get("/auth/me", headers=victor).status_code == 401
        again = {"Authorization": f"Bearer {_login(c, 'victor', PASSWORD)[2]['token']}"}
        assert c.get("/auth/me", headers=again).json() == {"user": "victor", "role": "viewer"}


# -- security headers ------------------------------------------------------------------------
def test_every_page_sends_security_headers_and_our_pages_allow_no_inline_script(platform: Platform) -> None:
    with _app(platform) as c:
        for path in (
            "/",
            "/ui",
            "/ui/review.js",
            "/ui/review.css",
            "/docs",
            "/redoc",
            "/buildings",
            "/nowhere",
        ):
            r = c.get(path)
            assert r.headers["x-content-type-options"] == "nosniff", path
            assert r.headers["x-frame-options"] == "DENY", path
            assert r.headers["referrer-policy"] == "no-referrer", path
            assert "frame-ancestors 'none'" in r.headers["content-security-policy"], path
        for path in ("/", "/ui"):
            page = c.get(path)
            policy = page.headers["content-security-policy"]
            assert "script-src 'self';" in policy and "unsafe-inline" not in policy
            assert "default-src 'none'" in policy
            # Nothing on the page needs more than that.
            assert not re.search(r"<script>|<style|\sstyle=|\son[a-z]+=", page.text), path
        # Swagger UI's one inline script is allowed by its hash, nothing else inline.
        docs = c.get("/docs")
        assert re.search(r"script-src https://cdn\.jsdelivr\.net 'sha256-[A-Za-z0-9+/=]+';", docs.headers[
            "content-security-policy"
        ])  # fmt: skip


# -- API tokens as hashes --------------------------------------------------------------------
def test_api_tokens_given_as_hashes_and_from_a_file(
    platform: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "a-long-random-token-for-the-ci-job"
    platform.settings.api.tokens = {token_hash(secret): "reviewer"}
    with _app(platform) as c:
        me = c.get("/auth/me", headers={"Authorization": f"Bearer {secret}"}).json()
        assert me["role"] == "reviewer" and me["user"] == f"token:{token_hash(secret)[7:17]}"
        # The hash itself is no token.
        assert c.get("/auth/me", headers={"Authorization": f"Bearer {token_hash(secret)}"}).status_code == 401

    # osed token add: printed once, kept as a hash in the file OSED_API__TOKENS_FILE names.
    tokens_file = tmp_path / "secrets" / "tokens.json"
    made = run_osed(
        "token",
        "add",
        "ci",
        "--role",
        "operator",
        cwd=tmp_path,
        env={"OSED_API__TOKENS_FILE": str(tokens_file)},
    )
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert token and token not in tokens_file.read_text() and token_hash(token) in tokens_file.read_text()
    assert tokens_file.stat().st_mode & 0o077 == 0
    monkeypatch.setenv("OSED_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("OSED_API__TOKENS_FILE", str(tokens_file))
    settings = Settings()
    assert settings.tokens_path() == tokens_file
    settings.agent.retrieval = False
    served = Platform(settings, store=platform.store, ontology=platform.ontology)
    with TestClient(create_app(settings, platform=served)) as c:
        ci = {"Authorization": f"Bearer {token}"}
        assert c.get("/auth/me", headers=ci).json() == {"user": "token:ci", "role": "operator"}
        # Revoked from another process: refused at the next request.
        gone = run_osed(
            "token", "remove", "ci", cwd=tmp_path, env={"OSED_API__TOKENS_FILE": str(tokens_file)}
        )
        assert gone.returncode == 0
        assert c.get("/auth/me", headers=ci).status_code == 401
    hashed = run_osed("token", "hash", cwd=tmp_path, stdin=secret + "\n")
    assert hashed.stdout.strip() == token_hash(secret)


def test_production_refuses_plain_api_tokens(tmp_path: Path) -> None:
    base = {"environment": "production", "data_dir": tmp_path, "api": {"anonymous_role": ""}}
    plain = "a-plain-token-long-enough-for-production"
    with pytest.raises(ValidationError, match="hashes"):
        Settings(**{**base, "api": {"anonymous_role": "", "tokens": {plain: "admin"}}})
    ok = Settings(**{**base, "api": {"anonymous_role": "", "tokens": {token_hash(plain): "admin"}}})
    assert list(ok.api.tokens) == [token_hash(plain)]
