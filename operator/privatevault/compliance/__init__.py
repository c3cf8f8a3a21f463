"""Compliance: the check library, evaluation, the score and the history of control states (pure).

The shared design is ``docs/design/compliance.md``; nothing here does I/O. The modules:

- ``facts``: what checks read (``TenantFacts``, ``ClusterFacts``), built by the adapter from caches;
- ``checks``: the library (``LIBRARY``, ``CHECK_NAMES``, ``compile_check``, ``Finding``);
- ``evaluate``: ``compile_framework``, ``evaluate``, ``changes``, ``summarize`` and the status fields;
- ``waivers``: exceptions and attestations, their change digests and states (``entries``, ``decide``);
- ``score``: the documented formula;
- ``records``: the ``compliance-state`` ledger record and its idempotency key;
- ``openreports``: the OpenReports ``Report`` of a framework for a tenant;
- ``reference``: the generated ``docs/compliance-checks.md``.
"""
