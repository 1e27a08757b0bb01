"""Peers of DeltaLinear, run in the same job as lib/cli/bench/delta.ts on the same shapes and active sets.

Usage: python3 bench/peers/delta.py <outDir>/delta_cases.json <outDir>/delta_peers.json [--cpu]

The cases file (written by the bench) gives the device, the weight dtype, M x K (W is [M, K], out x in), the timing
(warm-up, reps, steps per rep) and one entry per case: its `case` key, S (streams), the per-stream active fraction and
a uint8 mask file [S, K] (raw, C order: 1 where the input fires at every step of that case).

What a user would run instead of a delta layer, timed like ours (the mean over `steps` back-to-back calls, median over
`reps`):
  - dense: y = x W^T + b for all S streams (torch.nn.functional.linear on CUDA, fp16; numpy x @ W.T + b on the CPU,
    float32, OpenBLAS on all cores). This is the number the targets compare against.
  - gather: the naive sparse alternative, y += W[:, A] @ d[A] with A the union of the case's active inputs
    (index_select + GEMM on CUDA, fancy indexing + matmul in numpy).
CUDA timing: CUDA events around the back-to-back loop. CPU timing: perf_counter around it. `--cpu` forces numpy
even when the cases came from a CUDA run. numpy's dense time is the better of its default BLAS threading and one BLAS
thread (a child process with OPENBLAS_NUM_THREADS=1 etc.): on a busy small machine OpenBLAS's spinning threads can
be several times slower than one thread, and the peer should get its best configuration (meta records both). Writes {"results": [{case, peer, us | error}], ...} after every case, so a
timeout keeps what ran.
"""
import json
import os
import sys

import numpy as np

from _timing import cpu_median_ms, cuda_median_ms


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    force_cpu = "--cpu" in sys.argv[1:]
    cases_path, out_path = args[0], args[1]
    spec = json.load(open(cases_path))
    if "--dense-only" in sys.argv[1:]:  # the one-BLAS-thread child of run_numpy
        with open(out_path, "w") as f:
            json.dump(numpy_dense_times(spec), f)
        return
    base = os.path.dirname(os.path.abspath(cases_path))
    results = []
    meta = {}

    def record(**r):
        results.append(r)
        shown = f"{r['us']:.2f} us" if "us" in r else f"error {r.get('error')}"
        print(f"peer {r['peer']:14s} {r['case']:36s} {shown}", flush=True)
        with open(out_path, "w") as f:
            json.dump({"results": results, **meta}, f, indent=1)

    def mask(case):
        return np.fromfile(os.path.join(base, case["maskFile"]), dtype=np.uint8).reshape(case["S"], spec["K"]).astype(bool)

    if spec["device"] == "cuda" and not force_cpu:
        run_torch(spec, mask, record, meta)
    else:
        run_numpy(spec, mask, record, meta)
    with open(out_path, "w") as f:
        json.dump({"results": results, **meta}, f, indent=1)


def run_torch(spec, mask, record, meta):
    import torch
    import torch.nn.functional as F

    meta["torch"] = torch.__version__
    meta["gpu"] = torch.cuda.get_device_name()
    dev = "cuda"
    dtype = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}[spec["dtype"]]
    M, K = spec["M"], spec["K"]
    t = spec["timing"]
    warm, reps, steps = int(t["warmup"]), int(t["reps"]), int(t["steps"])
    torch.manual_seed(0)
    W = (torch.randn(M, K, device=dev) / K ** 0.5).to(dtype)
    b = torch.randn(M, device=dev).to(dtype)

    def bench(fn):
        return cuda_median_ms(fn, warm, reps, steps) * 1e3  # microseconds

    dense_by_s = {}
    for case in spec["cases"]:
        name, S = case["case"], case["S"]
        try:
            if S not in dense_by_s:
                x = torch.randn(S, K, device=dev).to(dtype)
                dense_by_s[S] = bench(lambda: F.linear(x, W, b))
            record(case=name, peer="dense_torch", us=dense_by_s[S])
        except Exception as ex:  # noqa: BLE001
            record(case=name, peer="dense_torch", error=repr(ex)[:200])
        try:
            idx = torch.from_numpy(np.nonzero(mask(case).any(axis=0))[0]).to(dev)
            d = torch.randn(S, idx.numel(), device=dev).to(dtype)
            y = torch.zeros(S, M, device=dev, dtype=dtype)
            record(case=name, peer="gather_torch", us=bench(lambda: y.add_(d @ W.index_select(1, idx).t())))
        except Exception as ex:  # noqa: BLE001
            record(case=name, peer="gather_torch", error=repr(ex)[:200])


def numpy_bench(spec):
    t = spec["timing"]
    warm, reps, steps = int(t["warmup"]), int(t["reps"]), int(t["steps"])

    def bench(fn):
        return cpu_median_ms(fn, warm, reps, steps) * 1e3  # microseconds

    return bench


def numpy_weights(spec):
    M, K = spec["M"], spec["K"]
    rng = np.random.default_rng(0)
    W = rng.standard_normal((M, K), dtype=np.float32) / np.float32(K ** 0.5)
    b = rng.standard_normal(M, dtype=np.float32)
    return W, b, rng


def numpy_dense_times(spec):
    """Dense x @ W.T + b per stream count, {S: us}."""
    W, b, rng = numpy_weights(spec)
    bench = numpy_bench(spec)
    out = {}
    for S in sorted({c["S"] for c in spec["cases"]}):
        x = rng.standard_normal((S, spec["K"]), dtype=np.float32)
        out[str(S)] = bench(lambda: x @ W.T + b)
    return out


def run_numpy(spec, mask, record, meta):
    import subprocess
    import tempfile

    meta["numpy"] = np.__version__
    M = spec["M"]
    W, b, rng = numpy_weights(spec)
    bench = numpy_bench(spec)
    default = numpy_dense_times(spec)
    one = {}
    with tempfile.TemporaryDirectory() as tmp:
        child_out = os.path.join(tmp, "dense1.json")
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        try:
            subprocess.run([sys.executable, os.path.abspath(__file__), sys.argv[1], child_out, "--dense-only"], env=env,
                           check=True, timeout=600)
            one = json.load(open(child_out))
        except Exception as ex:  # noqa: BLE001
            meta["dense_numpy_1thread_error"] = repr(ex)[:200]
    meta["dense_numpy_default_threads_us"] = default
    meta["dense_numpy_1thread_us"] = one
    for case in spec["cases"]:
        name, S = case["case"], case["S"]
        record(case=name, peer="dense_numpy", us=min(default[str(S)], one.get(str(S), float("inf"))))
        idx = np.nonzero(mask(case).any(axis=0))[0]
        d = rng.standard_normal((S, idx.size), dtype=np.float32)
        y = np.zeros((S, M), dtype=np.float32)

        def gather():
            y.__iadd__(d @ W[:, idx].T)

        record(case=name, peer="gather_numpy", us=bench(gather))


if __name__ == "__main__":
    main()
