"""Writing a custom resource's status: only when it changed, so an idle reconcile writes nothing."""

from __future__ import annotations

from pydantic import BaseModel

from privatevault.api.v1alpha1 import API_VERSION
from privatevault.cluster import Cluster


def write_status(cluster: Cluster, kind: str, name: str, before: BaseModel | None, after: BaseModel) -> None:
    if before == after:
        return
    cluster.patch_status(API_VERSION, kind, name, after.model_dump(mode="json", by_alias=True, exclude_none=True))
