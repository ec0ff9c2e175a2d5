import pytest

import attention_variants as av
from attention_variants.registry import UnknownVariant, Variant


def test_seed_variants_are_registered():
    assert {"im2col", "slide", "slide-deformed", "window", "window-shifted", "natten"} <= set(av.names())


def test_unknown_name_lists_known_names():
    with pytest.raises(UnknownVariant, match="known: im2col"):
        av.get("nope")


def test_duplicate_name_is_an_error():
    with pytest.raises(ValueError, match="already registered"):
        av.register(Variant("im2col", "local-zero-pad", av.get("im2col").build))


def test_unknown_family_is_an_error():
    with pytest.raises(ValueError, match="unknown family"):
        av.register(Variant("fresh-name", "global", av.get("im2col").build))


def test_window_skips_when_window_does_not_tile():
    case = av.Case(variant="window", height=15, width=14, kernel_size=7)
    assert "does not divide" in av.get("window").supports(case)
    assert av.get("im2col").supports(case.replace(variant="im2col")) is None
