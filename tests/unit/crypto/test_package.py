"""The crypto package's public surface is what ``__all__`` says, and nothing in it prints a secret."""

from __future__ import annotations

from privatevault import crypto
from privatevault.crypto import KEMS, SIGNERS


def test_all_names_resolve() -> None:
    assert sorted(crypto.__all__) == sorted(set(crypto.__all__))
    for name in crypto.__all__:
        assert hasattr(crypto, name), name


def test_reprs_are_short_and_hold_no_bytes() -> None:
    for algorithm in {**KEMS, **SIGNERS}.values():
        text = repr(algorithm)
        assert len(text) < 48, text
        assert "b'" not in text
