"""ML-DSA and ML-KEM made by OpenSSL (cryptography) and by pqcrypto are interchangeable, both ways.

What bridges: public keys, signatures and ciphertexts are the FIPS 203/204 byte strings in both.
What does not: private keys. ``cryptography`` takes and gives only seeds (64 bytes for ML-KEM,
32 for ML-DSA); ``pqcrypto`` only the expanded keys, and cannot derive them from a seed. For
ML-KEM the test expands the seed with the reference (FIPS 203 KeyGen_internal) and pqcrypto
decapsulates with it; for ML-DSA no such bridge is built (it would need a whole ML-DSA keygen).
"""

from __future__ import annotations

from types import ModuleType

import pytest
from cryptography.hazmat.primitives.asymmetric import mldsa
from pqcrypto import InvalidSignatureError
from pqcrypto.kem import ml_kem_768, ml_kem_1024
from pqcrypto.sign import ml_dsa_44, ml_dsa_65, ml_dsa_87

from privatevault.crypto import ED25519_ML_DSA_65, ML_DSA_44, ML_DSA_65, ML_DSA_87, ML_KEM_768, ML_KEM_1024
from privatevault.crypto.composite import DOMAIN
from privatevault.crypto.framing import frame, unframe
from privatevault.crypto.mldsa import MlDsa
from privatevault.crypto.mlkem import MlKem

from . import mlkem_reference

MESSAGE = b"interop"
DSA = [(ML_DSA_44, ml_dsa_44), (ML_DSA_65, ml_dsa_65), (ML_DSA_87, ml_dsa_87)]
DSA_IDS = [ours.name for ours, _ in DSA]
KEM = [
    (ML_KEM_768, ml_kem_768, mlkem_reference.ML_KEM_768),
    (ML_KEM_1024, ml_kem_1024, mlkem_reference.ML_KEM_1024),
]
KEM_IDS = [ours.name for ours, _, _ in KEM]
CONTEXTS = [b"", b"privatevault"]


@pytest.mark.parametrize(("ours", "theirs"), DSA, ids=DSA_IDS)
@pytest.mark.parametrize("context", CONTEXTS, ids=["empty-context", "context"])
def test_openssl_signature_verifies_in_pqcrypto(ours: MlDsa, theirs: ModuleType, context: bytes) -> None:
    private, public = ours.generate()
    signature = ours.sign(private, MESSAGE, context=context)
    assert theirs.verify(public, MESSAGE, signature, context) is None
    with pytest.raises(InvalidSignatureError):
        theirs.verify(public, MESSAGE, signature, context + b"x")


@pytest.mark.parametrize(("ours", "theirs"), DSA, ids=DSA_IDS)
@pytest.mark.parametrize("context", CONTEXTS, ids=["empty-context", "context"])
def test_pqcrypto_signature_verifies_in_openssl(ours: MlDsa, theirs: ModuleType, context: bytes) -> None:
    public, private = theirs.keygen()
    signature = bytes(theirs.sign(private, MESSAGE, context))
    assert ours.verify(public, MESSAGE, signature, context=context) is True
    assert ours.verify(public, MESSAGE, signature, context=context + b"x") is False
    # The plain API (no context argument at all) is the empty context.
    if not context:
        assert mldsa_public(ours, public).verify(signature, MESSAGE) is None


def test_composite_post_quantum_half_checks_in_pqcrypto() -> None:
    private, public = ED25519_ML_DSA_65.generate()
    signature = ED25519_ML_DSA_65.sign(private, MESSAGE)
    _, pq_public = unframe(public, 2)
    _, pq_signature = unframe(signature, 2)
    bound = frame([DOMAIN, b"Ed25519+ML-DSA-65"]) + MESSAGE
    assert ml_dsa_65.verify(pq_public, bound, pq_signature, b"Ed25519+ML-DSA-65") is None


@pytest.mark.parametrize(("ours", "theirs", "reference"), KEM, ids=KEM_IDS)
def test_openssl_encapsulation_decapsulates_in_pqcrypto(
    ours: MlKem, theirs: ModuleType, reference: mlkem_reference.Parameters
) -> None:
    seed, public = ours.generate_keypair()
    ek, expanded = mlkem_reference.expanded_key(seed, reference)
    assert ek == public
    assert len(expanded) == theirs.SECRET_KEY_SIZE
    ciphertext, shared_secret = ours.encapsulate(public)
    assert bytes(theirs.decaps(expanded, ciphertext)) == shared_secret


@pytest.mark.parametrize(("ours", "theirs", "reference"), KEM, ids=KEM_IDS)
def test_pqcrypto_encapsulation_decapsulates_in_openssl(
    ours: MlKem, theirs: ModuleType, reference: mlkem_reference.Parameters
) -> None:
    seed, public = ours.generate_keypair()
    ciphertext, shared_secret = theirs.encaps(public)
    assert ours.decapsulate(seed, bytes(ciphertext)) == bytes(shared_secret)


@pytest.mark.parametrize(("ours", "theirs", "reference"), KEM, ids=KEM_IDS)
def test_openssl_encapsulates_to_a_pqcrypto_key(
    ours: MlKem, theirs: ModuleType, reference: mlkem_reference.Parameters
) -> None:
    public, private = theirs.keygen()
    ciphertext, shared_secret = ours.encapsulate(bytes(public))
    assert bytes(theirs.decaps(private, ciphertext)) == shared_secret


@pytest.mark.parametrize(("ours", "theirs", "reference"), KEM, ids=KEM_IDS)
def test_private_key_formats_differ(ours: MlKem, theirs: ModuleType, reference: mlkem_reference.Parameters) -> None:
    public, private = theirs.keygen()
    # pqcrypto's key is FIPS 203's expanded dk = dk_PKE || ek || H(ek) || z; OpenSSL's is the seed.
    assert len(private) == 768 * reference.k + 96 != ours.private_key_size
    assert private[384 * reference.k : 768 * reference.k + 32] == public
    with pytest.raises(ValueError, match="must be 64 bytes"):
        ours.decapsulate(bytes(private), b"\x00" * ours.ciphertext_size)


@pytest.mark.parametrize(("ours", "theirs"), DSA, ids=DSA_IDS)
def test_ml_dsa_private_key_formats_differ(ours: MlDsa, theirs: ModuleType) -> None:
    assert theirs.SECRET_KEY_SIZE > 32
    _, private = theirs.keygen()
    with pytest.raises(ValueError, match="must be 32 bytes"):
        ours.sign(bytes(private), MESSAGE)


def mldsa_public(
    ours: MlDsa, public: bytes
) -> mldsa.MLDSA44PublicKey | mldsa.MLDSA65PublicKey | mldsa.MLDSA87PublicKey:
    if ours.name == "ML-DSA-44":
        return mldsa.MLDSA44PublicKey.from_public_bytes(public)
    if ours.name == "ML-DSA-65":
        return mldsa.MLDSA65PublicKey.from_public_bytes(public)
    return mldsa.MLDSA87PublicKey.from_public_bytes(public)
