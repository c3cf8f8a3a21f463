"""The Kubernetes adapter: the only module that imports the Kubernetes client library.

Writes use server-side apply under one field manager, so the operator owns exactly the fields
it sets and a re-apply of the same intent is a no-op. ``apply(..., dry_run=True)`` asks the
server what an apply *would* produce, which is how drift is detected without re-implementing
the API server's defaulting and quantity normalisation here.
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import ConflictError, DynamicApiError, NotFoundError
from kubernetes.watch.watch import iter_resp_lines
from urllib3.exceptions import HTTPError

from privatevault.errors import ClusterUnavailable, SpecError
from privatevault.kms.local import StoredSecret

FIELD_MANAGER = "privatevault"
_RETRYABLE = frozenset({409, 429, 500, 502, 503, 504})
#: Connections kept for the informers' long-lived watches (one per watched kind) and their listings.
WATCH_CONNECTIONS = 16


class Expired(ClusterUnavailable):
    """A listing's continue token or a watch's resourceVersion is too old (410 Gone): list again."""


def _path(api_version: str, plural: str) -> str:
    """The cluster-wide collection of a kind: ``/api/v1/secrets``, ``/apis/apps/v1/deployments``."""
    return f"/api/{api_version}/{plural}" if "/" not in api_version else f"/apis/{api_version}/{plural}"


@dataclass(frozen=True)
class Credentials:
    server: str
    ca_path: str | None
    certificate_path: str | None
    private_key_path: str | None
    token: str | None
    insecure: bool


def _configuration(kubeconfig: Path | None) -> client.Configuration:
    """From a kubeconfig file, else the in-cluster service account, else ~/.kube/config."""
    configuration = client.Configuration()
    if kubeconfig is not None:
        config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
    else:
        try:
            config.load_incluster_config(client_configuration=configuration)
        except config.ConfigException:
            config.load_kube_config(client_configuration=configuration)
    return configuration


def _token(configuration: client.Configuration) -> str | None:
    keys = configuration.api_key or {}
    # kubernetes-client keeps a kubeconfig's or the pod's token under "BearerToken" (older: "authorization").
    token = str(keys.get("BearerToken") or keys.get("authorization") or "")
    return token.split(" ", 1)[1].strip() if token.lower().startswith("bearer ") else token.strip() or None


def bearer_token(kubeconfig: Path | None = None) -> str | None:
    """The token the kubeconfig's current user (or the pod's service account) authenticates with,
    without contacting the server; None when it uses a client certificate instead."""
    try:
        return _token(_configuration(kubeconfig))
    except (config.ConfigException, OSError) as exc:
        raise ClusterUnavailable(f"no usable kubeconfig for a token: {exc}") from exc


class Cluster:
    """A Kubernetes API connection built at start-up and handed to whoever needs it."""

    def __init__(self, api: client.ApiClient) -> None:
        self._api = api
        self._dynamic = DynamicClient(api)
        self._streams: client.ApiClient | None = None

    @classmethod
    def connect(cls, kubeconfig: Path | None = None, *, pool_size: int = 16) -> Cluster:
        """From a kubeconfig file, else the in-cluster service account, else ~/.kube/config."""
        configuration = _configuration(kubeconfig)
        # One pooled connection per reconcile thread, instead of urllib3 discarding the extras.
        configuration.connection_pool_maxsize = max(configuration.connection_pool_maxsize or 0, pool_size)
        return cls(client.ApiClient(configuration))

    def close(self) -> None:
        self._api.close()
        if self._streams is not None:
            self._streams.close()

    # -- raw listings and watches (the informers' input): JSON as the server sends it ------------

    def _raw(self, path: str, query: list[tuple[str, Any]], timeout: tuple[float, float]) -> Any:
        """A GET on its own connection pool (watches hold theirs for minutes), unread: the caller
        reads and releases it. 410 Gone raises :class:`Expired`."""
        if self._streams is None:
            configuration = copy.copy(self._api.configuration)
            configuration.connection_pool_maxsize = WATCH_CONNECTIONS
            self._streams = client.ApiClient(configuration)
        api = self._streams
        request = api.param_serialize(
            "GET",
            path,
            query_params=query,
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
        )
        try:
            answer = api.call_api(*request, _request_timeout=timeout)
        except (ApiException, HTTPError) as exc:
            raise _translate(exc, f"reading {path}") from exc
        response = answer.response
        if answer.status == 410:
            response.release_conn()
            raise Expired(f"{path}: 410 Gone")
        if not 200 <= answer.status <= 299:
            detail = response.data[:300].decode(errors="replace")
            response.release_conn()
            raise _translate(ApiException(status=answer.status, reason=detail), f"reading {path}")
        return response

    def list_chunk(
        self,
        api_version: str,
        plural: str,
        *,
        label_selector: str | None = None,
        limit: int = 500,
        after: str | None = None,
    ) -> tuple[list[dict[str, Any]], str, str | None]:
        """One page of a cluster-wide listing: its items, the list's resourceVersion, the next page's token."""
        query: list[tuple[str, Any]] = [("limit", limit)]
        if label_selector:
            query.append(("labelSelector", label_selector))
        if after:
            query.append(("continue", after))
        response = self._raw(_path(api_version, plural), query, (10.0, 120.0))
        try:
            body = json.loads(response.data)
        finally:
            response.release_conn()
        meta = body.get("metadata") or {}
        return list(body.get("items") or []), str(meta.get("resourceVersion") or ""), meta.get("continue") or None

    def watch(
        self,
        api_version: str,
        plural: str,
        *,
        resource_version: str,
        label_selector: str | None = None,
        timeout: int = 300,
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """Events from ``resource_version`` on, with bookmarks, until the server ends the watch
        (after about ``timeout`` seconds). An ERROR event of 410 raises :class:`Expired`."""
        query: list[tuple[str, Any]] = [
            ("watch", "true"),
            ("resourceVersion", resource_version),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", timeout),
        ]
        if label_selector:
            query.append(("labelSelector", label_selector))
        path = _path(api_version, plural)
        response = self._raw(path, query, (10.0, timeout + 60.0))
        try:
            for line in iter_resp_lines(response):
                if not line:
                    continue
                event = json.loads(line)
                kind, obj = str(event.get("type")), event.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise Expired(f"{path}: {obj.get('message', '410 Gone')}")
                    raise ClusterUnavailable(f"watching {path}: {obj.get('message', obj)}")
                yield kind, obj
        except HTTPError as exc:
            raise ClusterUnavailable(f"watching {path}: {exc}") from exc
        finally:
            response.close()
            response.release_conn()

    def credentials(self) -> Credentials:
        """How this connection reaches the server, for kopf's own watch connections."""
        cfg = self._api.configuration
        return Credentials(
            server=cfg.host,
            ca_path=cfg.ssl_ca_cert,
            certificate_path=cfg.cert_file,
            private_key_path=cfg.key_file,
            token=_token(cfg),
            insecure=not cfg.verify_ssl,
        )

    def _resource(self, api_version: str, kind: str) -> Any:
        try:
            return self._dynamic.resources.get(api_version=api_version, kind=kind)
        except (ApiException, DynamicApiError, HTTPError) as exc:
            raise ClusterUnavailable(f"cannot discover {kind}.{api_version}: {exc}") from exc

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        resource = self._resource(api_version, kind)
        try:
            found = resource.get(name=name, namespace=namespace)
        except NotFoundError:
            return None
        except (ApiException, DynamicApiError, HTTPError) as exc:
            raise _translate(exc, f"reading {kind} {name}") from exc
        return dict(found.to_dict())

    def list(
        self, api_version: str, kind: str, *, label_selector: str | None = None, namespace: str | None = None
    ) -> list[dict[str, Any]]:
        resource = self._resource(api_version, kind)
        try:
            found = resource.get(namespace=namespace, label_selector=label_selector)
        except (ApiException, DynamicApiError, HTTPError) as exc:
            raise _translate(exc, f"listing {kind}") from exc
        return [dict(item) for item in found.to_dict().get("items", [])]

    def apply(self, obj: dict[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        """Server-side apply ``obj``; with ``dry_run`` nothing is stored."""
        resource = self._resource(obj["apiVersion"], obj["kind"])
        metadata = obj["metadata"]
        try:
            applied = self._dynamic.server_side_apply(
                resource,
                body=obj,
                name=metadata["name"],
                namespace=metadata.get("namespace"),
                field_manager=FIELD_MANAGER,
                force_conflicts=True,
                dry_run="All" if dry_run else None,
            )
        except (ApiException, DynamicApiError, HTTPError) as exc:
            raise _translate(exc, f"applying {obj['kind']} {metadata['name']}") from exc
        return dict(applied.to_dict())

    def create(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        """Create ``obj``; None when it exists already (it is left as it is)."""
        resource = self._resource(obj["apiVersion"], obj["kind"])
        try:
            created = resource.create(body=obj, namespace=obj["metadata"].get("namespace"))
        except ConflictError:
            return None
        except (ApiException, DynamicApiError, HTTPError) as exc:
            raise _translate(exc, f"creating {obj['kind']} {obj['metadata']['name']}") from exc
        return dict(created.to_dict())

    def replace(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        """Replace ``obj`` if its ``resourceVersion`` is still current; None when someone wrote first."""
        resource = self._resource(obj["apiVersion"], obj["kind"])
        metadata = obj["metadata"]
        try:
            replaced = resource.replace(body=obj, name=metadata["name"], namespace=metadata.get("namespace"))
        except ConflictError:
            return None
        except (ApiException, DynamicApiError, HTTPError) as exc:
            raise _translate(exc, f"replacing {obj['kind']} {metadata['name']}") from exc
        return dict(replaced.to_dict())

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> bool:
        """Delete an object; False when it was not there."""
        resource = self._resource(api_version, kind)
        try:
            resource.delete(name=name, namespace=namespace)
        except NotFoundError:
            return False
        except (ApiException, DynamicApiError, HTTPError) as exc:
            raise _translate(exc, f"deleting {kind} {name}") from exc
        return True

    def token_reviewer_token(self, namespace: str, *, seconds: int = 86_400) -> str:
        """A bound token of ``privatevault-token-reviewer`` (made here, bound to system:auth-delegator).

        Vault/OpenBao uses it to review the tenants' service-account tokens at login, so tenant
        service accounts themselves need no cluster-wide rights.
        """
        name = "privatevault-token-reviewer"
        labels = {"app.kubernetes.io/managed-by": "privatevault"}
        self.apply(
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": name, "namespace": namespace, "labels": labels},
            }
        )
        self.apply(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": f"{name}-{namespace}", "labels": labels},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "system:auth-delegator",
                },
                "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
            }
        )
        request = client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=seconds)
        )
        try:
            answer = client.CoreV1Api(self._api).create_namespaced_service_account_token(name, namespace, request)
        except (ApiException, HTTPError) as exc:
            raise _translate(exc, f"requesting a token for {namespace}/{name}") from exc
        if answer.status is None:
            raise ClusterUnavailable(f"the API server returned no token for {namespace}/{name}")
        return str(answer.status.token)

    def review_token(self, token: str) -> dict[str, Any]:
        """The ``status`` of a TokenReview of ``token`` (authenticated, user, error), as the API server answered."""
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}}
        try:
            answer = client.AuthenticationV1Api(self._api).create_token_review(body)  # type: ignore[arg-type]
        except (ApiException, HTTPError) as exc:
            raise _translate(exc, "reviewing a token") from None  # the request body holds the token
        return dict(self._api.sanitize_for_serialization(answer.status) or {})

    def review_access(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        """The ``status`` of a SubjectAccessReview of ``spec`` (allowed, denied, reason)."""
        body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": dict(spec)}
        try:
            answer = client.AuthorizationV1Api(self._api).create_subject_access_review(body)  # type: ignore[arg-type]
        except (ApiException, HTTPError) as exc:
            raise _translate(exc, f"reviewing access of {spec.get('user')!r}") from exc
        return dict(self._api.sanitize_for_serialization(answer.status) or {})

    def patch_status(self, api_version: str, kind: str, name: str, status: dict[str, Any]) -> None:
        """Merge-patch the status subresource of a cluster-scoped object."""
        resource = self._resource(api_version, kind)
        try:
            self._dynamic.patch(
                resource.subresources["status"],
                body={"status": status},
                name=name,
                content_type="application/merge-patch+json",
            )
        except NotFoundError:
            return
        except (ApiException, DynamicApiError, HTTPError) as exc:
            raise _translate(exc, f"writing the status of {kind} {name}") from exc


def _translate(exc: Exception, doing: str) -> Exception:
    status = getattr(exc, "status", None)
    if status is None or status in _RETRYABLE:
        return ClusterUnavailable(f"Kubernetes API failed while {doing}: {_summary(exc)}")
    return SpecError(f"the API server refused {doing}: {_summary(exc)}", reason="ChildRejected")


def _summary(exc: Exception) -> str:
    summary = getattr(exc, "summary", None)
    if callable(summary):
        return str(summary())
    body = getattr(exc, "body", None) or str(exc)
    return str(body)[:500]


class Objects(Protocol):
    """What :class:`SecretStore` needs: the live ``Cluster``, or the cached view over it."""

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None: ...

    def create(self, obj: dict[str, Any]) -> dict[str, Any] | None: ...

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> bool: ...


class SecretStore:
    """Secrets in one namespace, as the KMS and the ledger's key ring need them."""

    def __init__(self, cluster: Objects, namespace: str, *, before_create: Callable[[str], None] | None = None) -> None:
        """``before_create(name)`` runs before a Secret is made (the audit record comes first)."""
        self._cluster, self._namespace, self._before_create = cluster, namespace, before_create

    def read_or_create(self, name: str, make: Callable[[], dict[str, bytes]]) -> StoredSecret:
        """The Secret; created from ``make()`` first when absent (an existing one always wins).

        ``make`` runs only when a Secret is to be created, so reading an existing one costs one GET.
        """
        found = self._cluster.get("v1", "Secret", name, self._namespace)
        if found is None:
            if self._before_create is not None:
                self._before_create(name)
            self._cluster.create(
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "type": "Opaque",
                    "metadata": {
                        "name": name,
                        "namespace": self._namespace,
                        "labels": {"app.kubernetes.io/managed-by": "privatevault"},
                    },
                    "data": {key: base64.b64encode(value).decode() for key, value in make().items()},
                }
            )
            found = self._cluster.get("v1", "Secret", name, self._namespace)
            if found is None:
                raise ClusterUnavailable(f"Secret {self._namespace}/{name} vanished right after it was created")
        return StoredSecret(
            data={key: base64.b64decode(value) for key, value in (found.get("data") or {}).items()},
            created=str(found["metadata"].get("creationTimestamp") or ""),
        )

    def delete(self, name: str) -> None:
        self._cluster.delete("v1", "Secret", name, self._namespace)
