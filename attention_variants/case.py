"""The benchmark case: what one measurement is about (shapes, device, dtype, pass)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float64": torch.float64,
}


@dataclass(frozen=True, kw_only=True)
class Case:
    """One point of a sweep. Lives here (not in bench/) so variants never import bench/.

    The axes (their values, flags and columns) are declared in bench/axes.py; an axis a plugin
    adds there is in `extra` and reads like a field: `case.<name>`.
    """

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
    extra: tuple[tuple[str, object], ...] = ()  # (field, value) of the axes plugins added, sorted

    def __post_init__(self) -> None:  # from JSON the pairs arrive as lists
        object.__setattr__(self, "extra", tuple(sorted((str(name), value) for name, value in self.extra)))

    def __getattr__(self, name: str) -> object:
        if name != "extra" and not name.startswith("__"):
            for field, value in self.extra:
                if field == name:
                    return value
        raise AttributeError(f"Case has no axis {name!r}")

    @classmethod
    def of(cls, **values: object) -> "Case":
        """Return the case of these fields: Case's own, and any other (a plugin's axis) into `extra`."""
        own = {f.name for f in fields(cls)}
        extra = [(name, value) for name, value in values.items() if name not in own]
        return cls(**{name: value for name, value in values.items() if name in own}, extra=tuple(extra))

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

    def replace(self, **changes: object) -> "Case":
        """Return a copy with some fields (or a plugin's axes) changed."""
        values = {**asdict(self), **dict(self.extra)}
        values.pop("extra")
        return type(self).of(**{**values, **changes})
