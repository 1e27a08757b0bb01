"""Median timings shared by the peer scripts, with the protocol of our own harness (lib/cli/bench/harness.ts):
`warm` untimed calls, then the median of `reps` timings of `steps` back-to-back calls each, per call. CUDA events
on the GPU (the kernels' time, not Python's), perf_counter on the CPU. The scripts run as
`python3 bench/peers/<op>.py`, so this file is importable as `_timing`."""
import time


def cuda_median_ms(fn, warm, reps, steps=1):
    import torch

    for _ in range(warm):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(steps):
            fn()
        end.record()
        end.synchronize()
        ts.append(start.elapsed_time(end) / steps)
    ts.sort()
    return ts[len(ts) // 2]


def cpu_median_ms(fn, warm, reps, steps=1):
    for _ in range(warm):
        fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        for _ in range(steps):
            fn()
        ts.append((time.perf_counter() - t0) * 1e3 / steps)
    ts.sort()
    return ts[len(ts) // 2]
