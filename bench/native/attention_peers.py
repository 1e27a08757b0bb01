"""Peers for bench/native/attention_check, measured in the same run on the same GPU:
torch SDPA (flash, cuDNN) dense causal and FlexAttention with random causal block masks
(diagonal kept, ~25% / ~11% of causal blocks), bf16, D=128, Hq=32, Hk=32 (SDPA also Hk=8 via GQA).
FLOPs counted like attention_check: 4*D*128*128 per kept block (causal dense = T(T+1)/2 blocks).
Prints one line per measurement; run with a timeout (FlexAttention compiles first).
"""
import math, os, sys, time
import torch
import torch.nn.functional as F
from torch.nn.attention import sdpa_kernel, SDPBackend

dev, D, H = "cuda", 128, 32


def bench(fn, warm=2, rep=10):
    for _ in range(warm):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(rep):
        s = torch.cuda.Event(enable_timing=True); e = torch.cuda.Event(enable_timing=True)
        s.record(); fn(); e.record(); torch.cuda.synchronize()
        ts.append(s.elapsed_time(e))
    ts.sort()
    return ts[len(ts) // 2]


def line(name, ms, blocks):
    tf = 4 * D * 128 * 128 * blocks / (ms * 1e-3) / 1e12
    print(f"peer {name:44s} {ms:9.3f} ms  {tf:6.1f} TFLOP/s (computed blocks)", flush=True)


Ns = [int(x) for x in (sys.argv[1:] or ["8192", "32768"])]
for N in Ns:
    T = N // 128
    causal_blocks = H * T * (T + 1) // 2
    q = torch.randn(1, H, N, D, device=dev, dtype=torch.bfloat16)
    for hk in (32, 8):
        k = torch.randn(1, hk, N, D, device=dev, dtype=torch.bfloat16); v = torch.randn_like(k)
        for name, be in (("flash", SDPBackend.FLASH_ATTENTION), ("cudnn", SDPBackend.CUDNN_ATTENTION)):
            try:
                with sdpa_kernel([be]):
                    ms = bench(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=hk != H))
                line(f"sdpa_{name} N={N} Hk={hk} dense_causal", ms, causal_blocks)
            except Exception as ex:  # noqa: BLE001
                print(f"peer sdpa_{name} N={N} Hk={hk} error {repr(ex)[:100]}", flush=True)
try:
    from torch.nn.attention.flex_attention import flex_attention, BlockMask
    flex = torch.compile(flex_attention, dynamic=False)
    N = 32768; T = N // 128
    q = torch.randn(1, H, N, D, device=dev, dtype=torch.bfloat16); k = torch.randn_like(q); v = torch.randn_like(q)
    for dens in (1.0, 0.25, 0.11):
        g = torch.Generator().manual_seed(0)
        lower = T * (T - 1) / 2
        p = min(1.0, max(0.0, (dens * T * (T + 1) / 2 - T) / lower))
        keep = torch.rand(H, T, T, generator=g) < p
        keep = torch.tril(keep, diagonal=-1)
        full_cnt = keep.sum(-1).to(torch.int32)
        full_idx = torch.argsort((~keep).to(torch.int8), dim=-1, stable=True).to(torch.int32)
        mask_cnt = torch.ones(H, T, dtype=torch.int32)
        mask_idx = torch.arange(T, dtype=torch.int32).view(1, T, 1).expand(H, T, T).contiguous()
        def causal(b, h, qi, ki):
            return qi >= ki
        bm = BlockMask.from_kv_blocks(mask_cnt[None].to(dev), mask_idx[None].to(dev), full_cnt[None].to(dev),
                                      full_idx[None].to(dev), BLOCK_SIZE=128, mask_mod=causal, seq_lengths=(N, N))
        blocks = int(full_cnt.sum() + mask_cnt.sum())
        ms = bench(lambda: flex(q, k, v, block_mask=bm))
        line(f"flex N={N} Hk=32 density={100 * blocks / (H * T * (T + 1) / 2):.1f}%", ms, blocks)
except Exception as ex:  # noqa: BLE001
    print(f"peer flex error {repr(ex)[:200]}", flush=True)
