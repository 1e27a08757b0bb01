// Intra-op CPU parallelism: one process-wide pool of worker threads that every CPU kernel shares.
// Streams (src/runtime/stream.h) order whole ops; inside one op, kernels split their loops with
// parallel_for. Two streams running ops at once share the pool (the calls interleave chunk by chunk).
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace sk::core {

class ThreadPool {
 public:
  // The process-wide pool. Size: SPARSE_KERNELS_NUM_THREADS, else std::thread::hardware_concurrency().
  static ThreadPool& global();

  explicit ThreadPool(int num_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return static_cast<int>(workers_.size()) + 1; }  // workers + the caller
  // Resizes the pool; waits for running loops to finish first.
  void resize(int num_threads);

  // Calls fn(begin, end) over [0, n) split into chunks of at least `grain` items. The calling thread
  // takes part. Blocks until every chunk is done. Nested calls run serially on the calling thread.
  // Chunks are skipped once shutdown() was called (process exit), so exit never waits on a long op.
  void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

  // Called at process exit: remaining chunks of running loops are skipped.
  void shutdown();
  bool is_shutting_down() const { return shutting_down_.load(std::memory_order_relaxed); }

 private:
  struct Job;
  void start(int num_workers);
  void stop();
  void worker_loop();
  void run_chunks(Job& job);

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Job*> jobs_;  // loops with chunks left; workers help the oldest first
  bool stopping_ = false;
  std::atomic<bool> shutting_down_{false};
  std::mutex resize_mu_;
};

// Shorthand for ThreadPool::global().parallel_for.
inline void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  ThreadPool::global().parallel_for(n, grain, fn);
}

}  // namespace sk::core
