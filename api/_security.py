"""Security headers on every response, and the API documentation pages under their own CSP.

Our pages (``/``, ``/ui``) load scripts and styles from this server only and have no inline
script or style, so their policy allows nothing else; no page may be framed. FastAPI's
``/docs`` and ``/redoc`` load Swagger UI and ReDoc from a CDN and start them with an inline
script: they get a policy naming that CDN and the hash of that one script.
"""

from __future__ import annotations

import base64
import hashlib
import re

from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
_CDN = "https://cdn.jsdelivr.net"
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.S)


class SecurityHeaders:
    """ASGI middleware: the headers above on every HTTP response, and ``PAGE_CSP`` unless
    the route set a policy of its own."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS.items():
                    headers.setdefault(name, value)
                headers.setdefault("Content-Security-Policy", PAGE_CSP)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def swagger_page(openapi_url: str, title: str) -> HTMLResponse:
    page = get_swagger_ui_html(openapi_url=openapi_url, title=f"{title} - Swagger UI")
    scripts = " ".join(f"'sha256-{_sha256(s)}'" for s in _INLINE_SCRIPT.findall(bytes(page.body).decode()))
    return _with_policy(
        page,
        f"default-src 'none'; script-src {_CDN} {scripts}; style-src {_CDN} 'unsafe-inline'; "
        "img-src 'self' data: https:; connect-src 'self'; form-action 'self'; base-uri 'none'; "
        "frame-ancestors 'none'",
    )


def redoc_page(openapi_url: str, title: str) -> HTMLResponse:
    page = get_redoc_html(openapi_url=openapi_url, title=f"{title} - ReDoc")
    return _with_policy(
        page,
        f"default-src 'none'; script-src {_CDN}; worker-src blob:; "
        "style-src https://fonts.googleapis.com 'unsafe-inline'; font-src https://fonts.gstatic.com; "
        "img-src 'self' data: https:; connect-src 'self'; form-action 'self'; base-uri 'none'; "
        "frame-ancestors 'none'",
    )


def _with_policy(page: HTMLResponse, policy: str) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = policy
    return page


def _sha256(text: str) -> str:
    return base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode()
