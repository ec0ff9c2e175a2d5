"""The roofline's peaks are measured once per machine and thread count, then read back; --recalibrate measures again."""

from __future__ import annotations

from pathlib import Path

import pytest

from attention_variants import local_tiled
from attention_variants.case import Case
from bench.measure import roofline

CASES = [Case(variant="im2col"), Case(variant="im2col", dtype="bfloat16")]


@pytest.fixture
def measured(monkeypatch, tmp_path):
    """Return the list of (device, dtype, threads) the calibration kernels ran for; the cache lives in tmp_path."""
    monkeypatch.setattr(local_tiled, "CACHE", tmp_path / "cache")
    calls = []

    def fake_peaks(device, dtype, threads):
        calls.append((device, str(dtype), threads))
        return roofline.Peaks(100.0 + len(calls), 10.0)

    monkeypatch.setattr(roofline, "peaks", fake_peaks)
    return calls


def test_peaks_are_measured_once_then_read_from_the_cache(measured):
    first = roofline.cached_calibration(CASES, 2, {})
    assert len(measured) == 2 and set(first) == {"cpu/float32", "cpu/bfloat16"}
    assert roofline.cached_calibration(CASES, 2, {}) == first and len(measured) == 2  # read back, nothing measured
    assert roofline.cached_calibration(CASES, 1, {}) != first and len(measured) == 4  # another thread count: its own


def test_recalibrate_measures_again_and_replaces_the_cache(measured):
    first = roofline.cached_calibration(CASES[:1], 2, {})
    again = roofline.cached_calibration(CASES[:1], 2, {}, recalibrate=True)
    assert again != first and len(measured) == 2
    assert roofline.cached_calibration(CASES[:1], 2, {}) == again and len(measured) == 2


def test_a_damaged_cache_file_is_measured_again(measured):
    roofline.cached_calibration(CASES[:1], 2, {})
    (cached,) = (local_tiled.CACHE).glob("roofline-*.json")
    for text in ("not json", '{"cpu/float32": [-1.0, 2.0]}', "[1, 2]"):
        cached.write_text(text)
        peaks = roofline.cached_calibration(CASES[:1], 2, {})
        assert peaks["cpu/float32"][0] > 0
    assert len(measured) == 4


def test_a_vm_moved_to_another_cpu_measures_again(measured, monkeypatch):
    # Same host name and brand string ("AMD EPYC"), another CPU model underneath: its own peaks.
    first = roofline.cached_calibration(CASES[:1], 2, {})
    monkeypatch.setattr(local_tiled, "machine_id", lambda: "cpu family\t: 26\nflags\t: avx512f avx512_vp2intersect")
    assert roofline.cached_calibration(CASES[:1], 2, {}) != first and len(measured) == 2


def test_the_cpu_identity_names_family_model_and_flags_not_the_clock():
    if not Path("/proc/cpuinfo").is_file():
        pytest.skip("no /proc/cpuinfo on this system")
    identity = local_tiled.machine_id()
    names = {line.partition(":")[0].strip() for line in identity.splitlines()}
    assert names & {"flags", "Features"} and "cpu MHz" not in names and "model name" not in names
