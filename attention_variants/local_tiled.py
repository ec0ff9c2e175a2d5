"""`local-tiled`: exact k x k zero-padded local attention as a register-tiled C kernel (CPU, float32), with its backward.

The kernel (`local_tiled.c`, read it for the tiling) is compiled on first use with the system
C compiler for this machine (-march=native, one shared library per kernel size, cached under
~/.cache/local-attention-bench) and called through ctypes on the tensors' memory. What
torch.compile's loop nests (`local-views`) cannot do, it does: keep a tile of queries' logits
for all column offsets in vector registers and share every key and value load between two
query rows, so the work is FMAs on vectors with no horizontal sums.
"""

from __future__ import annotations

import ctypes
import fcntl
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch

from attention_variants.case import Case
from attention_variants.layout import from_channels_first, to_channels_first
from attention_variants.registry import Prepared, Variant, register

SOURCE = Path(__file__).with_suffix(".c")
MARCH_VARIABLE = "LOCAL_TILED_MARCH"  # another target than native: the Callgrind count's (valgrind decodes no AVX-512)
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "local-attention-bench"


def compiler() -> str | None:
    """Return the C compiler to use ($CC, else cc, else gcc), or None."""
    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")


DTYPES = (torch.float32, torch.bfloat16)  # bfloat16: widened to float32 as it is read, rounded as it is stored


def flags(kernel_size: int, march: str = "native", dtype: torch.dtype = torch.float32) -> list[str]:
    """Return the compiler flags of the library for one kernel size, target (-march) and element type."""
    wide = ["-mprefer-vector-width=512"] if platform.machine() in ("x86_64", "AMD64") else []  # gcc picks 256 on x86
    elements = ["-DBF16"] if dtype == torch.bfloat16 else []
    return ["-O3", f"-march={march}", *wide, "-ffast-math", "-fopenmp", "-shared", "-fPIC", f"-DKS={kernel_size}", *elements]


def machine_id() -> str:
    """Return what tells CPUs apart: /proc/cpuinfo's vendor, family, model, stepping and flags of the first processor
    (Linux), else the processor name. -march=native depends on them (a build is cached per value), and so does the
    roofline's calibration (bench/measure/roofline.py): a VM moved to another host keeps its host name and brand
    string ("AMD EPYC"), not these."""
    try:
        first = Path("/proc/cpuinfo").read_text().split("\n\n", 1)[0]
    except OSError:
        return platform.processor()
    keep = {"vendor_id", "cpu family", "model", "stepping", "flags", "CPU implementer", "CPU part", "Features"}
    return "\n".join(line for line in first.splitlines() if line.partition(":")[0].strip() in keep) or platform.processor()


def private_cache() -> Path:
    """Return the cache folder, private to this user: created 0700; one this user owns is made 0700 again; one it
    does not own (anyone could have planted a library there) is not used: a new private folder is, for this process."""
    CACHE.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = CACHE.stat()
    if info.st_uid != os.getuid():
        return Path(tempfile.mkdtemp(prefix="local-attention-bench-"))
    if info.st_mode & 0o077:
        CACHE.chmod(0o700)
    return CACHE


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _verified(target: Path) -> bool:
    """Return whether target is the library this user built: owned by it, writable by no one else, and with the
    content hash recorded when it was built (a planted, truncated or 0-byte file is not)."""
    recorded = target.with_suffix(".sha256")
    try:
        info = target.stat()
        return (info.st_uid == os.getuid() and not info.st_mode & 0o022 and recorded.stat().st_uid == os.getuid()
                and recorded.read_text().strip() == _digest(target))
    except OSError:
        return False


def _build(command: list[str], target: Path) -> None:
    """Compile the library to target (0700) and record its content hash beside it."""
    fd, partial = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(fd)
    done = subprocess.run([*command, str(SOURCE), "-o", partial, "-lm"], capture_output=True, text=True)
    if done.returncode:
        os.unlink(partial)
        raise RuntimeError(f"local-tiled: {command[0]} failed: {(done.stderr.strip().splitlines() or ['?'])[0]}")
    os.chmod(partial, 0o700)
    target.with_suffix(".sha256").write_text(_digest(Path(partial)) + "\n")
    os.replace(partial, target)


def compile_library(kernel_size: int, march: str = "native", dtype: torch.dtype = torch.float32) -> ctypes.CDLL:
    """Return the kernel library for kernel_size, march and dtype: from the cache when verified, else compiled into it
    first."""
    cc = compiler()
    if cc is None:
        raise RuntimeError("local-tiled needs a C compiler: none of $CC, cc, gcc found")
    command = [cc, *flags(kernel_size, march, dtype)]
    key = hashlib.sha256("\0".join([SOURCE.read_text(), *command, machine_id()]).encode()).hexdigest()[:16]
    cache = private_cache()
    target = cache / f"local_tiled_k{kernel_size}_{str(dtype).removeprefix('torch.')}_{key}.so"
    with open(cache / ".build.lock", "a") as lock:  # workers may need it at once: one builds, the others wait
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _verified(target):
            _build(command, target)
    lib = ctypes.CDLL(str(target))
    lib.local_attention_forward.restype = ctypes.c_int
    lib.local_attention_forward.argtypes = [ctypes.c_void_p] * 5 + [ctypes.c_int] * 5
    lib.local_attention_backward.restype = ctypes.c_int
    lib.local_attention_backward.argtypes = [ctypes.c_void_p] * 9 + [ctypes.c_int] * 5
    lib.local_attention_build.restype = ctypes.c_char_p
    lib.dtype = dtype  # the element type its pointers are read as
    return lib


