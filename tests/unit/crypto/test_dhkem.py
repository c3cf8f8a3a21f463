"""The X25519 KEM is RFC 9180's DHKEM(X25519, HKDF-SHA256): it reproduces the RFC's appendix A.1 values."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from privatevault.crypto import X25519_KEM

# RFC 9180, appendix A.1 (DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM), the KEM's values.
IKM_E = bytes.fromhex("7268600d403fce431561aef583ee1613527cff655c1343f29812e66706df3234")
PK_EM = bytes.fromhex("37fda3567bdbd628e88668c3c8d7e97d1d1253b6d4ea6d44c150f741f1bf4431")
SK_EM = bytes.fromhex("52c4a758a802cd8b936eceea314432798d5baf2d7e9235dc084ab1b9cfa2f736")
IKM_R = bytes.fromhex("6db9df30aa07dd42ee5e8181afdb977e538f5e1fec8a06223f33f7013e525037")
PK_RM = bytes.fromhex("3948cfe0ad1ddb695d780e59077195da6c56506b027329794ab02bca80815c4d")
SK_RM = bytes.fromhex("4612c550263fc8ad58375df3f557aac531d26850903e55a9f23f21d8534e8ac8")
SHARED_SECRET = bytes.fromhex("fe0e18c9f024ce43799ae393c7e8fe8fce9d218875e8227b0187c04e7d2ea1fc")


def test_derive_key_pair_matches_rfc() -> None:
    assert X25519_KEM.generate_keypair(IKM_R) == (SK_RM, PK_RM)
    assert X25519_KEM.generate_keypair(IKM_E) == (SK_EM, PK_EM)


def test_encapsulation_with_rfc_ephemeral_key_matches() -> None:
    enc, ss = X25519_KEM._encapsulate_with(PK_RM, X25519PrivateKey.from_private_bytes(SK_EM))
    assert enc == PK_EM
    assert ss == SHARED_SECRET


def test_decapsulation_matches_rfc() -> None:
    assert X25519_KEM.decapsulate(SK_RM, PK_EM) == SHARED_SECRET


def test_round_trip() -> None:
    sk, pk = X25519_KEM.generate_keypair()
    enc, ss = X25519_KEM.encapsulate(pk)
    assert X25519_KEM.decapsulate(sk, enc) == ss


def test_invalid_shares_and_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="X25519 public key must be 32 bytes"):
        X25519_KEM.encapsulate(b"\x01" * 31)
    with pytest.raises(ValueError, match="not a valid public share"):
        X25519_KEM.decapsulate(SK_RM, b"\x00" * 32)
