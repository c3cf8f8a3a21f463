"""Witnesses (C2SP tlog-witness): the client the operator submits checkpoints with, and our own witness.

``client`` is the log's side: it submits each new checkpoint with its consistency proof to the
configured witnesses and collects their cosignatures; ``server`` and ``state`` are ``pvctl
witness run``: a small witness with its own key and state, outside the ledger's database. The
protocol and the cosignature format themselves are pure code in ``ledger.witness`` and
``ledger.cosignature``.
"""
