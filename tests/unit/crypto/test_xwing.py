"""X-Wing matches every vector of draft-connolly-cfrg-xwing-kem (keygen, exact encapsulation, decapsulation)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from privatevault.crypto import xwing

from . import mlkem_reference
from .vectors import XWingVector, xwing_vectors

VECTORS = xwing_vectors()


def vector_id(vector: XWingVector) -> str:
    return vector.seed.hex()[:12]


@pytest.mark.parametrize("vector", VECTORS, ids=vector_id)
def test_keygen_matches_vector(vector: XWingVector) -> None:
    sk, pk = xwing.generate_keypair(vector.seed)
    assert sk == vector.sk
    assert pk == vector.pk


@pytest.mark.parametrize("vector", VECTORS, ids=vector_id)
def test_decapsulation_matches_vector(vector: XWingVector) -> None:
    assert xwing.decapsulate(vector.sk, vector.ct) == vector.ss


@pytest.mark.parametrize("vector", VECTORS, ids=vector_id)
def test_encapsulation_with_vector_randomness_matches_exactly(vector: XWingVector) -> None:
    # OpenSSL takes no encapsulation randomness, so the module's own combining code is run through
    # its seam with the vector's eseed: a reference ML-KEM fed eseed[0:32], X25519 fed eseed[32:64].
    def mlkem_with_eseed(pk_m: bytes) -> tuple[bytes, bytes]:
        return mlkem_reference.encapsulate(pk_m, vector.eseed[:32], mlkem_reference.ML_KEM_768)

    ephemeral = X25519PrivateKey.from_private_bytes(vector.eseed[32:])
    ct, ss = xwing._encapsulate_with(vector.pk, mlkem_with_eseed, ephemeral)
    assert ct == vector.ct
    assert ss == vector.ss


def test_vectors_are_all_read() -> None:
    assert len(VECTORS) >= 3
    for vector in VECTORS:
        assert (len(vector.sk), len(vector.pk), len(vector.ct), len(vector.ss)) == (32, 1216, 1120, 32)


def test_round_trip_with_openssl_randomness() -> None:
    sk, pk = xwing.generate_keypair()
    assert (len(sk), len(pk)) == (xwing.PRIVATE_KEY_SIZE, xwing.PUBLIC_KEY_SIZE)
    ct, ss = xwing.encapsulate(pk)
    assert (len(ct), len(ss)) == (xwing.CIPHERTEXT_SIZE, xwing.SHARED_SECRET_SIZE)
    assert xwing.decapsulate(sk, ct) == ss


def test_encapsulations_differ() -> None:
    _, pk = xwing.generate_keypair()
    assert xwing.encapsulate(pk) != xwing.encapsulate(pk)


@pytest.mark.parametrize(
    "position", [0, 500, 1087, 1088, 1119], ids=["ct_M-first", "ct_M-mid", "ct_M-last", "ct_X-first", "ct_X-last"]
)
def test_flipped_ciphertext_bit_changes_the_secret(position: int) -> None:
    vector = VECTORS[0]
    tampered = bytearray(vector.ct)
    tampered[position] ^= 0x01
    assert xwing.decapsulate(vector.sk, bytes(tampered)) != vector.ss


def test_wrong_private_key_gives_another_secret() -> None:
    vector = VECTORS[0]
    other_sk, _ = xwing.generate_keypair()
    assert xwing.decapsulate(other_sk, vector.ct) != vector.ss


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: xwing.generate_keypair(b"\x00" * 31), "X-Wing seed must be 32 bytes, got 31"),
        (lambda: xwing.encapsulate(b"\x00" * 1215), "X-Wing public key must be 1216 bytes, got 1215"),
        (lambda: xwing.decapsulate(b"\x00" * 33, b"\x00" * 1120), "X-Wing private key must be 32 bytes, got 33"),
        (lambda: xwing.decapsulate(b"\x00" * 32, b"\x00" * 1121), "X-Wing ciphertext must be 1120 bytes, got 1121"),
    ],
    ids=["seed", "public-key", "private-key", "ciphertext"],
)
def test_wrong_lengths_are_refused_clearly(call: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


def test_low_order_x25519_share_is_refused() -> None:
    vector = VECTORS[0]
    with pytest.raises(ValueError, match="invalid X25519 share"):
        xwing.decapsulate(vector.sk, vector.ct[:1088] + b"\x00" * 32)
    with pytest.raises(ValueError, match="invalid X25519 part"):
        xwing.encapsulate(vector.pk[:1184] + b"\x00" * 32)


def test_public_api_is_exactly_the_three_functions_and_sizes() -> None:
    functions = {name for name in xwing.__all__ if callable(getattr(xwing, name))}
    assert functions == {"generate_keypair", "encapsulate", "decapsulate"}
