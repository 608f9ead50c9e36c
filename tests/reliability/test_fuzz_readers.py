"""The file readers survive fuzzed input: clean errors or well-formed results."""

import pytest
from _benchmarks import import_benchmark


@pytest.fixture(scope="module")
def harness():
    return import_benchmark("fuzz_readers")


def _check(report):
    for name, r in report.items():
        assert r["unexpected"] == [], (name, r["unexpected"][:3])
        # the inputs reach both the error paths and the success paths
        assert r["outcomes"].get("clean_error", 0) > 0, name
        ok = r["outcomes"].get("ok", 0) + r["outcomes"].get("ok_with_warning", 0)
        assert ok > 0, (name, r)  # the tallies and error types, to see why


def test_fuzz_readers_short(harness):
    _check(harness.fuzz(n_examples=60, random_seed=0))


@pytest.mark.slow
def test_fuzz_readers_long(harness):
    _check(harness.fuzz(n_examples=3000, random_seed=1))
