"""DSSE as the spec writes it: the PAE matches the spec's own test vector (its published ECDSA
signature verifies over our bytes), both algorithms sign and verify, and nothing else verifies:
another key, a tampered payload or type, a keyid naming another key, a small-order Ed25519 key."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.hashes import SHA256

from privatevault.quorum import dsse
from tests.quorum_keys import ApproverKeys

# secure-systems-lab/dsse protocol.md, "Test Vectors".
SPEC_TYPE = "http://example.com/HelloWorld"
SPEC_BODY = b"hello world"
SPEC_PAE = b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
SPEC_X = 46950820868899156662930047687818585632848591499744589407958293238635476079160
SPEC_Y = 5640078356564379163099075877009565129882514886557779369047442380624545832820
SPEC_SIG = "A3JqsQGtVsJ2O2xqrI5IcnXip5GToJ3F+FnZ+O88SjtR6rDAajabZKciJTfUiHqJPcIAriEGAHTVeCUjW2JIZA=="

#: libsodium's blocklist of small-order Ed25519 encodings (and non-canonical ones).
SMALL_ORDER = [
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0100000000000000000000000000000000000000000000000000000000000000",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
]

PAYLOAD = b'{"hello":"world"}'


@pytest.fixture(scope="module")
def alice() -> ApproverKeys:
    return ApproverKeys.generate()


@pytest.fixture(scope="module")
def mallory() -> ApproverKeys:
    return ApproverKeys.generate()


def _public(keys: ApproverKeys) -> dict[dsse.Algorithm, bytes]:
    return {alg: pair[1] for alg, pair in keys.signing().items()}


def test_pae_is_the_spec_vector() -> None:
    assert dsse.pae(SPEC_TYPE, SPEC_BODY) == SPEC_PAE


def test_the_spec_signature_verifies_over_our_pae() -> None:
    key = ec.EllipticCurvePublicNumbers(SPEC_X, SPEC_Y, ec.SECP256R1()).public_key()
    raw = base64.b64decode(SPEC_SIG)
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    key.verify(der, dsse.pae(SPEC_TYPE, SPEC_BODY), ec.ECDSA(SHA256()))


def test_pae_counts_bytes_not_characters() -> None:
    assert dsse.pae("t", "é".encode()) == b"DSSEv1 1 t 2 \xc3\xa9"
    assert dsse.pae("", b"") == b"DSSEv1 0  0 "


@pytest.mark.parametrize("algorithms", [("Ed25519",), ("ML-DSA-65",), ("Ed25519", "ML-DSA-65")])
def test_sign_and_verify(alice: ApproverKeys, algorithms: tuple[dsse.Algorithm, ...]) -> None:
    envelope = dsse.sign(PAYLOAD, alice.signing(algorithms))
    assert [dsse.algorithm_of(s.keyid) for s in envelope.signatures] == list(algorithms)
    assert dsse.verify(envelope, _public(alice)) == frozenset(algorithms)
    again = dsse.parse(envelope.to_json())
    assert again == envelope
    assert dsse.verify(again, _public(alice)) == frozenset(algorithms)


def test_keyid_names_the_public_key(alice: ApproverKeys) -> None:
    assert alice.ed25519 is not None
    envelope = dsse.sign(PAYLOAD, alice.signing(["Ed25519"]))
    assert envelope.signatures[0].keyid == "ed25519:" + hashlib.sha256(alice.ed25519[1]).hexdigest()


def test_another_key_verifies_nothing(alice: ApproverKeys, mallory: ApproverKeys) -> None:
    envelope = dsse.sign(PAYLOAD, mallory.signing())
    assert dsse.verify(envelope, _public(alice)) == frozenset()


def test_a_tampered_payload_or_type_verifies_nothing(alice: ApproverKeys) -> None:
    envelope = dsse.sign(PAYLOAD, alice.signing())
    tampered = dsse.Envelope(envelope.payload_type, PAYLOAD.replace(b"world", b"earth"), envelope.signatures)
    retyped = dsse.Envelope("application/json", envelope.payload, envelope.signatures)
    assert dsse.verify(tampered, _public(alice)) == frozenset()
    assert dsse.verify(retyped, _public(alice)) == frozenset()


def test_a_signature_under_the_keyid_of_another_key_does_not_count(alice: ApproverKeys, mallory: ApproverKeys) -> None:
    """Mallory signs and names Alice's key: the keyid matches, the signature does not."""
    forged = dsse.sign(PAYLOAD, mallory.signing())
    theirs = dsse.sign(PAYLOAD, alice.signing())
    relabelled = dsse.Envelope(
        forged.payload_type,
        forged.payload,
        tuple(
            dsse.Signature(mine.keyid, sig.sig) for mine, sig in zip(theirs.signatures, forged.signatures, strict=True)
        ),
    )
    assert dsse.verify(relabelled, _public(alice)) == frozenset()


