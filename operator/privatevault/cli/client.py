"""pvctl's client of the read API (``--server URL --token-file F``): HTTPS with a bearer token.

Standard library only: a GET and JSON back, or a download streamed to a file. The token is read
from a file (never a flag: it would show in ``ps``), or taken from the kubeconfig's current user
when no file is given, and never printed; the server's certificate is checked against
``--ca-file`` (the operator's generated certificate is under its state directory), or not at all
with ``--insecure``.

A download (:meth:`ReadApiClient.download`) is written beside its destination, hashed as it
streams, checked against the SHA-256 the server states in ``Repr-Digest`` (RFC 9530), fsynced and
only then renamed into place: a failure or a mismatch leaves nothing at the destination.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import http.client
import json
import os
import re
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from privatevault.cluster import bearer_token
from privatevault.errors import PrivateVaultError

T = TypeVar("T")

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
    def of(
        cls,
        server: str,
        token_file: Path | None,
        ca_file: Path | None,
        insecure: bool,
        *,
        kubeconfig: Path | None = None,
        from_kubeconfig: bool = False,
    ) -> ReadApiClient:
        """With ``from_kubeconfig``, a missing ``token_file`` means the kubeconfig's token."""
        if token_file is not None:
            token: str | None = token_file.read_text().strip()
        elif from_kubeconfig:
            token = bearer_token(kubeconfig)
            if token is None:
                raise ApiError(0, "the kubeconfig's user has no token (a client certificate?): pass --token-file")
        else:
            raise ApiError(0, "--server needs --token-file (a Kubernetes token the read API reviews)")
        context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        if insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return cls(server.rstrip("/"), token or "", context)

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self._open(path, params, lambda answer: json.loads(answer.read()))

    def download(
        self, path: str, into: Path, *, progress: Callable[[int, int | None], None] | None = None
    ) -> Downloaded:
        """Stream ``path`` to ``into`` (aside, checked, fsynced, renamed); ``progress(done, total)``
        is called as chunks arrive. Raises :class:`ApiError` (HTTP), :class:`DigestMismatch`."""
        return self._open(path, None, lambda answer: _save(answer, path, into, progress))

    def _open(self, path: str, params: dict[str, Any] | None, read: Callable[[Any], T]) -> T:
        query = urllib.parse.urlencode({k: v for k, v in (params or {}).items() if v is not None})
        url = f"{self.server}{path}" + (f"?{query}" if query else "")
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {self.token}"})  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=self.timeout, context=self.context) as answer:  # noqa: S310
                return read(answer)
        except urllib.error.HTTPError as exc:
            try:
                message = json.loads(exc.read()).get("message", "")
            except ValueError:
                message = ""
            raise ApiError(exc.code, f"{path}: HTTP {exc.code} {message}".strip()) from None
        except (urllib.error.URLError, OSError) as exc:
            raise ApiError(0, f"the read API at {self.server} cannot be reached: {exc}") from None
        except http.client.HTTPException as exc:  # the answer broke off, e.g. IncompleteRead
            raise ApiError(0, f"{path}: the read API's answer broke off: {exc!r}") from None

    def pages(self, path: str, params: dict[str, Any]) -> Any:
        """Every record of a paged view, page by page."""
        cursor = None
        while True:
            page = self.get(path, {**params, "cursor": cursor})
            yield from page["records"]
            cursor = page.get("nextCursor")
            if not cursor:
                return


class DigestMismatch(PrivateVaultError):
    """The bytes received do not hash to the digest the server stated: nothing was saved."""


class DownloadNotSaved(PrivateVaultError):
    """The download could not be written, or ended short: nothing was saved."""


@dataclass(frozen=True)
class Downloaded:
    path: Path
    size: int
    digest: str  # sha256:<hex>


#: ``Repr-Digest: sha-256=:<base64>:`` (RFC 9530), as the read API states a bundle's digest.
_SHA256 = re.compile(r"(?:^|,)\s*sha-256=:([A-Za-z0-9+/=]+):")
_CHUNK = 1 << 20


def stated_digest(header: str | None) -> str | None:
    """``sha256:<hex>`` from a ``Repr-Digest`` header, or None when it states no SHA-256."""
    found = _SHA256.search(header or "")
    if found is None:
        return None
    try:
        raw = base64.b64decode(found.group(1), validate=True)
    except binascii.Error:
        return None
    return f"sha256:{raw.hex()}" if len(raw) == 32 else None


def _save(answer: Any, path: str, into: Path, progress: Callable[[int, int | None], None] | None) -> Downloaded:
    expected = stated_digest(answer.headers.get("Repr-Digest"))
    if expected is None:
        raise DigestMismatch(f"{path}: the read API states no SHA-256 (Repr-Digest) to check the download against")
    length = answer.headers.get("Content-Length")
    total = int(length) if length and length.isdigit() else None
    aside = into.with_name(f".{into.name}.{os.getpid()}.part")
    hasher, done = hashlib.sha256(), 0
    try:
        try:
            out = aside.open("wb")
        except OSError as exc:
            raise DownloadNotSaved(f"cannot write {into}: {exc}") from None
        with out:
            while chunk := answer.read(_CHUNK):  # a network error here is the caller's ApiError
                try:
                    out.write(chunk)
                except OSError as exc:
                    raise DownloadNotSaved(f"cannot write {into}: {exc}") from None
                hasher.update(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
            try:
                out.flush()
                os.fsync(out.fileno())
            except OSError as exc:
                raise DownloadNotSaved(f"cannot write {into}: {exc}") from None
        got = f"sha256:{hasher.hexdigest()}"
        if total is not None and done != total:
            raise DownloadNotSaved(f"{path}: received {done} bytes of {total}")
        if got != expected:
            raise DigestMismatch(f"{path}: received {done} bytes with digest {got}, but the read API states {expected}")
        aside.replace(into)
    except BaseException:
        aside.unlink(missing_ok=True)
        raise
    return Downloaded(into, done, got)
