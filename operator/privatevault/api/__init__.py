"""The PrivateVault API: pydantic models are the source of truth; CRDs are generated from them."""
