"""A wrapped data key opens only with the right private key, tenant, workload, key version and KEK, and unaltered."""

from __future__ import annotations

import base64
import dataclasses
import json
from typing import get_args

import pytest

from privatevault.api.v1alpha1.protectionpolicy import Kem as KemName
from privatevault.crypto import (
    KEMS,
    X_WING,
    KeyContext,
    LocalAesGcmWrapper,
    UnwrapError,
    WrappedKey,
    generate_data_key,
    unwrap_data_key,
    wrap_data_key,
)
from privatevault.errors import PrivateVaultError

CONTEXT = KeyContext(tenant="tenant-a", workload="payments", key_version=3)
SK, PK = X_WING.generate_keypair()


def flip(data: bytes, position: int) -> bytes:
    out = bytearray(data)
    out[position] ^= 0x01
    return bytes(out)


def test_every_api_kem_can_wrap() -> None:
    assert set(KEMS) == set(get_args(KemName))
    for name, scheme in KEMS.items():
        sk, pk = scheme.generate_keypair()
        data_key = generate_data_key()
        wrapped = wrap_data_key(data_key, pk, context=CONTEXT, kem=name)
        assert wrapped.kem == name
        assert unwrap_data_key(wrapped, sk, context=CONTEXT) == data_key


def test_round_trip_with_x_wing_by_default() -> None:
    data_key = generate_data_key()
    wrapped = wrap_data_key(data_key, PK, context=CONTEXT)
    assert wrapped.kem == "X-Wing"
    assert wrapped.version == 1
    assert len(wrapped.ciphertext) == 32 + 16
    assert unwrap_data_key(wrapped, SK, context=CONTEXT) == data_key


def test_wraps_of_one_key_differ() -> None:
    data_key = generate_data_key()
    first, second = (wrap_data_key(data_key, PK, context=CONTEXT) for _ in range(2))
    assert first.kem_ciphertext != second.kem_ciphertext
    assert first.ciphertext != second.ciphertext


@pytest.mark.parametrize(
    "wrong",
    [
        KeyContext(tenant="tenant-b", workload="payments", key_version=3),
        KeyContext(tenant="tenant-a", workload="ledger", key_version=3),
        KeyContext(tenant="tenant-a", workload="payments", key_version=4),
        # The same characters split differently between fields: framing keeps them apart.
        KeyContext(tenant="tenant-apay", workload="ments", key_version=3),
    ],
    ids=["tenant", "workload", "key-version", "shifted-boundary"],
)
def test_wrong_context_fails(wrong: KeyContext) -> None:
    wrapped = wrap_data_key(generate_data_key(), PK, context=CONTEXT)
    with pytest.raises(UnwrapError, match="tenant, workload or key version"):
        unwrap_data_key(wrapped, SK, context=wrong)


def test_wrong_private_key_fails() -> None:
    wrapped = wrap_data_key(generate_data_key(), PK, context=CONTEXT)
    other_sk, _ = X_WING.generate_keypair()
    with pytest.raises(UnwrapError):
        unwrap_data_key(wrapped, other_sk, context=CONTEXT)


@pytest.mark.parametrize("position", [0, 1087, 1088, 1119])
def test_flipped_kem_ciphertext_bit_fails(position: int) -> None:
    wrapped = wrap_data_key(generate_data_key(), PK, context=CONTEXT)
    tampered = dataclasses.replace(wrapped, kem_ciphertext=flip(wrapped.kem_ciphertext, position))
    with pytest.raises(UnwrapError):
        unwrap_data_key(tampered, SK, context=CONTEXT)


@pytest.mark.parametrize("position", [0, 31, 32, 47])
def test_flipped_wrapped_key_bit_fails(position: int) -> None:
    wrapped = wrap_data_key(generate_data_key(), PK, context=CONTEXT)
    tampered = dataclasses.replace(wrapped, ciphertext=flip(wrapped.ciphertext, position))
    with pytest.raises(UnwrapError):
        unwrap_data_key(tampered, SK, context=CONTEXT)


def test_relabelled_kem_fails() -> None:
    wrapped = wrap_data_key(generate_data_key(), PK, context=CONTEXT)
    with pytest.raises(UnwrapError):
        unwrap_data_key(dataclasses.replace(wrapped, kem="X25519"), SK, context=CONTEXT)
    with pytest.raises(UnwrapError, match="unknown KEM 'RSA'"):
        unwrap_data_key(dataclasses.replace(wrapped, kem="RSA"), SK, context=CONTEXT)


