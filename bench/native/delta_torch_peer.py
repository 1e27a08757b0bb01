"""Peer figures for the DeltaLinear anchor (specs/anchors.md, "Delta"), measured in the same session as
.bin-gpu/delta_check so ratios compare like with like: torch dense GEMV/GEMM y = x W^T (+b) with fp16
W [4096, 11008], 1 and 16 streams, and the naive sparse alternative (gather the active columns of W, then
GEMM) at 10% active. CUDA events, 3 warm-ups, median of 20 (and mean of 50 back-to-back).
Usage: python3 bench/native/delta_torch_peer.py
"""
import torch

M, K = 4096, 11008
dev = "cuda"
torch.manual_seed(0)
W = (torch.randn(M, K, device=dev) / K**0.5).half()
b = torch.randn(M, device=dev).half()


def timed(fn, reps=20):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    single = []
    for _ in range(reps):
        e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        e0.record()
        fn()
        e1.record()
        e1.synchronize()
        single.append(e0.elapsed_time(e1) * 1e3)
    single.sort()
    e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    e0.record()
    for _ in range(50):
        fn()
    e1.record()
    e1.synchronize()
    return single[len(single) // 2], e0.elapsed_time(e1) * 1e3 / 50


print(f"torch {torch.__version__} on {torch.cuda.get_device_name()}")
print(f"{'peer case':<52} {'single us':>9} {'stream us':>9}")
for S in (1, 16):
    x = torch.randn(S, K, device=dev).half()
    s, m = timed(lambda: torch.nn.functional.linear(x, W, b))
    print(f"{f'torch dense linear, {S} stream(s)':<52} {s:9.2f} {m:9.2f}")
    idx = torch.randperm(K, device=dev)[: K // 10].sort().values
    d = torch.randn(S, idx.numel(), device=dev).half()
    y = torch.zeros(S, M, device=dev).half()

    def gather_gemm():
        y.add_(d @ W.index_select(1, idx).t())

    s, m = timed(gather_gemm)
    print(f"{f'torch gather-then-GEMM, 10% active, {S} stream(s)':<52} {s:9.2f} {m:9.2f}")
