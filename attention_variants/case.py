"""The benchmark case: what one measurement is about (shapes, device, dtype, pass)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float64": torch.float64,
}
PASSES = ("forward", "forward_backward")
# How the variant's code runs: as written (eager), torch.compile (inductor), torch.export plus an
# AOTInductor package (export), or exported to ONNX and run by ONNX Runtime (onnxruntime).
RUNTIMES = ("eager", "inductor", "export", "onnxruntime")


@dataclass(frozen=True)
class Case:
    """One point of a sweep. Lives here (not in bench/) so variants never import bench/."""

    variant: str
    device: str = "cpu"
    dtype: str = "float32"
    batch: int = 1
    height: int = 28
    width: int = 28
    heads: int = 2
    head_dim: int = 32
    kernel_size: int = 7
    pass_name: str = "forward"  # CSV column `pass` (a Python keyword)
    runtime: str = "eager"  # one of RUNTIMES (CSV column `runtime`; files before schema 6 had `compiled`)
    dilation: int = 1  # DiNAT-style: neighbours d pixels apart (CSV column `dilation`, after the others)

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    @property
    def radius(self) -> int:
        return self.kernel_size // 2

    @property
    def input_elements(self) -> int:
        """Return batch * heads * pixels * head_dim: the elements of each of q, k, v."""
        return self.batch * self.heads * self.height * self.width * self.head_dim

    @property
    def neighbour_elements(self) -> int:
        """Return batch * heads * pixels * k*k * head_dim: the query-key products of one forward pass."""
        return self.input_elements * self.kernel_size**2

    @property
    def traced(self) -> bool:
        """Whether the timed code is a graph traced from the variant's code rather than that code itself."""
        return self.runtime != "eager"

    @property
    def needs_grad(self) -> bool:
        return self.pass_name == "forward_backward"

    def key(self) -> dict[str, object]:
        """Return the case as CSV columns (`pass_name` renamed to `pass`)."""
        fields = asdict(self)
        fields["pass"] = fields.pop("pass_name")
        return fields

    def replace(self, **changes: object) -> "Case":
        """Return a copy with some fields changed."""
        return Case(**{**asdict(self), **changes})
