"""Evidence bundles: what an auditor receives, and how they check it without trusting anyone.

- ``archive``: the deterministic ``tar.gz`` (sorted entries, zeroed times and owners, fixed
  modes, a gzip header without name or time) and its safe unpacking;
- ``layout``: the files of a bundle, the sections of records and what is derived from them;
- ``manifest``: the in-toto Statement v1 naming every file by SHA-256, in a DSSE envelope signed
  with Ed25519 and ML-DSA-65;
- ``writer``: a bundle streamed from an :class:`~privatevault.evidence.writer.EvidenceSource`
  (the ledger), memory flat in the size of the window;
- ``verifier``: the offline check, naming the first problem;
- ``keys``: the operator's evidence signing keys, kept wrapped like the checkpoint keys;
- ``exporter``: a bundle written to its destination aside, fsynced, renamed; ``finished`` finds
  one for the read API.

Pure but for files: the PostgreSQL reads are ``evidence.store``, built by the composition root.
"""