def test_unknown_format_version_fails() -> None:
    wrapped = wrap_data_key(generate_data_key(), PK, context=CONTEXT)
    with pytest.raises(UnwrapError, match="format 2 is not readable"):
        unwrap_data_key(dataclasses.replace(wrapped, version=2), SK, context=CONTEXT)


def test_private_key_of_another_kem_fails_clearly() -> None:
    wrapped = wrap_data_key(generate_data_key(), PK, context=CONTEXT)
    with pytest.raises(UnwrapError, match="64 bytes; X-Wing, which wrapped this key, uses 32-byte private keys"):
        unwrap_data_key(wrapped, b"\x00" * 64, context=CONTEXT)


def test_truncated_kem_ciphertext_fails_clearly() -> None:
    wrapped = wrap_data_key(generate_data_key(), PK, context=CONTEXT)
    with pytest.raises(UnwrapError, match="1119 bytes; X-Wing makes 1120"):
        unwrap_data_key(dataclasses.replace(wrapped, kem_ciphertext=wrapped.kem_ciphertext[:-1]), SK, context=CONTEXT)


class TestKek:
    def test_round_trip_needs_both_layers(self) -> None:
        kek = LocalAesGcmWrapper.generate()
        data_key = generate_data_key()
        wrapped = wrap_data_key(data_key, PK, context=CONTEXT, kek=kek)
        assert wrapped.kek_wrapped
        assert unwrap_data_key(wrapped, SK, context=CONTEXT, kek=kek) == data_key

    def test_missing_kek_fails(self) -> None:
        wrapped = wrap_data_key(generate_data_key(), PK, context=CONTEXT, kek=LocalAesGcmWrapper.generate())
        with pytest.raises(UnwrapError, match="pass the tenant's KEK wrapper"):
            unwrap_data_key(wrapped, SK, context=CONTEXT)

    def test_unexpected_kek_fails(self) -> None:
        wrapped = wrap_data_key(generate_data_key(), PK, context=CONTEXT)
        with pytest.raises(UnwrapError, match="was not wrapped by one"):
            unwrap_data_key(wrapped, SK, context=CONTEXT, kek=LocalAesGcmWrapper.generate())

    def test_wrong_kek_fails(self) -> None:
        wrapped = wrap_data_key(generate_data_key(), PK, context=CONTEXT, kek=LocalAesGcmWrapper.generate())
        with pytest.raises(UnwrapError, match="KEK could not unwrap"):
            unwrap_data_key(wrapped, SK, context=CONTEXT, kek=LocalAesGcmWrapper.generate())

    def test_wrong_context_fails_at_the_kek(self) -> None:
        kek = LocalAesGcmWrapper.generate()
        wrapped = wrap_data_key(generate_data_key(), PK, context=CONTEXT, kek=kek)
        with pytest.raises(UnwrapError, match="wrong context"):
            unwrap_data_key(wrapped, SK, context=dataclasses.replace(CONTEXT, tenant="tenant-b"), kek=kek)

    def test_flipped_bit_in_kek_layer_fails(self) -> None:
        kek = LocalAesGcmWrapper.generate()
        wrapped = wrap_data_key(generate_data_key(), PK, context=CONTEXT, kek=kek)
        for position in (0, 12, len(wrapped.ciphertext) - 1):
            tampered = dataclasses.replace(wrapped, ciphertext=flip(wrapped.ciphertext, position))
            with pytest.raises(UnwrapError):
                unwrap_data_key(tampered, SK, context=CONTEXT, kek=kek)

    def test_the_kek_sees_only_ciphertext(self) -> None:
        seen: list[bytes] = []

        class Recording:
            def __init__(self) -> None:
                self.inner = LocalAesGcmWrapper.generate()

            def wrap(self, plaintext: bytes, *, context: bytes) -> bytes:
                seen.append(plaintext)
                return self.inner.wrap(plaintext, context=context)

            def unwrap(self, ciphertext: bytes, *, context: bytes) -> bytes:
                return self.inner.unwrap(ciphertext, context=context)

        data_key = generate_data_key()
        wrap_data_key(data_key, PK, context=CONTEXT, kek=Recording())
        assert len(seen) == 1
        assert data_key not in seen[0]

    def test_short_kek_data_fails(self) -> None:
        with pytest.raises(UnwrapError, match="shorter than a nonce and a tag"):
            LocalAesGcmWrapper.generate().unwrap(b"\x00" * 27, context=b"")

    def test_kek_needs_a_32_byte_key_and_hides_it(self) -> None:
        with pytest.raises(ValueError, match="AES-256-GCM KEK must be 32 bytes, got 16"):
            LocalAesGcmWrapper(b"\x00" * 16)
        key = bytes(range(32))
        assert key.hex() not in repr(LocalAesGcmWrapper(key))


