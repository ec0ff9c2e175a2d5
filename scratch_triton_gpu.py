"""Temporary GPU check for triton-local (deleted after use)."""
import sys, time, torch, triton
import attention_variants as av
from attention_variants import triton_local as tlv
from attention_variants.reference import local_zero_pad
print("torch", torch.__version__, "triton", triton.__version__, torch.cuda.get_device_name(), flush=True)
try:
    import natten; print("natten", natten.__version__)
except Exception as e: print("no natten", e)
dev = "cuda"

def check(b, h, H, W, D, k, dtype):
    g = torch.Generator().manual_seed(0)
    q, kk, v = (torch.randn(b, h, H, W, D, generator=g, dtype=torch.float64) for _ in range(3))
    leaves = [t.to(dev, dtype).reshape(b*h, H, W, D).requires_grad_(True) for t in (q, kk, v)]
    out = tlv.local_attention(*leaves, k)
    go = torch.randn(b, h, H, W, D, generator=g, dtype=torch.float64)
    grads = torch.autograd.grad(out, leaves, go.to(dev, dtype).reshape(b*h, H, W, D))
    ref_in = [t.clone().requires_grad_(True) for t in (q, kk, v)]
    ref = local_zero_pad(*ref_in, k)
    rg = torch.autograd.grad(ref, ref_in, go)
    plain = (local_zero_pad(*(t.to(dtype).float() if dtype != torch.float32 else t.float() for t in (q, kk, v)), k).double() - ref).abs().max().item() if dtype==torch.float32 else float('nan')
    errs = [(out.double().cpu().view(b,h,H,W,D) - ref).abs().max().item()] + [(a.double().cpu().view(b,h,H,W,D) - r).abs().max().item() for a, r in zip(grads, rg)]
    print("check", b,h,H,W,D,k,str(dtype)[6:], " ".join("%.1e" % e for e in errs), flush=True)


def bench(name, b, heads, H, W, D, k, dtype, pass_name):
    case = av.Case(name, device=dev, dtype=dtype, batch=b, height=H, width=W, heads=heads, head_dim=D, kernel_size=k, pass_name=pass_name)
    g = torch.Generator().manual_seed(0)
    q, kk, v = (torch.randn(b, heads, H, W, D, generator=g).to(dev, case.torch_dtype) for _ in range(3))
    p = av.get(name).build(case, q, kk, v)
    if pass_name == "forward":
        fn = lambda: p.fn(*p.inputs)
    else:
        ins = [t.detach().requires_grad_(True) for t in p.inputs]
        go = torch.randn_like(p.fn(*ins))
        fn = lambda: torch.autograd.grad(p.fn(*ins), ins, go)
    return triton.testing.do_bench(fn, warmup=50, rep=200)
t0 = time.time()
shapes = [(32,3,56,56,32,7), (32,6,28,28,32,7), (32,3,56,56,32,3), (16,4,64,64,64,7), (8,2,56,56,32,13)]
configs = [((8,8),64,4), ((8,8),128,4), ((16,8),128,4), ((8,8),32,4), ((8,8),64,2), ((16,8),64,4)]
res = {}
for rnd in range(2):
    for c in configs:
        tlv.TILE, tlv.BLOCK_K, tlv.NUM_WARPS = c
        for s in shapes:
            for pn in ("forward", "forward_backward"):
                res.setdefault((c, s, pn), []).append(bench("triton-local", *s, "bfloat16", pn))
    print("round", rnd, "%.1fs" % (time.time() - t0), flush=True)
for s in shapes:
    print(s)
    for c in configs:
        f = min(res[(c, s, "forward")]); fb = min(res[(c, s, "forward_backward")])
        print("   ", c, "fwd %.3f  bwd %.3f  fwd+bwd %.3f" % (f, fb - f, fb), " spread", ["%.3f" % x for x in res[(c, s, "forward")]], flush=True)
