// Named CTA barriers (bar.sync / bar.arrive with an id other than 0, which __syncthreads uses), for
// ordering groups of warps against each other without stopping the whole CTA.
#pragma once

namespace sk::cuda {

/// Blocks until `count` threads (a multiple of 32, counting both sides) have reached barrier `id`.
__device__ __forceinline__ void named_barrier_sync(int id, int count) {
  asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(count) : "memory");
}

/// Counts this thread's warp towards barrier `id` without waiting (the producer side of a hand-off).
__device__ __forceinline__ void named_barrier_arrive(int id, int count) {
  asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(count) : "memory");
}

}  // namespace sk::cuda
