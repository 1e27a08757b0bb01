"""Peers of blockSparseAttention, run in the same job as lib/cli/bench/attention.ts on the same shapes and masks.

Usage: python3 bench/peers/attention.py <outDir>/attention_cases.json <outDir>/attention_peers.json

The cases file (written by the bench) gives the device, dtype, heads, head dim, block size, timing and one entry per
case: N, Hk, and either "dense_causal" or a uint8 block mask file [Hq, T, T] (raw, C order; diagonal kept, earlier
blocks random, nothing above the diagonal). Inputs are fresh random normals of the exact shapes (values do not change
the timing).

CUDA (torch): SDPA flash and cuDNN backends on dense causal cases; FlexAttention (torch.compile'd) on every case with
the SAME block mask: create_block_mask from our mask with q >= k inside the kept blocks (so off-diagonal kept blocks are
full and the diagonal blocks partial, as in our layout); if that fails (e.g. memory at long N), BlockMask.from_kv_blocks
from the same lists, recorded as maskSource. Timing: CUDA events after warm-up, median, as our harness.
CPU (numpy): dense masked attention per head (scores for all N x N pairs, the token mask applied, softmax, P @ V), for
orientation only: it computes the whole matrix whatever the density.
Writes {"results": [{name, peer, ms | error, blocks?, maskSource?}]} after every case, so a timeout keeps what ran.
"""
import json
import math
import os
import sys

import numpy as np

from _timing import cpu_median_ms, cuda_median_ms


def main():
    cases_path, out_path = sys.argv[1], sys.argv[2]
    spec = json.load(open(cases_path))
    base = os.path.dirname(os.path.abspath(cases_path))
    results = []

    def record(**r):
        results.append(r)
        shown = f"{r['ms']:.3f} ms" if "ms" in r else f"error {r.get('error')}"
        print(f"peer {r['peer']:12s} {r['name']:40s} {shown}", flush=True)
        with open(out_path, "w") as f:
            json.dump({"results": results}, f, indent=1)

    def load_mask(case, heads, t):
        return np.fromfile(os.path.join(base, case["maskFile"]), dtype=np.uint8).reshape(heads, t, t)

    warm = int(spec["timing"].get("warmup", 3))
    reps = int(spec["timing"].get("reps", 10))
    hq, d, bs = spec["headsQ"], spec["headDim"], spec["blockSize"]
    if spec["device"] == "cuda":
        run_cuda(spec, record, load_mask, warm, reps, hq, d, bs)
    else:
        run_numpy(spec, record, load_mask, warm, reps, hq, d, bs)
    with open(out_path, "w") as f:
        json.dump({"results": results}, f, indent=1)


