"""A slow, test-only ML-KEM (FIPS 203) with its randomness passed in, to check what OpenSSL hides.

OpenSSL draws ML-KEM's encapsulation randomness itself, so the X-Wing vectors' ``eseed`` cannot
reach it; and neither library turns a 64-byte seed into the expanded decapsulation key the other
one takes. This module does both by following FIPS 203 line by line (algorithm numbers in the
comments): ``encapsulate(ek, m)`` is ML-KEM.Encaps_internal and ``expanded_key(seed)`` is
ML-KEM.KeyGen_internal. It is plain Python, neither constant-time nor fast: never use it outside
tests. Its output is only trusted because the tests hold it to published vectors.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

Q = 3329
N = 256


@dataclass(frozen=True)
class Parameters:
    k: int
    eta1: int
    eta2: int
    du: int
    dv: int


ML_KEM_768 = Parameters(k=3, eta1=2, eta2=2, du=10, dv=4)
ML_KEM_1024 = Parameters(k=4, eta1=2, eta2=2, du=11, dv=5)

Poly = list[int]


def _bitrev7(value: int) -> int:
    return int(f"{value:07b}"[::-1], 2)


_ZETAS = [pow(17, _bitrev7(i), Q) for i in range(128)]
_GAMMAS = [pow(17, 2 * _bitrev7(i) + 1, Q) for i in range(128)]


def _ntt(f: Poly) -> Poly:  # Algorithm 9
    out = list(f)
    i = 1
    length = 128
    while length >= 2:
        for start in range(0, N, 2 * length):
            zeta = _ZETAS[i]
            i += 1
            for j in range(start, start + length):
                t = zeta * out[j + length] % Q
                out[j + length] = (out[j] - t) % Q
                out[j] = (out[j] + t) % Q
        length //= 2
    return out


def _ntt_inverse(f: Poly) -> Poly:  # Algorithm 10
    out = list(f)
    i = 127
    length = 2
    while length <= 128:
        for start in range(0, N, 2 * length):
            zeta = _ZETAS[i]
            i -= 1
            for j in range(start, start + length):
                t = out[j]
                out[j] = (t + out[j + length]) % Q
                out[j + length] = zeta * (out[j + length] - t) % Q
        length *= 2
    return [x * 3303 % Q for x in out]


def _multiply_ntts(f: Poly, g: Poly) -> Poly:  # Algorithms 11 and 12
    out = [0] * N
    for i in range(128):
        a0, a1, b0, b1 = f[2 * i], f[2 * i + 1], g[2 * i], g[2 * i + 1]
        out[2 * i] = (a0 * b0 + a1 * b1 * _GAMMAS[i]) % Q
        out[2 * i + 1] = (a0 * b1 + a1 * b0) % Q
    return out


def _add(f: Poly, g: Poly) -> Poly:
    return [(a + b) % Q for a, b in zip(f, g, strict=True)]


def _sample_ntt(seed: bytes) -> Poly:  # Algorithm 7
    stream = hashlib.shake_128(seed).digest(1008)
    out: Poly = []
    offset = 0
    while len(out) < N:
        if offset + 3 > len(stream):
            stream = hashlib.shake_128(seed).digest(2 * len(stream))
        c0, c1, c2 = stream[offset], stream[offset + 1], stream[offset + 2]
        offset += 3
        d1 = c0 + 256 * (c1 % 16)
        d2 = c1 // 16 + 16 * c2
        if d1 < Q:
            out.append(d1)
        if d2 < Q and len(out) < N:
            out.append(d2)
    return out


def _sample_cbd(data: bytes, eta: int) -> Poly:  # Algorithm 8
    bits = [(data[i // 8] >> (i % 8)) & 1 for i in range(len(data) * 8)]
    return [
        (sum(bits[2 * i * eta + j] for j in range(eta)) - sum(bits[2 * i * eta + eta + j] for j in range(eta))) % Q
        for i in range(N)
    ]


def _prf(eta: int, seed: bytes, counter: int) -> bytes:
    return hashlib.shake_256(seed + bytes([counter])).digest(64 * eta)


def _byte_encode(f: Poly, d: int) -> bytes:  # Algorithm 5
    value = 0
    for i, coefficient in enumerate(f):
        value |= coefficient << (i * d)
    return value.to_bytes(32 * d, "little")


def _byte_decode(data: bytes, d: int) -> Poly:  # Algorithm 6
    value = int.from_bytes(data, "little")
    mask = (1 << d) - 1
    return [(value >> (i * d)) & mask for i in range(N)]


def _compress(f: Poly, d: int) -> Poly:
    return [((x << (d + 1)) + Q) // (2 * Q) % (1 << d) for x in f]


def _decompress(f: Poly, d: int) -> Poly:
    return [(2 * y * Q + (1 << d)) >> (d + 1) for y in f]


def _matrix(rho: bytes, k: int) -> list[list[Poly]]:
    return [[_sample_ntt(rho + bytes([j, i])) for j in range(k)] for i in range(k)]


def _k_pke_keygen(d: bytes, p: Parameters) -> tuple[bytes, bytes]:  # Algorithm 13
    digest = hashlib.sha3_512(d + bytes([p.k])).digest()
    rho, sigma = digest[:32], digest[32:]
    a_hat = _matrix(rho, p.k)
    s = [_sample_cbd(_prf(p.eta1, sigma, i), p.eta1) for i in range(p.k)]
    e = [_sample_cbd(_prf(p.eta1, sigma, p.k + i), p.eta1) for i in range(p.k)]
    s_hat = [_ntt(x) for x in s]
    e_hat = [_ntt(x) for x in e]
    t_hat = []
    for i in range(p.k):
        acc = e_hat[i]
        for j in range(p.k):
            acc = _add(acc, _multiply_ntts(a_hat[i][j], s_hat[j]))
        t_hat.append(acc)
    ek = b"".join(_byte_encode(x, 12) for x in t_hat) + rho
    dk = b"".join(_byte_encode(x, 12) for x in s_hat)
    return ek, dk


def _k_pke_encrypt(ek: bytes, m: bytes, r: bytes, p: Parameters) -> bytes:  # Algorithm 14
    t_hat = [_byte_decode(ek[384 * i : 384 * (i + 1)], 12) for i in range(p.k)]
    rho = ek[384 * p.k :]
    a_hat = _matrix(rho, p.k)
    y = [_sample_cbd(_prf(p.eta1, r, i), p.eta1) for i in range(p.k)]
    e1 = [_sample_cbd(_prf(p.eta2, r, p.k + i), p.eta2) for i in range(p.k)]
    e2 = _sample_cbd(_prf(p.eta2, r, 2 * p.k), p.eta2)
    y_hat = [_ntt(x) for x in y]
    u = []
    for i in range(p.k):
        acc = [0] * N
        for j in range(p.k):
            acc = _add(acc, _multiply_ntts(a_hat[j][i], y_hat[j]))
        u.append(_add(_ntt_inverse(acc), e1[i]))
    mu = _decompress(_byte_decode(m, 1), 1)
    acc = [0] * N
    for i in range(p.k):
        acc = _add(acc, _multiply_ntts(t_hat[i], y_hat[i]))
    v = _add(_add(_ntt_inverse(acc), e2), mu)
    c1 = b"".join(_byte_encode(_compress(x, p.du), p.du) for x in u)
    return c1 + _byte_encode(_compress(v, p.dv), p.dv)


def expanded_key(seed: bytes, p: Parameters) -> tuple[bytes, bytes]:
    """ML-KEM.KeyGen_internal (Algorithm 16): ``(ek, dk)`` from the 64-byte seed ``d || z``."""
    d, z = seed[:32], seed[32:]
    ek, dk_pke = _k_pke_keygen(d, p)
    return ek, dk_pke + ek + hashlib.sha3_256(ek).digest() + z


def encapsulate(ek: bytes, m: bytes, p: Parameters) -> tuple[bytes, bytes]:
    """ML-KEM.Encaps_internal (Algorithm 17): ``(ciphertext, shared_secret)`` for the 32-byte ``m``."""
    digest = hashlib.sha3_512(m + hashlib.sha3_256(ek).digest()).digest()
    shared_secret, r = digest[:32], digest[32:]
    return _k_pke_encrypt(ek, m, r, p), shared_secret
