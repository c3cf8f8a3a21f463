"""The crypto benchmark imports without printing and returns a positive figure for every measure."""

from __future__ import annotations

import importlib

import pytest


def test_benchmark_runs_quietly(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    bench = importlib.import_module("tests.bench.bench_crypto")
    monkeypatch.setattr(bench, "_BATCH_SECONDS", 0.0005)
    monkeypatch.setattr(bench, "_BATCHES", 1)
    figures = bench.run()
    assert capsys.readouterr().out == ""
    assert {"xwing_encapsulate_per_s", "envelope_wrap_per_s", "ml_dsa_65_sign_ms_cryptography"} <= set(figures)
    assert all(isinstance(value, float) and value > 0 for value in figures.values())
