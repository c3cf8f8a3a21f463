"""kopf's memory of what it handled, read from the objects' own status instead of written for it.

kopf decides what an event means (a creation, an update, nothing) by comparing the object with
the last state it handled, which it keeps in an annotation (``last-handled-configuration``): one
more PATCH of the object after every handled change, one more watch event, one more kopf cycle,
and a second copy of the spec on every object. For the kinds whose reconcile never reads the
previous spec, the status already says what was handled: a generation is handled once
``status.observedGeneration`` is that generation and no retry is due (:func:`status.settled`),
or once this process finished it (:class:`~privatevault.app.Finished`) and that status write's own
watch event has not arrived yet. Anything else reads as not handled yet, a creation to kopf, and
the kind's create handler runs the same reconcile as its update handler.

Kinds whose reconcile compares with the previous spec (ProtectionPolicy's weakening) keep kopf's
annotation. kopf's ``kopf-managed`` marker annotation is not written either: it only names this
operator's annotation prefix to other kopf operators, and on a Tenant it cost a PATCH of its own.
"""

from __future__ import annotations

from collections.abc import Collection

import kopf

from privatevault.api.v1alpha1 import GROUP
from privatevault.app import Finished
from privatevault.reconcile import status


class ObservedDiffBase(kopf.AnnotationsDiffBaseStorage):
    """The last handled state of ``kinds`` from their status; kopf's annotation for the rest."""

    def __init__(self, kinds: Collection[str], finished: Finished) -> None:
        super().__init__(prefix=GROUP)
        self.kinds, self.finished = frozenset(kinds), finished

    def _observed(self, body: kopf.Body) -> bool:
        return body.get("kind") in self.kinds and str(body.get("apiVersion", "")).startswith(f"{GROUP}/")

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        if not self._observed(body):
            return super().fetch(body=body)
        uid = str(body.metadata.uid)
        if status.settled(body) or body.metadata.deletion_timestamp:
            self.finished.forget(uid)  # the status says it now
            return self.build(body=body)
        if self.finished.covers(uid, int(body.metadata.get("generation") or 0)):
            return self.build(body=body)
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        if not self._observed(body):
            super().store(body=body, patch=patch, essence=essence)


class UnmarkedProgress(kopf.AnnotationsProgressStorage):
    """kopf's progress annotations (written only while a handler is retried), without the marker."""

    def _store_marker(self, prefix: str, patch: kopf.Patch, body: kopf.Body) -> None:
        return None


def storages(kinds: Collection[str], finished: Finished) -> tuple[ObservedDiffBase, UnmarkedProgress]:
    return ObservedDiffBase(kinds, finished), UnmarkedProgress(prefix=GROUP)


__all__ = ["ObservedDiffBase", "UnmarkedProgress", "storages"]
