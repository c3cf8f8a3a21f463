"""Every signature algorithm of the API signs and verifies, and refuses tampered signatures, messages and keys."""

from __future__ import annotations

import functools
from typing import get_args

import pytest

from privatevault.api.v1alpha1.protectionpolicy import Signature
from privatevault.crypto import SIGNERS, Signer, signer

MESSAGE = b"release manifest v1.2.3"
NAMES = list(get_args(Signature))


@functools.cache
def signed(name: str) -> tuple[bytes, bytes, bytes]:
    """``(private, public, signature over MESSAGE)``, made once per algorithm: SLH-DSA is slow to sign."""
    algorithm = signer(name)
    private, public = algorithm.generate()
    return private, public, algorithm.sign(private, MESSAGE)


@functools.cache
def other_public_key(name: str) -> bytes:
    return signer(name).generate()[1]


def test_every_api_name_has_a_signer() -> None:
    assert set(SIGNERS) == set(NAMES)
    for name, algorithm in SIGNERS.items():
        assert algorithm.name == name


def test_unknown_name_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown signature algorithm 'RSA-2048'; known: Ed25519, ECDSA-P384"):
        signer("RSA-2048")


@pytest.mark.parametrize("name", NAMES)
def test_signature_verifies(name: str) -> None:
    _, public, signature = signed(name)
    assert signer(name).verify(public, MESSAGE, signature) is True


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_flipped_signature_bit_fails(name: str, where: str) -> None:
    _, public, signature = signed(name)
    position = {"first": 0, "middle": len(signature) // 2, "last": len(signature) - 1}[where]
    tampered = bytearray(signature)
    tampered[position] ^= 0x01
    assert signer(name).verify(public, MESSAGE, bytes(tampered)) is False


@pytest.mark.parametrize("name", NAMES)
def test_other_message_fails(name: str) -> None:
    _, public, signature = signed(name)
    assert signer(name).verify(public, MESSAGE + b"!", signature) is False


@pytest.mark.parametrize("name", NAMES)
def test_other_key_fails(name: str) -> None:
    _, _, signature = signed(name)
    assert signer(name).verify(other_public_key(name), MESSAGE, signature) is False


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("cut", ["empty", "truncated", "extended"])
def test_malformed_signature_is_false_not_an_error(name: str, cut: str) -> None:
    _, public, signature = signed(name)
    malformed = {"empty": b"", "truncated": signature[:-1], "extended": signature + b"\x00"}[cut]
    assert signer(name).verify(public, MESSAGE, malformed) is False


@pytest.mark.parametrize("name", NAMES)
def test_wrong_size_keys_are_configuration_errors(name: str) -> None:
    algorithm: Signer = signer(name)
    private, public, signature = signed(name)
    with pytest.raises(ValueError, match=r"must be|framed"):
        algorithm.sign(private[:-1], MESSAGE)
    with pytest.raises(ValueError, match=r"must be|framed"):
        algorithm.verify(public[:-1], MESSAGE, signature)


@pytest.mark.parametrize("name", ["Ed25519", "ECDSA-P384", "ML-DSA-65", "Ed25519+ML-DSA-65"])
def test_keys_are_reusable_bytes(name: str) -> None:
    private, public, _ = signed(name)
    algorithm = signer(name)
    assert algorithm.verify(public, b"second message", algorithm.sign(private, b"second message"))


def test_ecdsa_p384_rejects_an_out_of_range_scalar() -> None:
    with pytest.raises(ValueError, match="not a scalar"):
        signer("ECDSA-P384").sign(b"\xff" * 48, MESSAGE)


def test_ecdsa_p384_rejects_a_point_off_the_curve() -> None:
    with pytest.raises(ValueError, match="not a point on P-384"):
        signer("ECDSA-P384").verify(b"\x04" + b"\x01" * 96, MESSAGE, b"\x00" * 96)
