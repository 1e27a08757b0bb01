"""Peers of spmm (block-sparse weight x dense activations), run in the same job as lib/cli/bench/spmm.ts.

Usage: python3 bench/peers/spmm.py [--cpu] <outDir>/spmm_cases.json <outDir>/spmm_peers.json   (what the bench runs)
       python3 bench/peers/spmm.py --in <outDir> --json <file> [--quick] [--rerun] [--cpu]      (scripts/gpu-ci.sh)
With --in, results the bench already produced in the same job (<outDir>/spmm_peers.json, newer than the cases file
and covering every case) are copied to --json instead of timing the peers twice; --rerun times them again.

The cases file (written by the bench) gives the device, dtype, timing and one entry per case: its key `case`
("bf16.N4096.b32.s90"), N, M, K, the block shape (bm, bk), and a uint8 block mask file [Mb, Kb] (raw, C order,
1 = block kept; built by the bench from `maskSeed`). Every case computes Y[N, M] = X[N, K] . W^T with W zero outside
the mask's blocks; inputs are fresh random normals of the exact shapes (values do not change the timing).

CUDA (torch, the dtype of the cases):
  cublas     F.linear(X, W) with the dense W (cuBLAS), per case (the same for every sparsity of one N).
  torch_bsr  W.to_sparse_bsr((bm, bk)) @ X^T (torch's Triton BSR kernel; X^T precomputed, not timed), giving Y^T.
  Timing: CUDA events around each call after warm-up, median.
CPU (--cpu, or a cases file with device "cpu"; float32):
  numpy      X @ W.T with the dense W (OpenBLAS through numpy, all cores).
  scipy_bsr  scipy.sparse.bsr_matrix(W, blocksize=(bm, bk)) @ X^T (if scipy is installed).
  Timing: time.perf_counter around each call after warm-up, median.
Writes {"results": [{case, peer, ms | error}]} after every case, so a timeout keeps what ran.
"""
import json
import os
import sys

import numpy as np

from _timing import cpu_median_ms, cuda_median_ms


def parse_args(argv):
    opts = {"cpu": False, "rerun": False, "in": None, "json": None}
    positional = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("--in", "--json"):
            if i + 1 >= len(argv):
                sys.exit(f"{a} needs a value")
            opts[a[2:]] = argv[i + 1]
            i += 2
            continue
        if a in ("--cpu", "--rerun"):
            opts[a[2:]] = True
        elif a == "--quick":
            pass  # the cases file already holds the (quick) matrix and timing the bench used
        elif a.startswith("--"):
            sys.exit(f"unknown option {a}")
        else:
            positional.append(a)
        i += 1
    if opts["in"] is not None:
        cases_path = os.path.join(opts["in"], "spmm_cases.json")
        out_path = opts["json"] or os.path.join(opts["in"], "spmm_peers.json")
    elif len(positional) == 2:
        cases_path, out_path = positional
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    return opts, cases_path, out_path


def reuse_same_job_results(cases_path, out_path, spec):
    """Copies the bench's own peer results (same job, same cases) to out_path; False when there are none."""
    done = os.path.join(os.path.dirname(os.path.abspath(cases_path)), "spmm_peers.json")
    if os.path.abspath(done) == os.path.abspath(out_path) or not os.path.exists(done):
        return False
    if os.path.getmtime(done) < os.path.getmtime(cases_path):
        return False
    results = json.load(open(done)).get("results", [])
    if not {c["case"] for c in spec["cases"]} <= {r["case"] for r in results}:
        return False
    with open(out_path, "w") as f:
        json.dump({"results": results, "source": done, "note": "timed by the bench in the same job"}, f, indent=1)
    print(f"peers: reusing {len(results)} results the bench timed in this job ({done}); --rerun to time again")
    return True


def main():
    opts, cases_path, out_path = parse_args(sys.argv[1:])
    force_cpu = opts["cpu"]
    spec = json.load(open(cases_path))
    if opts["in"] is not None and not opts["rerun"] and reuse_same_job_results(cases_path, out_path, spec):
        return
    base = os.path.dirname(os.path.abspath(cases_path))
    results = []

    def record(**r):
        results.append(r)
        shown = f"{r['ms']:.3f} ms" if "ms" in r else f"error {r.get('error')}"
        print(f"peer {r['peer']:10s} {r['case']:28s} {shown}", flush=True)
        with open(out_path, "w") as f:
            json.dump({"results": results}, f, indent=1)

    def load_mask(case):
        mb, kb = case["maskShape"]
        return np.fromfile(os.path.join(base, case["maskFile"]), dtype=np.uint8).reshape(mb, kb)

    warm = int(spec["timing"].get("warmup", 3))
    reps = int(spec["timing"].get("reps", 10))
    if force_cpu or spec["device"] == "cpu":
        run_cpu(spec, record, load_mask, warm, reps)
    else:
        run_cuda(spec, record, load_mask, warm, reps)
    with open(out_path, "w") as f:
        json.dump({"results": results}, f, indent=1)


