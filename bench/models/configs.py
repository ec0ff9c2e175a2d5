"""The backbones `run_bench.py models` compares: Swin-T, the paper's Slide-Swin-T and its Im2Col twin, and others.

Slide-Swin-T follows the official cfgs/slide_swin_t.yaml of LeapLabTHU/Slide-Transformer: slide
attention with kernel 3 in stages 1-2 (deformed shifting merged for inference), window
attention in stages 3-4 with WINDOW_SIZE 56 clamped to the feature map, i.e. global attention
with Swin's relative position bias. Left out, as no registered variant computes it: the
official SlideAttention's per-offset key bias (`k + relative_position_bias_table`, one vector
per head and offset), the same small work for every local variant.
"""

from __future__ import annotations

from bench.models.attention import AttentionSpec
from bench.models.backbone import Config

SWIN_WINDOW = 7
TIMM_NAME = "swin_tiny_patch4_window7_224"
TIMM_CONFIG = "timm-swin-t"  # timm's own model, timed as the outside anchor (no registry attention)
FAST_LOCAL = "local-tiled"  # the fastest exact zero-padded variant on CPU in results/reference/ratios-56-k7.csv


def _swin(stage: int, block: int, side: int) -> tuple[AttentionSpec, int]:
    window = min(SWIN_WINDOW, side)  # Swin: a map not larger than the window is one unshifted window
    return AttentionSpec("window-shifted" if block % 2 else "window", window, relative_bias=True), window


def slide_layout(local: str, kernel_size: int = 3):
    """Return the Slide-Swin layout with `local` attention (kernel 3) in stages 1-2 and global windows after."""
    def layout(stage: int, block: int, side: int) -> tuple[AttentionSpec, int]:
        if stage < 2:
            return AttentionSpec(local, kernel_size), side
        return AttentionSpec("window", side, relative_bias=True), side
    return layout


def _nat(stage: int, block: int, side: int) -> tuple[AttentionSpec, int]:
    return AttentionSpec("natten", 7), side


CONFIGS = {config.name: config for config in (
    Config("swin-t", _swin, "Swin-T: window 7, W-MSA and SW-MSA alternating, relative position bias"),
    Config("slide-swin-t", slide_layout("slide-deformed"),
           "Slide-Swin-T: slide attention k3 (deformed, merged) in stages 1-2, global windows in 3-4"),
    Config("im2col-swin-t", slide_layout("im2col"), "the Slide-Swin-T layout with Im2Col k3 in stages 1-2 (the paper's baseline)"),
    Config("nat-t", _nat, "natten k7 in every stage of the Swin-T shape"),
    Config("fast-swin-t", slide_layout(FAST_LOCAL), f"the Slide-Swin-T layout with {FAST_LOCAL} k3 in stages 1-2"),
)}
NAMES = (*CONFIGS, TIMM_CONFIG)