def test_alice_signature_under_another_keyid_does_not_count(alice: ApproverKeys) -> None:
    """The keyid must be that of the policy's key: a right signature under an unknown keyid is not counted."""
    envelope = dsse.sign(PAYLOAD, alice.signing(["Ed25519"]))
    renamed = dsse.Envelope(
        envelope.payload_type, envelope.payload, (dsse.Signature("ed25519:" + "0" * 64, envelope.signatures[0].sig),)
    )
    assert dsse.verify(renamed, _public(alice)) == frozenset()


@pytest.mark.parametrize("encoding", SMALL_ORDER)
def test_small_order_ed25519_keys_are_found(encoding: str) -> None:
    raw = bytes.fromhex(encoding)
    assert dsse.small_order(raw)
    assert dsse.small_order(raw[:31] + bytes([raw[31] | 0x80]))


def test_real_ed25519_keys_are_not_small_order(alice: ApproverKeys, mallory: ApproverKeys) -> None:
    assert alice.ed25519 is not None and mallory.ed25519 is not None
    assert not dsse.small_order(alice.ed25519[1])
    assert not dsse.small_order(mallory.ed25519[1])


def test_no_forgery_counts_under_the_all_zero_key() -> None:
    """Under the all-zero key OpenSSL accepts the all-zero signature for many messages; we count none."""
    zero = bytes(32)
    for n in range(16):
        payload = b'{"n":%d}' % n
        envelope = dsse.Envelope(dsse.PAYLOAD_TYPE, payload, (dsse.Signature(dsse.keyid("Ed25519", zero), bytes(64)),))
        assert dsse.verify(envelope, {"Ed25519": zero}) == frozenset()


def test_url_safe_base64_is_read(alice: ApproverKeys) -> None:
    """The protocol: "Signers may use either [encoding], and verifiers MUST accept either"."""
    envelope = dsse.sign(b"\xfb\xff\xfe" * 20, alice.signing())
    document = envelope.to_json()
    urlsafe = {
        "payloadType": document["payloadType"],
        "payload": base64.urlsafe_b64encode(envelope.payload).decode(),
        "signatures": [
            {"keyid": s.keyid, "sig": base64.urlsafe_b64encode(s.sig).decode()} for s in envelope.signatures
        ],
    }
    assert urlsafe["payload"] != document["payload"]
    assert dsse.parse(urlsafe) == envelope


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"payload": "e30=", "signatures": [{"keyid": "k", "sig": "c2ln"}]}, "no payloadType"),
        ({"payloadType": "t", "payload": "e30=", "signatures": []}, "carries no signature"),
        ({"payloadType": "t", "payload": "e30=", "signatures": [{"sig": "c2ln"}]}, "signature 1 has no keyid"),
        ({"payloadType": "t", "payload": "e30", "signatures": [{"keyid": "k", "sig": "c2ln"}]}, "payload is not valid"),
        ({"payloadType": "t", "payload": "e30=", "signatures": [{"keyid": "k", "sig": 1}]}, "must be a base64 string"),
    ],
)
def test_malformed_envelopes_are_named(document: dict[str, object], message: str) -> None:
    with pytest.raises(dsse.EnvelopeError, match=message):
        dsse.parse(document)


def test_sign_needs_a_key() -> None:
    with pytest.raises(ValueError, match="at least one key"):
        dsse.sign(PAYLOAD, {})
