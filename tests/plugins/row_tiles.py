"""A plugin that adds an axis of its own and a variant that reads it: import with `--plugin tests.plugins.row_tiles`.

The axis `row_tiles` (flag --row-tiles, preset key row_tiles, CSV column row_tiles) splits the
queries of Im2Col attention into that many strips of rows, computed one after another: the same
numbers, another memory footprint. Nothing else in the harness knows the axis (tests/test_axes.py).
"""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F

from attention_variants import im2col
from attention_variants.case import Case
from attention_variants.registry import Prepared, Variant, register
from bench.axes import Axis, size
from bench.axes import register as register_axis

register_axis(Axis("row_tiles", ("row_tiles",), "Int64", lambda value: size("row_tiles", value), (1,),
                   help="strips of query rows computed one after another (tests/plugins/row_tiles.py)"))


def _strips(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, kernel_size: int, tiles: int) -> torch.Tensor:
    n, dim, height, width = q.shape
    keys = F.unfold(k, kernel_size, padding=kernel_size // 2).view(n, dim, kernel_size**2, height * width)
    values = F.unfold(v, kernel_size, padding=kernel_size // 2).view(n, dim, kernel_size**2, height * width)
    query = q.reshape(n, dim, 1, height * width) * dim**-0.5
    out = []
    for rows in torch.arange(height).tensor_split(tiles):  # each strip: its rows' pixels
        pixels = slice(int(rows[0]) * width, (int(rows[-1]) + 1) * width)
        attn = (query[..., pixels] * keys[..., pixels]).sum(dim=1, keepdim=True).softmax(dim=2)
        out.append((attn * values[..., pixels]).sum(dim=2))
    return torch.cat(out, dim=-1).view(n, dim, height, width)


def build(case: Case, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> Prepared:
    """Im2Col's layout and set-up, with the strips as the timed call."""
    return replace(im2col.build(case, q, k, v), fn=lambda qn, kn, vn: _strips(qn, kn, vn, case.kernel_size, case.row_tiles))


def supports(case: Case) -> str | None:
    return f"{case.row_tiles} row tiles but only {case.height} rows" if case.row_tiles > case.height else None


register(Variant("im2col-row-tiles", "local-zero-pad", build, supports, description="Im2Col in strips of query rows"))
