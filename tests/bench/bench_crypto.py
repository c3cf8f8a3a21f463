"""Throughput of the crypto core: X-Wing, envelope wrapping, ML-DSA-65 and ML-KEM-768 on this machine.

Each figure is the median over several timed batches (``time.perf_counter``), after one warm-up
batch; a batch is sized to take about 0.1 s, so the whole run stays well under 20 s. Rates are
operations per second (``*_per_s``), latencies milliseconds per operation (``*_ms``).

For comparison with the seed design's expectation (Kyber-768 about 1 ms, Dilithium-3 signing
about 10 ms) see ``ml_kem_768_encapsulate_ms``, ``ml_kem_768_decapsulate_ms`` and
``ml_dsa_65_sign_ms_cryptography``. ``*_wrapper_*`` figures go through
``privatevault.crypto`` (keys as bytes, re-expanded on every call); the others call the library
directly with its key objects held.

    python -m tests.bench.bench_crypto      # prints the figures as JSON
"""

from __future__ import annotations

import json
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric import mldsa, mlkem
from pqcrypto.sign import ml_dsa_65 as pq_ml_dsa_65

from privatevault.crypto import (
    ML_DSA_65,
    KeyContext,
    LocalAesGcmWrapper,
    generate_data_key,
    unwrap_data_key,
    wrap_data_key,
    xwing,
)
from tests.bench.timing import per_second

_MESSAGE = b"x" * 256
_BATCHES = 7
_BATCH_SECONDS = 0.1


def _rate(operation: Callable[[], object]) -> float:
    return per_second(operation, batches=_BATCHES, batch_seconds=_BATCH_SECONDS)


def _ms(rate: float) -> float:
    return 1000.0 / rate


def _xwing() -> dict[str, float]:
    sk, pk = xwing.generate_keypair()
    ct, _ = xwing.encapsulate(pk)
    return {
        "xwing_keygen_per_s": _rate(xwing.generate_keypair),
        "xwing_encapsulate_per_s": _rate(lambda: xwing.encapsulate(pk)),
        "xwing_decapsulate_per_s": _rate(lambda: xwing.decapsulate(sk, ct)),
    }


def _envelope() -> dict[str, float]:
    sk, pk = xwing.generate_keypair()
    context = KeyContext(tenant="tenant-a", workload="payments", key_version=1)
    kek = LocalAesGcmWrapper.generate()
    data_key = generate_data_key()
    wrapped = wrap_data_key(data_key, pk, context=context)
    double = wrap_data_key(data_key, pk, context=context, kek=kek)
    return {
        "envelope_wrap_per_s": _rate(lambda: wrap_data_key(data_key, pk, context=context)),
        "envelope_unwrap_per_s": _rate(lambda: unwrap_data_key(wrapped, sk, context=context)),
        "envelope_wrap_with_kek_per_s": _rate(lambda: wrap_data_key(data_key, pk, context=context, kek=kek)),
        "envelope_unwrap_with_kek_per_s": _rate(lambda: unwrap_data_key(double, sk, context=context, kek=kek)),
    }


def _ml_dsa_65() -> dict[str, float]:
    key = mldsa.MLDSA65PrivateKey.generate()
    public = key.public_key()
    signature = key.sign(_MESSAGE)
    pq_public, pq_private = pq_ml_dsa_65.keygen()
    pq_signature = pq_ml_dsa_65.sign(pq_private, _MESSAGE)
    seed, public_bytes = ML_DSA_65.generate()
    wrapper_signature = ML_DSA_65.sign(seed, _MESSAGE)
    sign_cryptography = _rate(lambda: key.sign(_MESSAGE))
    return {
        "ml_dsa_65_sign_per_s_cryptography": sign_cryptography,
        "ml_dsa_65_verify_per_s_cryptography": _rate(lambda: public.verify(signature, _MESSAGE)),
        "ml_dsa_65_sign_per_s_pqcrypto": _rate(lambda: pq_ml_dsa_65.sign(pq_private, _MESSAGE)),
        "ml_dsa_65_verify_per_s_pqcrypto": _rate(lambda: pq_ml_dsa_65.verify(pq_public, _MESSAGE, pq_signature)),
        "ml_dsa_65_sign_per_s_wrapper": _rate(lambda: ML_DSA_65.sign(seed, _MESSAGE)),
        "ml_dsa_65_verify_per_s_wrapper": _rate(lambda: ML_DSA_65.verify(public_bytes, _MESSAGE, wrapper_signature)),
        "ml_dsa_65_sign_ms_cryptography": _ms(sign_cryptography),
    }


def _ml_kem_768() -> dict[str, float]:
    key = mlkem.MLKEM768PrivateKey.generate()
    public = key.public_key()
    _, ciphertext = public.encapsulate()
    return {
        "ml_kem_768_encapsulate_ms": _ms(_rate(public.encapsulate)),
        "ml_kem_768_decapsulate_ms": _ms(_rate(lambda: key.decapsulate(ciphertext))),
    }


def run() -> dict[str, float]:
    """Measure and return every figure; prints nothing."""
    return {**_xwing(), **_envelope(), **_ml_dsa_65(), **_ml_kem_768()}


if __name__ == "__main__":
    print(json.dumps({name: round(value, 4) for name, value in run().items()}, indent=2))
