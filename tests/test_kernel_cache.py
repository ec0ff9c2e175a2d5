"""local-tiled's compiled-kernel cache loads only what this user built and verified."""

from __future__ import annotations

import os
import stat

import pytest

from attention_variants import local_tiled

pytestmark = pytest.mark.skipif(local_tiled.compiler() is None, reason="no C compiler here (local-tiled needs one)")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setattr(local_tiled, "CACHE", folder)
    return folder


def _library(cache):
    [path] = cache.glob("local_tiled_k3_*.so")
    return path


def test_the_cache_is_private_and_each_library_has_its_hash(cache):
    local_tiled.compile_library(3)
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    library = _library(cache)
    assert library.with_suffix(".sha256").read_text().strip() == local_tiled._digest(library)


@pytest.mark.parametrize("damage", ["empty", "planted"])
def test_a_damaged_or_planted_library_is_rebuilt_not_loaded(cache, damage):
    local_tiled.compile_library(3)
    library = _library(cache)
    good = library.read_bytes()
    replacement = library.with_name("replacement")  # a new file in its place (this process has the old one mapped)
    replacement.write_bytes(b"" if damage == "empty" else b"\x7fELF not the kernel this user built")
    os.replace(replacement, library)
    lib = local_tiled.compile_library(3)  # loading the damaged file would fail or run its constructor
    assert lib.local_attention_forward and library.read_bytes() == good


def test_a_world_writable_cache_is_made_private_again(cache):
    local_tiled.compile_library(3)
    cache.chmod(0o777)
    local_tiled.compile_library(3)
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700


@pytest.mark.skipif(os.getuid() != 0, reason="giving the cache folder to another user needs root")
def test_a_cache_folder_of_another_user_is_not_used(cache):
    cache.mkdir()
    os.chown(cache, 12345, 12345)
    local_tiled.compile_library(3)
    assert not list(cache.glob("*.so"))  # built in a private folder of this process instead
