"""The ML-KEM-768 and ML-KEM-1024 wrappers round-trip, derive keys from seeds, and refuse bad input clearly."""

from __future__ import annotations

import pytest

from privatevault.crypto import ML_KEM_768, ML_KEM_1024
from privatevault.crypto.mlkem import MlKem

from . import mlkem_reference

SCHEMES = [
    (ML_KEM_768, mlkem_reference.ML_KEM_768),
    (ML_KEM_1024, mlkem_reference.ML_KEM_1024),
]
IDS = [scheme.name for scheme, _ in SCHEMES]


@pytest.mark.parametrize(("scheme", "reference"), SCHEMES, ids=IDS)
def test_round_trip(scheme: MlKem, reference: mlkem_reference.Parameters) -> None:
    sk, pk = scheme.generate_keypair()
    assert (len(sk), len(pk)) == (scheme.private_key_size, scheme.public_key_size)
    ct, ss = scheme.encapsulate(pk)
    assert (len(ct), len(ss)) == (scheme.ciphertext_size, 32)
    assert scheme.decapsulate(sk, ct) == ss


@pytest.mark.parametrize(("scheme", "reference"), SCHEMES, ids=IDS)
def test_seed_gives_the_fips_203_key(scheme: MlKem, reference: mlkem_reference.Parameters) -> None:
    seed = bytes(range(64))
    sk, pk = scheme.generate_keypair(seed)
    assert sk == seed
    assert pk == scheme.public_key(seed)
    assert pk == mlkem_reference.expanded_key(seed, reference)[0]


@pytest.mark.parametrize(("scheme", "reference"), SCHEMES, ids=IDS)
def test_exact_encapsulation_decapsulates_to_the_reference_secret(
    scheme: MlKem, reference: mlkem_reference.Parameters
) -> None:
    sk, pk = scheme.generate_keypair(bytes(range(1, 65)))
    ct, ss = mlkem_reference.encapsulate(pk, b"\x42" * 32, reference)
    assert scheme.decapsulate(sk, ct) == ss


@pytest.mark.parametrize(("scheme", "reference"), SCHEMES, ids=IDS)
def test_flipped_ciphertext_bit_gives_an_unrelated_secret(scheme: MlKem, reference: mlkem_reference.Parameters) -> None:
    sk, pk = scheme.generate_keypair()
    ct, ss = scheme.encapsulate(pk)
    tampered = bytearray(ct)
    tampered[len(ct) // 2] ^= 0x80
    assert scheme.decapsulate(sk, bytes(tampered)) != ss


@pytest.mark.parametrize(("scheme", "reference"), SCHEMES, ids=IDS)
def test_wrong_lengths_name_algorithm_and_sizes(scheme: MlKem, reference: mlkem_reference.Parameters) -> None:
    with pytest.raises(ValueError, match=f"{scheme.name} seed must be 64 bytes, got 32"):
        scheme.generate_keypair(b"\x00" * 32)
    with pytest.raises(ValueError, match=f"{scheme.name} public key must be {scheme.public_key_size} bytes, got 1"):
        scheme.encapsulate(b"\x00")
    with pytest.raises(ValueError, match=f"{scheme.name} ciphertext must be {scheme.ciphertext_size} bytes"):
        scheme.decapsulate(b"\x00" * 64, b"\x00" * 10)


@pytest.mark.parametrize(("scheme", "reference"), SCHEMES, ids=IDS)
def test_public_key_failing_the_modulus_check_is_refused(scheme: MlKem, reference: mlkem_reference.Parameters) -> None:
    # FIPS 203 section 7.2: every 12-bit coefficient must be below q = 3329; 0xFFF is not.
    _, pk = scheme.generate_keypair()
    bad = b"\xff\xff\xff" + pk[3:]
    with pytest.raises(ValueError, match="not a valid encapsulation key"):
        scheme.encapsulate(bad)
