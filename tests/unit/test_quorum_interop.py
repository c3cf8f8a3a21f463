"""Our DSSE envelopes are DSSE to an independent implementation: securesystemslib verifies an
Ed25519 approval we sign, offline, under the keyid we set, and we verify one it signs.

(securesystemslib's ML-DSA scheme ``ml-dsa-65/1`` signs a hash-prefixed message of its own
rather than the PAE itself, so the ML-DSA-65 half is checked against ``pqcrypto`` in
``tests/unit/crypto/test_interop.py`` instead.)"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from securesystemslib.dsse import Envelope as SslibEnvelope
from securesystemslib.exceptions import VerificationError
from securesystemslib.signer import CryptoSigner, Key, SSlibKey

from privatevault.quorum import dsse
from privatevault.quorum.statement import Statement, Target, parse
from tests.quorum_keys import ApproverKeys

STATEMENT = Statement(
    action="DeleteTenant",
    target=Target(kind="Tenant", name="acme", uid="uid-acme", generation=3),
    change_digest="sha256:" + "ab" * 32,
    approver="alice",
    policy="two-person",
    policy_generation=1,
    not_after=datetime(2030, 1, 1, tzinfo=UTC),
)


@pytest.fixture(scope="module")
def alice() -> ApproverKeys:
    return ApproverKeys.generate()


def _sslib_key(keyid: str, public: bytes) -> Key:
    return Key.from_dict(keyid, {"keytype": "ed25519", "scheme": "ed25519", "keyval": {"public": public.hex()}})


def test_securesystemslib_verifies_our_envelope(alice: ApproverKeys) -> None:
    assert alice.ed25519 is not None
    ours = dsse.sign(STATEMENT.payload(), alice.signing())
    keyid = dsse.keyid("Ed25519", alice.ed25519[1])
    theirs = SslibEnvelope.from_dict(ours.to_json())
    accepted = theirs.verify([_sslib_key(keyid, alice.ed25519[1])], 1)
    assert list(accepted) == [keyid]
    assert theirs.payload_type == dsse.PAYLOAD_TYPE
    assert parse(theirs.payload) == STATEMENT


def test_securesystemslib_refuses_our_envelope_under_another_key(alice: ApproverKeys) -> None:
    ours = dsse.sign(STATEMENT.payload(), alice.signing(["Ed25519"]))
    other = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    with pytest.raises(VerificationError):
        SslibEnvelope.from_dict(ours.to_json()).verify([_sslib_key(ours.signatures[0].keyid, other)], 1)


def test_we_verify_an_envelope_securesystemslib_signs() -> None:
    private = Ed25519PrivateKey.generate()
    public = private.public_key().public_bytes_raw()
    keyid = dsse.keyid("Ed25519", public)
    signer = CryptoSigner(private, SSlibKey.from_crypto(private.public_key(), keyid=keyid))
    theirs = SslibEnvelope(STATEMENT.payload(), dsse.PAYLOAD_TYPE, {})
    theirs.sign(signer)
    ours = dsse.parse(theirs.to_dict())
    assert dsse.verify(ours, {"Ed25519": public}) == frozenset({"Ed25519"})
    assert parse(ours.payload) == STATEMENT