def block_expand(mask, bm, bk, m, k):
    """The element mask [m, k] of a block mask [Mb, Kb] (padding rows / columns cut off)."""
    return np.repeat(np.repeat(mask.astype(bool), bm, axis=0), bk, axis=1)[:m, :k]


def run_cuda(spec, record, load_mask, warm, reps):
    import torch
    import torch.nn.functional as F

    dev = "cuda"
    dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}[spec["dtype"]]
    print(f"peers on {torch.cuda.get_device_name()}: torch {torch.__version__}, {spec['dtype']}", flush=True)

    def bench(fn):
        return cuda_median_ms(fn, warm, reps)

    xs = {}
    dense_cache = {}
    for case in spec["cases"]:
        name, n, m, k, bm, bk = case["case"], case["N"], case["M"], case["K"], case["bm"], case["bk"]
        try:
            if (n, k) not in xs:
                xs[(n, k)] = torch.randn(n, k, device=dev, dtype=dtype)
            x = xs[(n, k)]
            mask = load_mask(case)
            keep = torch.from_numpy(block_expand(mask, bm, bk, m, k)).to(dev)
            w = torch.randn(m, k, device=dev, dtype=dtype) * keep
            key = (n, m, k)
            if key not in dense_cache:  # cuBLAS does not look at the values: one timing per shape
                dense_cache[key] = bench(lambda: F.linear(x, w))
            record(case=name, peer="cublas", ms=dense_cache[key])
        except Exception as ex:  # noqa: BLE001 - a peer failure is data, not a crash
            record(case=name, peer="cublas", error=repr(ex)[:200])
            continue
        try:
            if m % bm or k % bk:
                raise ValueError("torch BSR needs M, K multiples of the block")
            wb = w.to_sparse_bsr((bm, bk))
            xt = x.t().contiguous()
            if wb.values().shape[0] != int(mask.sum()):
                raise ValueError(f"BSR holds {wb.values().shape[0]} blocks, the mask {int(mask.sum())}")
            record(case=name, peer="torch_bsr", ms=bench(lambda: wb @ xt))
            del wb, xt
        except Exception as ex:  # noqa: BLE001
            record(case=name, peer="torch_bsr", error=repr(ex)[:200])
        del w, keep
        torch.cuda.empty_cache()


def run_cpu(spec, record, load_mask, warm, reps):
    try:
        import scipy.sparse as sps
    except ImportError:
        sps = None
    print(f"peers on the CPU: numpy {np.__version__} ({os.cpu_count()} cpus)", flush=True)

    def bench(fn):
        return cpu_median_ms(fn, warm, reps)

    rng = np.random.default_rng(0)
    for case in spec["cases"]:
        name, n, m, k, bm, bk = case["case"], case["N"], case["M"], case["K"], case["bm"], case["bk"]
        x = rng.standard_normal((n, k), dtype=np.float32)
        mask = load_mask(case)
        w = rng.standard_normal((m, k), dtype=np.float32) * block_expand(mask, bm, bk, m, k)
        try:
            record(case=name, peer="numpy", ms=bench(lambda: x @ w.T))
        except Exception as ex:  # noqa: BLE001
            record(case=name, peer="numpy", error=repr(ex)[:200])
        if sps is None:
            record(case=name, peer="scipy_bsr", error="scipy not installed")
            continue
        try:
            if m % bm or k % bk:
                raise ValueError("scipy BSR needs M, K multiples of the block")
            wb = sps.bsr_matrix(w, blocksize=(bm, bk))
            wb.eliminate_zeros()
            xt = np.ascontiguousarray(x.T)
            record(case=name, peer="scipy_bsr", ms=bench(lambda: wb @ xt))
        except Exception as ex:  # noqa: BLE001
            record(case=name, peer="scipy_bsr", error=repr(ex)[:200])


if __name__ == "__main__":
    main()