class TestSerialisation:
    def test_json_round_trip(self) -> None:
        kek = LocalAesGcmWrapper.generate()
        data_key = generate_data_key()
        wrapped = wrap_data_key(data_key, PK, context=CONTEXT, kek=kek)
        text = json.dumps(wrapped.to_dict())
        restored = WrappedKey.from_dict(json.loads(text))
        assert restored == wrapped
        assert unwrap_data_key(restored, SK, context=CONTEXT, kek=kek) == data_key

    def test_dict_holds_no_plaintext_and_no_context(self) -> None:
        data_key = generate_data_key()
        wrapped = wrap_data_key(data_key, PK, context=CONTEXT)
        form = wrapped.to_dict()
        assert set(form) == {"version", "kem", "kemCiphertext", "ciphertext", "kekWrapped"}
        text = json.dumps(form)
        for secret in (data_key.hex(), base64.b64encode(data_key).decode(), "tenant-a", "payments"):
            assert secret not in text
        assert data_key.hex() not in repr(wrapped)

    @pytest.mark.parametrize(
        ("change", "message"),
        [
            ({"extra": 1}, "extra \\['extra'\\]"),
            ({"version": "1"}, "'version' must be an integer"),
            ({"version": True}, "'version' must be an integer"),
            ({"kem": 7}, "'kem' must be a string"),
            ({"kekWrapped": "no"}, "'kekWrapped' must be a boolean"),
            ({"ciphertext": "not base64!"}, "'ciphertext' is not valid base64"),
            ({"kemCiphertext": None}, "'kemCiphertext' must be a base64 string"),
        ],
        ids=["extra", "version-string", "version-bool", "kem", "kek", "base64", "missing-bytes"],
    )
    def test_malformed_dict_is_refused(self, change: dict[str, object], message: str) -> None:
        form: dict[str, object] = {**wrap_data_key(generate_data_key(), PK, context=CONTEXT).to_dict(), **change}
        with pytest.raises(ValueError, match=message):
            WrappedKey.from_dict(form)

    def test_missing_field_is_named(self) -> None:
        form = dict(wrap_data_key(generate_data_key(), PK, context=CONTEXT).to_dict())
        del form["kem"]
        with pytest.raises(ValueError, match="missing \\['kem'\\]"):
            WrappedKey.from_dict(form)


class TestInputs:
    def test_data_key_must_be_256_bits(self) -> None:
        with pytest.raises(ValueError, match="data key must be 32 bytes, got 16"):
            wrap_data_key(b"\x00" * 16, PK, context=CONTEXT)

    def test_unknown_kem_is_refused(self) -> None:
        with pytest.raises(ValueError, match="unknown KEM 'Kyber'"):
            wrap_data_key(generate_data_key(), PK, context=CONTEXT, kem="Kyber")

    @pytest.mark.parametrize(
        "fields",
        [
            {"tenant": "", "workload": "w", "key_version": 1},
            {"tenant": "t", "workload": "", "key_version": 1},
            {"tenant": "t", "workload": "w", "key_version": -1},
            {"tenant": "t", "workload": "w", "key_version": True},
        ],
        ids=["tenant", "workload", "negative-version", "bool-version"],
    )
    def test_context_is_validated(self, fields: dict[str, object]) -> None:
        with pytest.raises(ValueError, match="key context"):
            KeyContext(**fields)  # type: ignore[arg-type]

    def test_unwrap_error_is_a_privatevault_error(self) -> None:
        assert issubclass(UnwrapError, PrivateVaultError)