def run_cuda(spec, record, load_mask, warm, reps, hq, d, bs):
    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.nn.attention.flex_attention import BlockMask, create_block_mask, flex_attention

    dev = "cuda"
    dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16}[spec["dtype"]]
    flex = torch.compile(flex_attention, dynamic=False)

    def bench(fn):
        return cuda_median_ms(fn, warm, reps)

    def from_lists(blk, n, t):
        # Same split as our layouts: off-diagonal kept blocks full, diagonal blocks partial (q >= k).
        lower = torch.tril(blk, diagonal=-1)
        full_cnt = lower.sum(-1).to(torch.int32)
        full_idx = torch.argsort((~lower).to(torch.int8), dim=-1, stable=True).to(torch.int32)
        diag = torch.diagonal(blk, dim1=-2, dim2=-1)
        mask_cnt = diag.to(torch.int32)
        mask_idx = torch.arange(t, dtype=torch.int32, device=blk.device).view(1, t, 1).expand(blk.shape[0], t, t).contiguous()
        return BlockMask.from_kv_blocks(mask_cnt[None], mask_idx[None], full_cnt[None], full_idx[None], BLOCK_SIZE=bs,
                                        mask_mod=lambda b, h, q, k: q >= k, seq_lengths=(n, n))

    for case in spec["cases"]:
        name, n, hk = case["name"], case["N"], case["Hk"]
        t = math.ceil(n / bs)
        gqa = hk != hq
        try:
            q = torch.randn(1, hq, n, d, device=dev, dtype=dtype)
            k = torch.randn(1, hk, n, d, device=dev, dtype=dtype)
            v = torch.randn_like(k)
        except Exception as ex:  # noqa: BLE001
            record(name=name, peer="inputs", error=repr(ex)[:200])
            continue
        if case["layout"] == "dense_causal":
            for peer, be in (("sdpa_flash", SDPBackend.FLASH_ATTENTION), ("sdpa_cudnn", SDPBackend.CUDNN_ATTENTION)):
                try:
                    with sdpa_kernel([be]):
                        ms = bench(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=gqa))
                    record(name=name, peer=peer, ms=ms)
                except Exception as ex:  # noqa: BLE001
                    record(name=name, peer=peer, error=repr(ex)[:200])
            blk = torch.tril(torch.ones(1, t, t, dtype=torch.bool, device=dev))
            heads = None
        else:
            blk = torch.from_numpy(load_mask(case, hq, t).astype(np.bool_)).to(dev)
            heads = hq
        bm, source = None, "create_block_mask"
        try:
            def mask_mod(b, h, q_idx, kv_idx):
                return blk[0 if heads is None else h, q_idx // bs, kv_idx // bs] & (q_idx >= kv_idx)

            bm = create_block_mask(mask_mod, None, heads, n, n, device=dev, BLOCK_SIZE=bs, _compile=True)
        except Exception:  # noqa: BLE001
            torch.cuda.empty_cache()
            try:
                bm, source = from_lists(blk, n, t), "from_kv_blocks"
            except Exception as ex:  # noqa: BLE001
                record(name=name, peer="flex", error=repr(ex)[:200])
        if bm is not None:
            try:
                blocks = int(bm.kv_num_blocks.sum()) + (int(bm.full_kv_num_blocks.sum()) if bm.full_kv_num_blocks is not None else 0)
                blocks *= hq if heads is None else 1
                ms = bench(lambda: flex(q, k, v, block_mask=bm, enable_gqa=gqa))
                record(name=name, peer="flex", ms=ms, blocks=blocks, maskSource=source)
            except Exception as ex:  # noqa: BLE001
                record(name=name, peer="flex", error=repr(ex)[:200])
        del q, k, v, bm
        torch.cuda.empty_cache()


def run_numpy(spec, record, load_mask, warm, reps, hq, d, bs):
    rng = np.random.default_rng(0)
    for case in spec["cases"]:
        name, n, hk = case["name"], case["N"], case["Hk"]
        t = math.ceil(n / bs)
        g = hq // hk
        q = rng.standard_normal((hq, n, d), dtype=np.float32)
        k = rng.standard_normal((hk, n, d), dtype=np.float32)
        v = rng.standard_normal((hk, n, d), dtype=np.float32)
        causal = np.tril(np.ones((n, n), dtype=np.bool_))
        if case["layout"] == "dense_causal":
            masks = [causal] * hq
        else:
            blk = load_mask(case, hq, t).astype(np.bool_)
            ones = np.ones((bs, bs), dtype=np.bool_)
            masks = [np.kron(blk[h], ones)[:n, :n] & causal for h in range(hq)]
        scale = np.float32(1 / math.sqrt(d))

        def run():
            out = np.empty_like(q)
            for h in range(hq):
                s = (q[h] @ k[h // g].T) * scale
                s = np.where(masks[h], s, np.float32(-np.inf))
                s -= s.max(axis=1, keepdims=True)
                np.exp(s, out=s)
                s /= s.sum(axis=1, keepdims=True)
                out[h] = s @ v[h // g]
            return out

        record(name=name, peer="numpy", ms=cpu_median_ms(run, warm, reps))


if __name__ == "__main__":
    main()
