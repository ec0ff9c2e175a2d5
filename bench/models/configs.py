"""The backbones `run_bench.py models` compares: Swin-T/S/B, the paper's Slide-Swin-T/S/B, their Im2Col twins, and others.

Slide-Swin-T/S/B follow the official cfgs/slide_swin_{t,s,b}.yaml of LeapLabTHU/Slide-Transformer (the
Swin shape of the same size, KA 3, NUM_SLIDE_STAGES 2, WINDOW_SIZE 56): slide
attention with kernel 3 in stages 1-2 (deformed shifting merged for inference), window
attention in stages 3-4 with WINDOW_SIZE 56 clamped to the feature map, i.e. global attention
with Swin's relative position bias. Left out, as no registered variant computes it: the
official SlideAttention's per-offset key bias (`k + relative_position_bias_table`, one vector
per head and offset), the same small work for every local variant.
"""

from __future__ import annotations

from bench.models.attention import AttentionSpec
from bench.models.backbone import SWIN_B, SWIN_S, SWIN_T, Config
from bench.models.pvt import PVT_L, PVT_M, PVT_S, PVT_T, PVT_V2_B1, PVT_V2_B1_LI, PVT_V2_B2, PVT_V2_B2_LI, Pvt

SWIN_WINDOW = 7
# timm's own models, timed as outside anchors (no registry attention): config -> (timm name, the config it equals).
TIMM = {
    "timm-swin-t": ("swin_tiny_patch4_window7_224", "swin-t"),
    "timm-swin-s": ("swin_small_patch4_window7_224", "swin-s"),
    "timm-swin-b": ("swin_base_patch4_window7_224", "swin-b"),
    "timm-pvt-v2-b1": ("pvt_v2_b1", "pvt-v2-b1"),
    "timm-pvt-v2-b2": ("pvt_v2_b2", "pvt-v2-b2"),
    "timm-pvt-v2-b2-li": ("pvt_v2_b2_li", "pvt-v2-b2-li"),
}
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


def _pvt(stage: int, block: int, side: int) -> tuple[AttentionSpec | None, int]:
    return None, side  # spatial-reduction attention (bench.models.pvt)


def pvt_layout(local: str, kernel_size: int = 3):
    """Return the Slide-PVT layout: `local` attention (kernel 3) in stages 1-2, PVT's own SRA after."""
    def layout(stage: int, block: int, side: int) -> tuple[AttentionSpec | None, int]:
        return (AttentionSpec(local, kernel_size), side) if stage < 2 else (None, side)
    return layout


def _pvt_family(size: str, shape, slide: bool = True) -> tuple[Config, ...]:
    """Return PVT (v1 sizes T, S, M, L; v2 sizes B1, B2, standard or linear) and, where `slide`, its Slide and Im2Col
    forms. The paper's Slide-PVTv2 is built on PVTv2-Li (docs/models.md: only that fits its table), so the Slide forms
    of `pvt-v2-b2-li` are `slide-pvt-v2-b2` and `im2col-pvt-v2-b2`."""
    name, title = (f"pvt-v2-{size.lower()}", f"PVTv2-{size}") if shape.v2 else (f"pvt-{size.lower()}", f"PVT-{size}")
    what = "overlapping patch embeddings, depthwise-conv MLP" if shape.v2 else "class token"
    sra = "linear SRA (pooled to 7x7, 1x1 reduction)" if shape.linear else "spatial-reduction attention (reduction 8-4-2-1)"
    suffix = ("-li", "-Li") if shape.linear else ("", "")
    pvt = Config(name + suffix[0], _pvt, f"{title}{suffix[1]}: {sra}, {what}", shape, Pvt)
    if not slide:
        return (pvt,)
    return (
        pvt,
        Config(f"slide-{name}", pvt_layout("slide-deformed"),
               f"Slide-{title}: slide attention k3 (deformed, merged) in stages 1-2 of {pvt.name}, its SRA in 3-4", shape, Pvt),
        Config(f"im2col-{name}", pvt_layout("im2col"),
               f"the Slide-{title} layout with Im2Col k3 in stages 1-2 (the paper's baseline)", shape, Pvt),
    )


def _nat(stage: int, block: int, side: int) -> tuple[AttentionSpec, int]:
    return AttentionSpec("natten", 7), side


def _fast(stage: int, block: int, side: int) -> tuple[AttentionSpec, int]:
    # Swin's 7 x 7 windows replaced by exact local attention over 7 x 7 keys centred on each query (no shift needed);
    # a map narrower than 7 (small test images) gets the largest odd kernel that fits, as Swin clamps its window.
    return AttentionSpec(FAST_LOCAL, min(SWIN_WINDOW, side if side % 2 else side - 1)), side


def _family(size: str, shape) -> tuple[Config, ...]:
    """Return Swin, Slide-Swin and Im2Col-Swin of one size (T, S or B)."""
    lower = size.lower()
    return (
        Config(f"swin-{lower}", _swin, f"Swin-{size}: window 7, W-MSA and SW-MSA alternating, relative position bias", shape),
        Config(f"slide-swin-{lower}", slide_layout("slide-deformed"),
               f"Slide-Swin-{size}: slide attention k3 (deformed, merged) in stages 1-2, global windows in 3-4", shape),
        Config(f"im2col-swin-{lower}", slide_layout("im2col"),
               f"the Slide-Swin-{size} layout with Im2Col k3 in stages 1-2 (the paper's baseline)", shape),
    )


CONFIGS = {config.name: config for config in (
    *_family("T", SWIN_T), *_family("S", SWIN_S), *_family("B", SWIN_B),
    *_pvt_family("T", PVT_T), *_pvt_family("S", PVT_S), *_pvt_family("M", PVT_M), *_pvt_family("L", PVT_L, slide=False),
    *_pvt_family("B1", PVT_V2_B1, slide=False), *_pvt_family("B2", PVT_V2_B2, slide=False),
    *_pvt_family("B1", PVT_V2_B1_LI), *_pvt_family("B2", PVT_V2_B2_LI),
    Config("nat-t", _nat, "natten k7 in every stage of the Swin-T shape"),
    Config("fast-swin-t", _fast, f"Swin-T with {FAST_LOCAL} k7 in place of every window attention (as nat-t with natten)"),
)}
NAMES = (*CONFIGS, *TIMM)
