"""The read API: what auditors, tenants and ``pvctl`` read from a running operator, over HTTPS.

Modules, from the pure ones up:

- :mod:`~privatevault.readapi.models`: the responses (pydantic), from which ``openapi.json`` is made;
- :mod:`~privatevault.readapi.query`: the audit filters and the paging cursor (pure);
- :mod:`~privatevault.readapi.authz`: TokenReview + SubjectAccessReview decisions and their cache
  (pure but for the reviews, which are handed in);
- :mod:`~privatevault.readapi.views`: gathers the status and tenant views from the ledger and the cluster
  (shared by the server and ``pvctl status``/``pvctl tenant`` without ``--server``);
- :mod:`~privatevault.readapi.openapi`: the OpenAPI document, committed and checked by ``make verify``;
- :mod:`~privatevault.readapi.server`: the aiohttp application in the operator's event loop.

The evidence seam: :func:`privatevault.readapi.server.ReadApi.register_evidence` takes a function
that maps an EvidenceExport name to its bundle (path and tenants), or None; ``/api/v1/evidence/{name}``
serves what it returns.
"""