@functools.cache
def library(kernel_size: int, dtype: torch.dtype = torch.float32) -> ctypes.CDLL:
    """Return the kernel library for kernel_size and dtype built for this machine (-march=native, or
    $LOCAL_TILED_MARCH)."""
    return compile_library(kernel_size, os.environ.get(MARCH_VARIABLE) or "native", dtype)


def _check_inputs(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, threads: int) -> None:
    """Raise ValueError unless the kernel may read q, k, v as dense CPU (n, head_dim, H, W) arrays of one of its dtypes."""
    # The C side sees bare pointers and q's shape: any other layout reads out of bounds silently.
    if q.dim() != 4:
        raise ValueError(f"local-tiled: q must be 4-D (n, head_dim, H, W), got shape {tuple(q.shape)}")
    for name, t in (("q", q), ("k", k), ("v", v)):
        if t.shape != q.shape:
            raise ValueError(f"local-tiled: {name} has shape {tuple(t.shape)}, q has {tuple(q.shape)}: they must be equal")
        if t.dtype not in DTYPES:
            raise ValueError(f"local-tiled: {name} is {t.dtype}, the kernel reads float32 or bfloat16 only")
        if t.dtype != q.dtype:
            raise ValueError(f"local-tiled: {name} is {t.dtype}, q is {q.dtype}: they must be equal")
        if t.device.type != "cpu":
            raise ValueError(f"local-tiled: {name} is on {t.device}, the kernel runs on the CPU only")
        if not t.is_contiguous():
            raise ValueError(f"local-tiled: {name} is not contiguous (strides {t.stride()}): pass .contiguous()")
    if threads < 1:
        raise ValueError(f"local-tiled: threads must be >= 1, got {threads}")


def _kernel(lib: ctypes.CDLL | None, kernel_size: int, dtype: torch.dtype) -> ctypes.CDLL:
    """Return lib, or the cached library of kernel_size for dtype; a lib built for another dtype is refused."""
    lib = lib or library(kernel_size, dtype)
    if lib.dtype != dtype:
        raise ValueError(f"local-tiled: the library given reads {lib.dtype}, the inputs are {dtype}")
    return lib


def _forward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, threads: int, lib: ctypes.CDLL,
             with_lse: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Return the attention of checked q, k, v and, when with_lse, each query's float32 log-sum-exp (n, H, W)."""
    out = torch.empty_like(q)
    lse = q.new_empty((q.shape[0], *q.shape[2:]), dtype=torch.float32) if with_lse else None
    if out.numel() == 0:
        return out, lse  # nothing to do, and the C side would divide by n = 0
    n, dim, height, width = q.shape
    status = lib.local_attention_forward(q.data_ptr(), k.data_ptr(), v.data_ptr(), out.data_ptr(),
                                         None if lse is None else lse.data_ptr(), n, dim, height, width, threads)
    if status:
        raise MemoryError("local-tiled: a thread could not allocate its padded copy of an image")
    return out, lse


class _TiledAttention(torch.autograd.Function):
    """The kernel's forward, and its backward kernel for dq, dk, dv (P recomputed from the saved log-sum-exp)."""

    @staticmethod
    def forward(ctx, q, k, v, threads: int, lib):
        out, lse = _forward(q, k, v, threads, lib, with_lse=True)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.settings = (threads, lib)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, out, lse = ctx.saved_tensors
        threads, lib = ctx.settings
        grad_out = grad_out.contiguous().to(q.dtype)
        dq, dk, dv = (torch.empty_like(q) for _ in range(3))
        if q.numel():
            n, dim, height, width = q.shape
            status = lib.local_attention_backward(
                *(t.data_ptr() for t in (q, k, v, out, lse, grad_out, dq, dk, dv)), n, dim, height, width, threads)
            if status:
                raise MemoryError("local-tiled: a thread could not allocate its scratch for the backward")
        return dq, dk, dv, None, None


def tiled_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, kernel_size: int, threads: int,
                    lib: ctypes.CDLL | None = None) -> torch.Tensor:
    """Return zero-padded local attention of contiguous float32 or bfloat16 channels-first q, k, v (n, head_dim, H, W),
    differentiable in q, k and v by the backward kernel."""
    _check_inputs(q, k, v, threads)
    lib = _kernel(lib, kernel_size, q.dtype)
    if torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v)):
        return _TiledAttention.apply(q, k, v, threads, lib)
    return _forward(q, k, v, threads, lib, with_lse=False)[0]


def supports(case: Case) -> str | None:
    """Return why the kernel cannot run the case: it is a CPU float32 / bfloat16 kernel."""
    if case.device != "cpu":
        return "a CPU kernel"
    if case.torch_dtype not in DTYPES:
        return "float32 and bfloat16 only"
    if case.runtime == "inductor":  # export and onnxruntime are tried: their failure is the row
        return "a C kernel: torch.compile has nothing to compile"
    if compiler() is None:
        return "no C compiler (set $CC, or install cc/gcc)"
    return None


def build(case: Case, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> Prepared:
    """Return the kernel's closure over channels-first (batch*heads, head_dim, H, W) inputs."""
    batch, heads = q.shape[:2]
    threads = torch.get_num_threads()  # the harness fixes the thread count before build
    lib = library(case.kernel_size, case.torch_dtype)  # compile now, not inside the first timed call
    return Prepared(
        fn=lambda qn, kn, vn: tiled_attention(qn, kn, vn, case.kernel_size, threads, lib),
        inputs=(to_channels_first(q), to_channels_first(k), to_channels_first(v)),
        to_canonical=lambda out: from_channels_first(out, batch, heads),
        backend=f"C, {lib.local_attention_build().decode()}, {threads} OpenMP threads",
    )


register(Variant("local-tiled", "local-zero-pad", build, supports, description="register-tiled C kernel with its backward (CPU)"))
