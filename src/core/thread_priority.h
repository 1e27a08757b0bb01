// Compute threads (the CPU pool's workers and the streams' worker threads) run at a lower scheduling
// priority than the JS thread, so on a machine with as many busy compute threads as cores the event loop
// still gets the CPU as soon as it has work: the scheduler preempts the compute threads for it.
// SPARSE_KERNELS_WORKER_NICE sets the increment (default 5; 0 disables). Linux only; a no-op elsewhere.
#pragma once

namespace sk::core {

void lower_current_thread_priority();

}  // namespace sk::core
