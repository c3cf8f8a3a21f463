"""A composite signature verifies only when both halves do, and neither half can be cut out and reused."""

from __future__ import annotations

import functools
import re

import pytest

from privatevault.crypto import ECDSA_P384_ML_DSA_87, ED25519_ML_DSA_65, CompositeSigner
from privatevault.crypto.composite import DOMAIN
from privatevault.crypto.framing import frame, unframe

MESSAGE = b"approve: rotate tenant-a key v7"
COMPOSITES = [ED25519_ML_DSA_65, ECDSA_P384_ML_DSA_87]
IDS = [composite.name for composite in COMPOSITES]


@functools.cache
def signed(name: str) -> tuple[bytes, bytes, bytes]:
    composite = next(c for c in COMPOSITES if c.name == name)
    private, public = composite.generate()
    return private, public, composite.sign(private, MESSAGE)


def parts(composite: CompositeSigner) -> tuple[tuple[bytes, bytes], tuple[bytes, bytes], tuple[bytes, bytes]]:
    private, public, signature = signed(composite.name)
    a, b = unframe(private, 2)
    c, d = unframe(public, 2)
    e, f = unframe(signature, 2)
    return (a, b), (c, d), (e, f)


def test_names_are_the_api_names() -> None:
    assert [c.name for c in COMPOSITES] == ["Ed25519+ML-DSA-65", "ECDSA-P384+ML-DSA-87"]


@pytest.mark.parametrize("composite", COMPOSITES, ids=IDS)
def test_both_halves_valid_verifies(composite: CompositeSigner) -> None:
    _, public, signature = signed(composite.name)
    assert composite.verify(public, MESSAGE, signature)


@pytest.mark.parametrize("composite", COMPOSITES, ids=IDS)
def test_bad_classical_half_fails(composite: CompositeSigner) -> None:
    (classical_private, _), _, (_, pq_signature) = parts(composite)
    classical_private_other, _ = composite.classical.generate()
    _, public, _ = signed(composite.name)
    bound = frame([DOMAIN, composite.name.encode()]) + MESSAGE
    # A classical signature that is valid, but by another key: the composite must still fail.
    forged = frame([composite.classical.sign(classical_private_other, bound), pq_signature])
    assert composite.verify(public, MESSAGE, forged) is False
    # And the real classical key signing another message.
    other = frame([composite.classical.sign(classical_private, bound + b"x"), pq_signature])
    assert composite.verify(public, MESSAGE, other) is False


@pytest.mark.parametrize("composite", COMPOSITES, ids=IDS)
def test_bad_post_quantum_half_fails(composite: CompositeSigner) -> None:
    (_, pq_private), _, (classical_signature, pq_signature) = parts(composite)
    _, public, _ = signed(composite.name)
    bound = frame([DOMAIN, composite.name.encode()]) + MESSAGE
    other_private, _ = composite.post_quantum.generate()
    forged = frame(
        [classical_signature, composite.post_quantum.sign(other_private, bound, context=composite.name.encode())]
    )
    assert composite.verify(public, MESSAGE, forged) is False
    flipped = bytearray(pq_signature)
    flipped[100] ^= 0x04
    assert composite.verify(public, MESSAGE, frame([classical_signature, bytes(flipped)])) is False
    # The right key and message but no context: the half is bound to the composite's name.
    no_context = frame([classical_signature, composite.post_quantum.sign(pq_private, bound)])
    assert composite.verify(public, MESSAGE, no_context) is False


@pytest.mark.parametrize("composite", COMPOSITES, ids=IDS)
def test_a_half_cut_out_is_not_a_plain_signature_over_the_message(composite: CompositeSigner) -> None:
    _, (classical_public, pq_public), (classical_signature, pq_signature) = parts(composite)
    assert composite.classical.verify(classical_public, MESSAGE, classical_signature) is False
    assert composite.post_quantum.verify(pq_public, MESSAGE, pq_signature) is False


@pytest.mark.parametrize("composite", COMPOSITES, ids=IDS)
def test_one_half_alone_or_reordered_fails(composite: CompositeSigner) -> None:
    _, public, signature = signed(composite.name)
    classical_signature, pq_signature = unframe(signature, 2)
    assert composite.verify(public, MESSAGE, frame([classical_signature, b""])) is False
    assert composite.verify(public, MESSAGE, frame([b"", pq_signature])) is False
    assert composite.verify(public, MESSAGE, frame([pq_signature, classical_signature])) is False
    assert composite.verify(public, MESSAGE, frame([classical_signature])) is False
    assert composite.verify(public, MESSAGE, signature + b"\x00") is False


@pytest.mark.parametrize("composite", COMPOSITES, ids=IDS)
def test_malformed_keys_are_configuration_errors(composite: CompositeSigner) -> None:
    private, public, signature = signed(composite.name)
    with pytest.raises(ValueError, match=f"{re.escape(composite.name)} public key is not two framed components"):
        composite.verify(public + b"\x00", MESSAGE, signature)
    with pytest.raises(ValueError, match=f"{re.escape(composite.name)} private key is not two framed components"):
        composite.sign(private[:10], MESSAGE)
