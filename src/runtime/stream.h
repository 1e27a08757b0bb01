// An ordered queue of tasks on one device.
//
// Every stream owns a host worker thread that runs its tasks in submission order. On the CPU a task is
// the computation itself (kernels spread it over the shared thread pool). On CUDA a task issues work on
// the stream's cudaStream_t and returns at once; an event recorded after it feeds a completion thread
// that waits (blocking sync, no spinning) and reports device faults. Kernel launches, copies from
// JS memory and allocation-heavy setup all happen off the JS thread, so the event loop never waits.
//
// Ordering across streams follows the storages: Enqueue (JS thread, program order) records for each
// storage the last write and the last read per stream, and a task waits for the conflicting points of
// other streams (read-after-write, write-after-read, write-after-write) before it runs: on CUDA with
// cudaStreamWaitEvent, on the CPU by waiting for the other stream's completion counter.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/status.h"
#include "runtime/context.h"
#include "runtime/storage.h"

namespace sk::rt {

enum class AccessMode { kRead, kWrite, kReadWrite };

struct Access {
  std::shared_ptr<Storage> storage;
  AccessMode mode = AccessMode::kRead;
  bool writes() const { return mode != AccessMode::kRead; }
  bool reads() const { return mode != AccessMode::kWrite; }
};

struct Task {
  const char* op = "op";
  std::vector<Access> accesses;
  // CPU: computes. CUDA: issues work on cuda_stream() and returns (launch errors only).
  std::function<Status()> run;
  // Called once the task's work is complete (CPU: on the worker; CUDA: on the completion thread after
  // the device finished it) or failed or was skipped. Must not block; typically posts to the JS thread.
  std::function<void(const Status&)> done;
  // Runs even when an input storage carries an error (a download must report that error itself).
  bool run_on_input_error = false;
};

class Stream : public std::enable_shared_from_this<Stream> {
 public:
  static Status Create(const std::shared_ptr<Context>& ctx, std::shared_ptr<Stream>* out);
  ~Stream();

  // JS thread. Returns the task's sequence number (1, 2, ...).
  uint64_t Enqueue(Task&& task);

  bool is_cuda() const { return cuda_stream_ != nullptr; }
  void* cuda_stream() const { return cuda_stream_; }
  int device() const { return device_; }
  Context* context() const { return ctx_; }

  uint64_t submitted() const { return submitted_; }
  uint64_t completed() const { return completed_.load(std::memory_order_acquire); }
  bool idle() const { return completed() == submitted_; }

  // The first error of a task since the last call; cleared by reading it (synchronize() reports it).
  std::shared_ptr<const Status> TakeError();
  // A device fault poisons the CUDA context for good: every later task fails with it.
  std::shared_ptr<const Status> sticky_error() const;

  // Blocks the *calling* thread until seq completed (tests, *Sync helpers, shutdown). Never on the JS
  // thread in library code paths.
  void WaitCompleted(uint64_t seq);

  // Blocking stop (process exit, tests): tasks not started are dropped (done() gets kCancelled), work
  // already issued to the device is waited for, and the threads are joined.
  void Shutdown();
  // Non-blocking stop (dispose, GC finalizer): the stream finishes what is queued, then its threads end.
  // Tasks enqueued afterwards are cancelled.
  void RequestStop();

 private:
  explicit Stream(Context* ctx);
  Status Init(const std::shared_ptr<Context>& ctx);
  void WorkerLoop();
  void CompletionLoop();
  Status WaitDependency(const StreamPoint& p);  // worker thread
  void RecordError(const std::shared_ptr<const Status>& s);

  struct Pending {
    Task task;
    uint64_t seq;
    std::vector<StreamPoint> deps;
  };
  struct InFlight {  // CUDA: issued, waiting for the device
    uint64_t seq;
    void* event;
    Status status;
    std::function<void(const Status&)> done;
  };

  Context* ctx_;  // the context outlives its streams' threads (Context::Shutdown joins them)
  int device_ = -1;
  void* cuda_stream_ = nullptr;
  uint64_t submitted_ = 0;  // JS thread only

  std::mutex mu_;
  std::condition_variable cv_;        // queue_ non-empty / stopping_
  std::condition_variable progress_;  // issued_/completed_ advanced
  std::deque<Pending> queue_;
  std::deque<InFlight> inflight_;
  std::condition_variable inflight_cv_;
  bool stopping_ = false;        // hard stop: drop the queue
  bool stop_when_idle_ = false;  // soft stop: drain the queue, then leave
  bool worker_exited_ = false;  // the completion thread drains in-flight work, then leaves
  std::atomic<uint64_t> issued_{0};
  std::atomic<uint64_t> completed_{0};
  std::map<uint64_t, void*> events_;  // seq -> event recorded after that task (CUDA); erased when done
  std::vector<void*> free_events_;

  mutable std::mutex err_mu_;
  std::shared_ptr<const Status> first_error_;
  std::shared_ptr<const Status> sticky_;

  // Both threads hold a shared_ptr to the stream while they run, so the stream (and its cudaStream_t)
  // outlives every task; the destructor joins them, or detaches the one it runs on.
  std::thread worker_;
  std::thread completion_;
  std::mutex threads_mu_;
};

}  // namespace sk::rt
