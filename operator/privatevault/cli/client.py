"""pvctl's client of the read API (``--server URL --token-file F``): HTTPS with a bearer token.

Standard library only: a GET and JSON back. The token is read from a file (never a flag: it would
show in ``ps``) and never printed; the server's certificate is checked against ``--ca-file`` (the
operator's generated certificate is under its state directory), or not at all with ``--insecure``.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from privatevault.errors import PrivateVaultError

Server = Annotated[str | None, typer.Option(help="The read API, e.g. https://privatevault.example:8443.")]
TokenFile = Annotated[
    Path | None,
    typer.Option(help="File holding a Kubernetes token for the read API.", exists=True, dir_okay=False),
]
CaFile = Annotated[
    Path | None, typer.Option(help="CA bundle of the read API's certificate.", exists=True, dir_okay=False)
]
Insecure = Annotated[bool, typer.Option("--insecure", help="Do not check the read API's certificate.")]


class ApiError(PrivateVaultError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ReadApiClient:
    server: str
    token: str
    context: ssl.SSLContext
    timeout: float = 30.0

    @classmethod
    def of(cls, server: str, token_file: Path | None, ca_file: Path | None, insecure: bool) -> ReadApiClient:
        if token_file is None:
            raise ApiError(0, "--server needs --token-file (a Kubernetes token the read API reviews)")
        context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        if insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return cls(server.rstrip("/"), token_file.read_text().strip(), context)

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        query = urllib.parse.urlencode({k: v for k, v in (params or {}).items() if v is not None})
        url = f"{self.server}{path}" + (f"?{query}" if query else "")
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {self.token}"})  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=self.timeout, context=self.context) as answer:  # noqa: S310
                return json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            try:
                message = json.loads(exc.read()).get("message", "")
            except ValueError:
                message = ""
            raise ApiError(exc.code, f"{path}: HTTP {exc.code} {message}".strip()) from None
        except (urllib.error.URLError, OSError) as exc:
            raise ApiError(0, f"the read API at {self.server} cannot be reached: {exc}") from None

    def pages(self, path: str, params: dict[str, Any]) -> Any:
        """Every record of a paged view, page by page."""
        cursor = None
        while True:
            page = self.get(path, {**params, "cursor": cursor})
            yield from page["records"]
            cursor = page.get("nextCursor")
            if not cursor:
                return
