"""Builders of the child objects the operator makes: pure functions from models to manifests."""
