"""Peers of pbsAttention, run in the same job as lib/cli/bench/pbs.ts on the same shapes.

Usage: python3 bench/peers/pbs.py <outDir>/pbs_cases.json <outDir>/pbs_peers.json

The cases file (written by the bench) gives the device, dtype, batch, heads (Hq, Hk), head dim, timing and one
entry per case: {"case": "N16384", "N": 16384}. What a user would run instead of PBS is dense causal attention, so
the peers are dense and need no layout; inputs are fresh random normals of the exact shapes (values do not change a
dense kernel's time).

CUDA (torch): SDPA with the cuDNN backend ("cudnn") and the flash backend ("flash"), causal, GQA through
enable_gqa (K/V not replicated; if the backend refuses GQA, K/V are expanded to Hq heads once, outside the timing).
CPU (numpy): dense causal attention per head ("numpy": scores, causal mask, softmax, P @ V), float32.
Timing: CUDA events (or perf_counter on the CPU) after warm-up, median, as our harness.
Writes {"results": [{case, peer, ms | error}]} after every measurement, so a timeout keeps what ran.
"""
import json
import math
import sys

import numpy as np

from _timing import cpu_median_ms, cuda_median_ms


def main():
    cases_path, out_path = sys.argv[1], sys.argv[2]
    spec = json.load(open(cases_path))
    results = []

    def record(**r):
        results.append(r)
        shown = f"{r['ms']:.3f} ms" if "ms" in r else f"error {r.get('error')}"
        print(f"peer {r['peer']:8s} {r['case']:10s} {shown}", flush=True)
        with open(out_path, "w") as f:
            json.dump({"results": results}, f, indent=1)

    warm = int(spec["timing"].get("warmup", 3))
    reps = int(spec["timing"].get("reps", 10))
    if spec["device"] == "cuda":
        run_cuda(spec, record, warm, reps)
    else:
        run_numpy(spec, record, warm, reps)
    with open(out_path, "w") as f:
        json.dump({"results": results}, f, indent=1)


def run_cuda(spec, record, warm, reps):
    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    dev = "cuda"
    dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16}[spec["dtype"]]
    b, hq, hk, d = spec["batch"], spec["headsQ"], spec["headsK"], spec["headDim"]

    def bench(fn):
        return cuda_median_ms(fn, warm, reps)

    for case in spec["cases"]:
        name, n = case["case"], case["N"]
        try:
            q = torch.randn(b, hq, n, d, device=dev, dtype=dtype)
            k = torch.randn(b, hk, n, d, device=dev, dtype=dtype)
            v = torch.randn_like(k)
        except Exception as ex:  # noqa: BLE001
            record(case=name, peer="inputs", error=repr(ex)[:200])
            continue
        for peer, be in (("cudnn", SDPBackend.CUDNN_ATTENTION), ("flash", SDPBackend.FLASH_ATTENTION)):
            try:
                with sdpa_kernel([be]):
                    try:
                        ms = bench(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=hq != hk))
                    except RuntimeError:
                        # Backend without native GQA: expand K/V once, outside the timing.
                        ke = k.repeat_interleave(hq // hk, dim=1)
                        ve = v.repeat_interleave(hq // hk, dim=1)
                        ms = bench(lambda: F.scaled_dot_product_attention(q, ke, ve, is_causal=True))
                        del ke, ve
                record(case=name, peer=peer, ms=ms)
            except Exception as ex:  # noqa: BLE001
                record(case=name, peer=peer, error=repr(ex)[:200])
            torch.cuda.empty_cache()
        del q, k, v
        torch.cuda.empty_cache()


def run_numpy(spec, record, warm, reps):
    rng = np.random.default_rng(0)
    b, hq, hk, d = spec["batch"], spec["headsQ"], spec["headsK"], spec["headDim"]
    g = hq // hk
    scale = np.float32(1 / math.sqrt(d))
    for case in spec["cases"]:
        name, n = case["case"], case["N"]
        q = rng.standard_normal((b, hq, n, d), dtype=np.float32)
        k = rng.standard_normal((b, hk, n, d), dtype=np.float32)
        v = rng.standard_normal((b, hk, n, d), dtype=np.float32)
        causal = np.tril(np.ones((n, n), dtype=np.bool_))
        neg = np.float32(-np.inf)

        def run():
            out = np.empty_like(q)
            for bb in range(b):
                for h in range(hq):
                    s = (q[bb, h] @ k[bb, h // g].T) * scale
                    np.putmask(s, ~causal, neg)
                    s -= s.max(axis=1, keepdims=True)
                    np.exp(s, out=s)
                    s /= s.sum(axis=1, keepdims=True)
                    out[bb, h] = s @ v[bb, h // g]
            return out

        record(case=name, peer="numpy", ms=cpu_median_ms(run, warm, reps))


if __name__ == "__main__":
    main()
