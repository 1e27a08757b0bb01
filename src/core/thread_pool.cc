#include "core/thread_pool.h"

#include "core/thread_priority.h"

#include <algorithm>
#include <cstdlib>
#include <string>

namespace sk::core {

namespace {
thread_local int tls_depth = 0;  // >0 while this thread runs a chunk: nested loops run inline

int default_threads() {
  if (const char* env = std::getenv("SPARSE_KERNELS_NUM_THREADS")) {
    const int v = std::atoi(env);
    if (v > 0) return std::min(v, 1024);
  }
  const unsigned hc = std::thread::hardware_concurrency();
  return hc == 0 ? 1 : static_cast<int>(hc);
}
}  // namespace

struct ThreadPool::Job {
  const std::function<void(int64_t, int64_t)>* fn;
  int64_t n;
  int64_t chunk;
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> done{0};
  int active_helpers = 0;  // workers inside run_chunks for this job; guarded by mu
  int64_t num_chunks;
  std::mutex mu;
  std::condition_variable cv;
};

ThreadPool& ThreadPool::global() {
  // Leaked on purpose: worker threads must outlive static destructors that may still run kernels.
  static ThreadPool* pool = new ThreadPool(default_threads());
  return *pool;
}

ThreadPool::ThreadPool(int num_threads) { start(std::max(1, num_threads) - 1); }

ThreadPool::~ThreadPool() { stop(); }

void ThreadPool::start(int num_workers) {
  stopping_ = false;
  for (int i = 0; i < num_workers; ++i) {
    workers_.emplace_back([this] {
      lower_current_thread_priority();
      worker_loop();
    });
  }
}

void ThreadPool::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : workers_) t.join();
  workers_.clear();
}

void ThreadPool::resize(int num_threads) {
  std::lock_guard<std::mutex> guard(resize_mu_);
  num_threads = std::max(1, std::min(num_threads, 1024));
  if (num_threads == this->num_threads()) return;
  stop();  // waits for idle workers; running loops finish on their callers
  start(num_threads - 1);
}

void ThreadPool::shutdown() { shutting_down_.store(true, std::memory_order_relaxed); }

void ThreadPool::run_chunks(Job& job) {
  ++tls_depth;
  for (;;) {
    const int64_t c = job.next.fetch_add(1, std::memory_order_relaxed);
    if (c >= job.num_chunks) break;
    if (!is_shutting_down()) {
      const int64_t begin = c * job.chunk;
      const int64_t end = std::min(job.n, begin + job.chunk);
      (*job.fn)(begin, end);
    }
    if (job.done.fetch_add(1, std::memory_order_acq_rel) + 1 == job.num_chunks) {
      std::lock_guard<std::mutex> lock(job.mu);
      job.cv.notify_all();
    }
  }
  --tls_depth;
}

void ThreadPool::worker_loop() {
  for (;;) {
    Job* job = nullptr;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
      if (stopping_ && jobs_.empty()) return;
      job = jobs_.front();
      // A job whose chunks are all claimed leaves the list; its owner waits for `done`.
      if (job->next.load(std::memory_order_relaxed) >= job->num_chunks) {
        jobs_.erase(jobs_.begin());
        continue;
      }
      // Registered while mu_ is held, so the owner (which erases the job under mu_ before waiting
      // for helpers) cannot free the job while this worker still touches it.
      std::lock_guard<std::mutex> job_lock(job->mu);
      ++job->active_helpers;
    }
    run_chunks(*job);
    std::lock_guard<std::mutex> job_lock(job->mu);
    if (--job->active_helpers == 0) job->cv.notify_all();
  }
}

void ThreadPool::parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  const int threads = num_threads();
  if (tls_depth > 0 || threads == 1 || n <= grain) {
    if (!is_shutting_down()) fn(0, n);
    return;
  }
  // About 4 chunks per thread balances uneven work (block-sparse rows) without much scheduling cost.
  const int64_t target_chunks = static_cast<int64_t>(threads) * 4;
  const int64_t chunk = std::max(grain, (n + target_chunks - 1) / target_chunks);
  Job job;
  job.fn = &fn;
  job.n = n;
  job.chunk = chunk;
  job.num_chunks = (n + chunk - 1) / chunk;
  {
    std::lock_guard<std::mutex> lock(mu_);
    jobs_.push_back(&job);
  }
  cv_.notify_all();
  run_chunks(job);
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = std::find(jobs_.begin(), jobs_.end(), &job);
    if (it != jobs_.end()) jobs_.erase(it);
  }
  std::unique_lock<std::mutex> lock(job.mu);
  job.cv.wait(lock, [&] {
    return job.done.load(std::memory_order_acquire) == job.num_chunks && job.active_helpers == 0;
  });
}

}  // namespace sk::core
