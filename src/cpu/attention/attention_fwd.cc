// sk::cpu::attention_fwd: block-sparse FlashAttention forward on the CPU (contract: src/ops/attention.h).
//
// Work split: one task per (batch, query head, query block), run on the process-wide pool. A task walks
// only the key blocks listed for its query block (full blocks first, then masked ones), so the cost is
// proportional to the number of listed blocks. Per key tile it runs the FlashAttention-2 loop in fp32:
//   gather K/V rows -> S^T = K.Q^T -> (masked blocks) causal mask -> online softmax -> O = a.O + P.V
// and finally O / l, lse. GQA reads K/V head h / G directly (nothing is replicated).
//
// Block sizes: the public API uses 64 and 128; this backend accepts any positive block size and walks
// blocks larger than kMaxTile (128) in sub-tiles, so every tile buffer has a fixed bound.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <limits>
#include <new>
#include <utility>
#include <vector>

#include "core/thread_pool.h"
#include "cpu/attention/tile_io.h"
#include "cpu/attention/tile_ops.h"
#include "ops/attention.h"

namespace sk::cpu {
namespace {

using attn::HeadRows;
using attn::KvTile;
using attn::kMaxTile;
using attn::kQueryPad;

constexpr float kLog2e = 1.4426950408889634f;

// Per-chunk working memory (one chunk of tasks runs on one thread): the tiles of tile_ops.h.
class Scratch {
  static constexpr std::align_val_t kAlign{64};

 public:
  Scratch(int m_pad, int n_max, int head_dim) {
    const size_t qt = static_cast<size_t>(head_dim) * m_pad;      // Q^T          [d x m_pad]
    const size_t st = static_cast<size_t>(n_max) * m_pad;         // S^T / P^T    [n x m_pad]
    const size_t o = static_cast<size_t>(m_pad) * head_dim;       // accumulator  [m_pad x d]
    const size_t kv = static_cast<size_t>(n_max) * head_dim;      // K, V tiles    [n x d] each
    const size_t total = qt + st + o + 3 * static_cast<size_t>(m_pad) + 2 * kv;
    // 64-byte aligned so that full-width vector loads of the tiles never split a cache line.
    mem_ = static_cast<float*>(::operator new(total * sizeof(float), kAlign, std::nothrow));
    if (mem_ == nullptr) return;
    float* cur = mem_;
    auto take = [&cur](size_t n) {
      float* p = cur;
      cur += n;
      return p;
    };
    qt_ = take(qt);
    st_ = take(st);
    o_ = take(o);
    m_run_ = take(m_pad);
    l_run_ = take(m_pad);
    alpha_ = take(m_pad);
    k_buf_ = take(kv);
    v_buf_ = take(kv);
  }
  ~Scratch() { ::operator delete(mem_, kAlign); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  bool ok() const { return mem_ != nullptr; }

  float *qt_ = nullptr, *st_ = nullptr, *o_ = nullptr;
  float *m_run_ = nullptr, *l_run_ = nullptr, *alpha_ = nullptr;
  float *k_buf_ = nullptr, *v_buf_ = nullptr;
  KvTile kv_;

 private:
  float* mem_ = nullptr;
};

// The listed key blocks of one (b, h, query block), counts clamped to the row capacity. Values were
// validated on the host (check_block_layout_host); indices are clamped again where they are used.
struct BlockLists {
  const int32_t* full = nullptr;
  const int32_t* masked = nullptr;
  int n_full = 0, n_masked = 0;

  BlockLists(const BlockLayoutView& l, int b, int h, int qb) {
    const int64_t row = l.row_base(b, h) + qb;
    n_full = std::clamp(l.full_cnt[row], 0, l.max_blocks);
    n_masked = std::clamp(l.mask_cnt[row], 0, l.mask_max_blocks);
    full = l.full_idx + row * l.max_blocks;
    masked = l.mask_idx + row * l.mask_max_blocks;
  }
};

// The key tiles of one query block in processing order: the full blocks, then the masked ones, each
// walked in tiles of at most kMaxTile keys. Keys past seq_k do not exist: the last block's tiles are
// simply shorter, in either list.
struct KeyTile {
  int64_t k0 = 0;
  int n = 0;
  bool masked = false;
};
class KeyTiles {
 public:
  KeyTiles(const BlockLists& lists, int block_size, int seq_k, int k_blocks)
      : lists_(lists), bs_(block_size), seq_k_(seq_k), k_blocks_(k_blocks) {}

