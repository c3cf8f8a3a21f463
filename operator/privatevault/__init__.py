"""PrivateVault: a Kubernetes operator for tenant isolation, post-quantum key protection,
quorum approvals and tamper-evident compliance evidence."""

__version__ = "0.1.0"