  bool next(KeyTile* t) {
    while (k0_ >= k_end_) {  // current block done: open the next listed one
      const bool masked = pos_ >= lists_.n_full;
      const int i = masked ? pos_ - lists_.n_full : pos_;
      if (i >= (masked ? lists_.n_masked : lists_.n_full)) return false;
      ++pos_;
      const int64_t kb = std::clamp((masked ? lists_.masked : lists_.full)[i], 0, k_blocks_ - 1);
      k0_ = kb * bs_;
      k_end_ = std::min<int64_t>(k0_ + bs_, seq_k_);
      masked_ = masked;
    }
    *t = {k0_, static_cast<int>(std::min<int64_t>(kMaxTile, k_end_ - k0_)), masked_};
    k0_ += t->n;
    return true;
  }

 private:
  const BlockLists& lists_;
  int64_t bs_, seq_k_;
  int k_blocks_;
  int pos_ = 0;  // position in the concatenated full + masked lists
  int64_t k0_ = 0, k_end_ = 0;
  bool masked_ = false;
};

// Everything one task needs, resolved once: head slices, the permutation row, the query tile range.
struct TaskView {
  HeadRows q, k, v;
  void* out = nullptr;
  float* lse = nullptr;  // lse row of (b, h), or null
  const int32_t* key_perm = nullptr;  // permutation row of (b, hp), or null
  int64_t q_begin = 0, q_end = 0;     // query rows of the block
};

const void* offset(const void* base, int64_t elems, DType dtype) {
  if (base == nullptr) return nullptr;  // k/v of an empty key range (seq_k == 0)
  return static_cast<const char*>(base) + elems * static_cast<int64_t>(dtype_size(dtype));
}

TaskView make_task_view(const AttentionParams& p, int b, int h, int qb) {
  const int group = p.heads_q / p.heads_k;
  const int kvh = h / group;
  const int64_t bs = p.layout.block_size;
  TaskView t;
  t.q = {offset(p.q, b * p.q_batch_stride + h * p.q_head_stride, p.dtype), p.q_row_stride, p.dtype};
  t.k = {offset(p.k, b * p.k_batch_stride + kvh * p.k_head_stride, p.dtype), p.k_row_stride, p.dtype};
  t.v = {offset(p.v, b * p.v_batch_stride + kvh * p.v_head_stride, p.dtype), p.v_row_stride, p.dtype};
  t.out = const_cast<void*>(offset(p.out, b * p.o_batch_stride + h * p.o_head_stride, p.dtype));
  if (p.lse != nullptr) t.lse = p.lse + (static_cast<int64_t>(b) * p.heads_q + h) * p.seq_q;
  if (p.key_perm != nullptr) {
    const int hp = p.key_perm_heads == p.heads_q ? h : kvh;
    t.key_perm = p.key_perm + (static_cast<int64_t>(b) * p.key_perm_heads + hp) * p.seq_k;
  }
  t.q_begin = qb * bs;
  t.q_end = std::min<int64_t>(t.q_begin + bs, p.seq_q);
  return t;
}

// One key tile [k0, k0 + n) against the query tile [q0, q0 + m) held in s.qt_.
void attend_key_tile(const AttentionParams& p, const TaskView& t, bool masked, int64_t k0, int n, int64_t q0,
                     int m, int m_pad, Scratch& s) {
  const int d = p.head_dim;
  attn::gather_kv(t.k, t.v, t.key_perm, p.seq_k, k0, n, d, s.k_buf_, s.v_buf_, &s.kv_);

  // Causal mask only on masked blocks, and only where it can bite: a tile whose every key is after
  // the last query contributes nothing and is skipped; one whose every key is at or before the first
  // query needs no mask.
  bool apply_mask = false;
  if (masked && p.causal) {
    const int64_t diag = static_cast<int64_t>(p.seq_k) - p.seq_q;
    const auto [lo, hi] = std::minmax_element(s.kv_.pos, s.kv_.pos + n);
    if (*lo > q0 + m - 1 + diag) return;
    apply_mask = *hi > q0 + diag;
  }

  attn::qk_scores(s.kv_.k_rows, n, s.qt_, m_pad, m_pad, d, s.st_);
  if (apply_mask) attn::mask_scores(s.kv_.pos, n, q0, static_cast<int64_t>(p.seq_k) - p.seq_q, m_pad, m_pad, s.st_);
  attn::softmax_step(s.st_, n, m_pad, m_pad, s.m_run_, s.l_run_, s.alpha_);
  attn::pv_accumulate(s.st_, n, m_pad, m_pad, s.kv_.v_rows, d, s.alpha_, s.o_);
}

// All listed key blocks against one query tile, then the output rows of that tile.
void attend_query_tile(const AttentionParams& p, const TaskView& t, const BlockLists& lists, int64_t q0, int m,
                       Scratch& s) {
  const int d = p.head_dim;
  const int m_pad = (m + kQueryPad - 1) / kQueryPad * kQueryPad;

  // Step 1: Q^T tile, pre-scaled into the log2 domain of the softmax.
  attn::load_q_tile(t.q, q0, m, m_pad, d, p.softmax_scale * kLog2e, s.k_buf_, s.qt_);  // K tile is free here
  // Step 2: empty softmax state and accumulator.
  std::fill(s.m_run_, s.m_run_ + m_pad, -std::numeric_limits<float>::infinity());
  std::fill(s.l_run_, s.l_run_ + m_pad, 0.f);
  std::fill(s.o_, s.o_ + static_cast<int64_t>(m_pad) * d, 0.f);

  // Step 3: every listed key tile, full blocks first (no token mask), then masked blocks; the rows of
  // the next tile are prefetched while the current one is computed.
  KeyTiles tiles(lists, p.layout.block_size, p.seq_k, p.layout.k_blocks);
  KeyTile cur, next;
  for (bool more = tiles.next(&cur); more; cur = next) {
    more = tiles.next(&next);
    if (more) attn::prefetch_kv(t.k, t.v, t.key_perm, p.seq_k, next.k0, next.n, d);
    attend_key_tile(p, t, cur.masked, cur.k0, cur.n, q0, m, m_pad, s);
  }

  // Step 4: normalise and store (out = 0, lse = -inf for queries without any kept key).
  attn::store_out_tile(t.out, p.o_row_stride, p.dtype, t.lse, q0, m, d, s.o_, s.m_run_, s.l_run_);
}

void run_task(const AttentionParams& p, int64_t task, Scratch& s) {
  const int q_blocks = p.layout.q_blocks;
  const int qb = static_cast<int>(task % q_blocks);
  const int h = static_cast<int>(task / q_blocks % p.heads_q);
  const int b = static_cast<int>(task / q_blocks / p.heads_q);
  const TaskView t = make_task_view(p, b, h, qb);
  const BlockLists lists(p.layout, b, h, qb);
  for (int64_t q0 = t.q_begin; q0 < t.q_end; q0 += kMaxTile)
    attend_query_tile(p, t, lists, q0, static_cast<int>(std::min<int64_t>(kMaxTile, t.q_end - q0)), s);
}

// Tasks in decreasing order of listed blocks (longest first): the pool hands out contiguous chunks in
// order, so the short tasks (early causal rows, sparse rows) fill the gaps at the end.
std::vector<int64_t> schedule_tasks(const AttentionParams& p) {
  const BlockLayoutView& l = p.layout;
  const int64_t n = static_cast<int64_t>(p.batch) * p.heads_q * l.q_blocks;
  std::vector<std::pair<int32_t, int64_t>> keyed(static_cast<size_t>(n));
  for (int64_t t = 0; t < n; ++t) {
    const int qb = static_cast<int>(t % l.q_blocks);
    const int h = static_cast<int>(t / l.q_blocks % p.heads_q);
    const int b = static_cast<int>(t / l.q_blocks / p.heads_q);
    const BlockLists lists(l, b, h, qb);
    keyed[t] = {-(lists.n_full + lists.n_masked), t};
  }
  std::stable_sort(keyed.begin(), keyed.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[i] = keyed[i].second;
  return order;
}

}  // namespace

Status attention_fwd(const AttentionParams& p) {
  SK_RETURN_IF_ERROR(check_attention_params(p, /*for_cuda=*/false));
  if (static_cast<int64_t>(p.batch) * p.heads_q * p.seq_q == 0) return Status::Ok();  // nothing to write

  std::vector<int64_t> order;
  try {
    order = schedule_tasks(p);
  } catch (const std::bad_alloc&) {
    return Status::Error(ErrorCode::kOutOfMemory, "attention (cpu): cannot allocate the task list");
  }

  const int tile_q = std::min(p.layout.block_size, kMaxTile);
  const int m_pad = (tile_q + kQueryPad - 1) / kQueryPad * kQueryPad;
  const int n_max = std::min(p.layout.block_size, kMaxTile);
  std::atomic<bool> out_of_memory{false};

  core::parallel_for(static_cast<int64_t>(order.size()), 1, [&](int64_t begin, int64_t end) {
    // Nothing may throw out of a pool chunk: scratch is allocated without exceptions.
    Scratch s(m_pad, n_max, p.head_dim);
    if (!s.ok()) {
      out_of_memory.store(true, std::memory_order_relaxed);
      return;
    }
    for (int64_t i = begin; i < end; ++i) run_task(p, order[i], s);
  });

  if (out_of_memory.load()) {
    return Status::Error(ErrorCode::kOutOfMemory, "attention (cpu): cannot allocate per-thread tile buffers");
  }
  if (core::ThreadPool::global().is_shutting_down()) {
    return Status::Error(ErrorCode::kCancelled, "attention (cpu): skipped because the process is exiting");
  }
  return Status::Ok();
}

}  // namespace sk::cpu
