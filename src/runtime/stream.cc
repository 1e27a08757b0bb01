#include "runtime/stream.h"

#include <algorithm>

#include "core/thread_priority.h"
#include "runtime/gpu_api.h"

namespace sk::rt {

namespace {
std::shared_ptr<const Status> make_status(Status s) { return std::make_shared<const Status>(std::move(s)); }
}  // namespace

Stream::Stream(Context* ctx) : ctx_(ctx) {}

Status Stream::Create(const std::shared_ptr<Context>& ctx, std::shared_ptr<Stream>* out) {
  std::shared_ptr<Stream> s(new Stream(ctx.get()));
  Status st = s->Init(ctx);
  if (!st.ok()) {
    s->Shutdown();
    return st;
  }
  *out = std::move(s);
  return Status::Ok();
}

Status Stream::Init(const std::shared_ptr<Context>& ctx) {
  if (ctx->is_cuda()) {
    device_ = ctx->device();
    SK_RETURN_IF_ERROR(gpu::stream_create(device_, &cuda_stream_));
  }
  auto self = shared_from_this();
  worker_ = std::thread([self] { self->WorkerLoop(); });
  if (is_cuda()) completion_ = std::thread([self] { self->CompletionLoop(); });
  return Status::Ok();
}

namespace {
void join_or_detach(std::thread& t) {
  if (!t.joinable()) return;
  if (t.get_id() == std::this_thread::get_id()) {
    t.detach();  // the last owner is this thread itself, on its way out
  } else {
    t.join();
  }
}
}  // namespace

Stream::~Stream() {
  join_or_detach(worker_);
  join_or_detach(completion_);
  for (void* e : free_events_) gpu::event_destroy(e);
  for (auto& kv : events_) gpu::event_destroy(kv.second);
  if (cuda_stream_) gpu::stream_destroy(cuda_stream_);
}

uint64_t Stream::Enqueue(Task&& task) {
  const uint64_t seq = ++submitted_;
  auto self = shared_from_this();
  std::vector<StreamPoint> deps;
  auto add_dep = [&](const StreamPoint& p) {
    if (!p.stream || p.stream.get() == this || p.seq == 0) return;
    for (auto& d : deps) {
      if (d.stream == p.stream) {
        d.seq = std::max(d.seq, p.seq);
        return;
      }
    }
    deps.push_back(p);
  };
  for (const Access& a : task.accesses) {
    Storage& st = *a.storage;
    add_dep(st.last_write);
    if (a.writes()) {
      for (const auto& r : st.reads) add_dep(r);
      st.reads.clear();
      st.last_write = StreamPoint{self, seq};
    } else {
      auto it = std::find_if(st.reads.begin(), st.reads.end(),
                             [&](const StreamPoint& r) { return r.stream.get() == this; });
      if (it != st.reads.end()) {
        it->seq = seq;
      } else {
        st.reads.push_back(StreamPoint{self, seq});
      }
    }
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ || stop_when_idle_) {
      if (task.done) task.done(Status::Error(ErrorCode::kCancelled, "the stream was disposed"));
      completed_.store(seq, std::memory_order_release);
      return seq;
    }
    queue_.push_back(Pending{std::move(task), seq, std::move(deps)});
  }
  cv_.notify_one();
  return seq;
}

Status Stream::WaitDependency(const StreamPoint& p) {
  Stream& other = *p.stream;
  if (!is_cuda()) {
    // CPU: the other stream must have finished that task.
    std::unique_lock<std::mutex> lock(other.mu_);
    other.progress_.wait(lock, [&] {
      return other.completed_.load(std::memory_order_acquire) >= p.seq || other.stopping_;
    });
    return Status::Ok();
  }
  // CUDA: the other stream must have issued it; then order our stream after its event on the device.
  std::unique_lock<std::mutex> lock(other.mu_);
  other.progress_.wait(lock, [&] {
    return other.issued_.load(std::memory_order_acquire) >= p.seq || other.stopping_;
  });
  auto it = other.events_.lower_bound(p.seq);
  if (it == other.events_.end()) return Status::Ok();  // completed and recycled already
  // Events are recorded for every task, so the first event at or after p.seq covers it. The wait is
  // enqueued while other.mu_ is held: the completion thread cannot recycle the event meanwhile.
  if (other.is_cuda()) return gpu::stream_wait_event(cuda_stream_, it->second);
  return Status::Ok();
}

void Stream::RecordError(const std::shared_ptr<const Status>& s) {
  std::lock_guard<std::mutex> lock(err_mu_);
  if (!first_error_) first_error_ = s;
}

std::shared_ptr<const Status> Stream::TakeError() {
  std::lock_guard<std::mutex> lock(err_mu_);
  auto e = std::move(first_error_);
  first_error_.reset();
  return e;
}

std::shared_ptr<const Status> Stream::sticky_error() const {
  std::lock_guard<std::mutex> lock(err_mu_);
  return sticky_;
}

void Stream::WorkerLoop() {
  if (is_cuda()) {
    gpu::set_device(device_);
  } else {
    core::lower_current_thread_priority();  // CPU streams compute here; the JS thread keeps priority
  }
  for (;;) {
    Pending p;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || stop_when_idle_ || !queue_.empty(); });
      if (stopping_ || queue_.empty()) {
        worker_exited_ = true;
        break;
      }
      p = std::move(queue_.front());
      queue_.pop_front();
    }
    Status status;
    for (const auto& d : p.deps) {
      status = WaitDependency(d);
      if (!status.ok()) break;
    }
    std::shared_ptr<const Status> err;
    if (!status.ok()) {
      err = make_status(status);
    } else if (auto sticky = sticky_error()) {
      err = sticky;
    } else {
      if (!p.task.run_on_input_error) {
        for (const Access& a : p.task.accesses) {
          if (!a.reads()) continue;
          if (auto in_err = a.storage->error()) {
            err = in_err;  // an input was produced by a failed op: fail the same way, compute nothing
            break;
          }
        }
      }
      if (!err && p.task.run) {
        Status s = p.task.run();
        if (!s.ok()) {
          if (s.op.empty()) s.op = p.task.op;
          err = make_status(std::move(s));
        }
      }
    }
    if (err) {
      for (const Access& a : p.task.accesses) {
        if (a.writes()) a.storage->set_error(err);
      }
      RecordError(err);
    } else {
      // A successful write clears an error left by an earlier failed producer of the same storage.
      for (const Access& a : p.task.accesses) {
        if (a.writes() && a.storage->error()) a.storage->set_error(nullptr);
      }
    }
    if (!is_cuda()) {
      // Release the task (and with it the storages it held) before its completion can be observed: once
      // `await t.toArray()` resolves, a disposed tensor's memory is free and no longer counts against
      // maxDeviceBytes (it used to be freed just after, so dispose-then-allocate under a tight cap could fail).
      const uint64_t seq = p.seq;
      std::function<void(const Status&)> done = std::move(p.task.done);
      p = Pending{};
      {
        std::lock_guard<std::mutex> lock(mu_);
        completed_.store(seq, std::memory_order_release);
      }
      progress_.notify_all();
      if (done) done(err ? *err : Status::Ok());
      continue;
    }
    // CUDA: record the completion event of this task (also after a failed launch, so seq -> event
    // stays dense) and hand it to the completion thread.
    void* ev = nullptr;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!free_events_.empty()) {
        ev = free_events_.back();
        free_events_.pop_back();
      }
    }
    Status rec = ev ? Status::Ok() : gpu::event_create(&ev, false);
    if (rec.ok()) rec = gpu::event_record(ev, cuda_stream_);
    if (!rec.ok() && !err) {
      err = make_status(rec);
      for (const Access& a : p.task.accesses) {
        if (a.writes()) a.storage->set_error(err);
      }
      RecordError(err);
    }
    // The task's work is issued: release it (and its storages) now, before the completion thread can
    // report it, so that a tensor disposed before the completion is freed (and uncounted) by then. The frees
    // are enqueued on their home streams after this task's work (Storage::~Storage).
    const uint64_t seq = p.seq;
    std::function<void(const Status&)> done = std::move(p.task.done);
    p = Pending{};
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (rec.ok()) events_[seq] = ev;
      issued_.store(seq, std::memory_order_release);
      inflight_.push_back(InFlight{seq, rec.ok() ? ev : nullptr, err ? *err : Status::Ok(), std::move(done)});
    }
    if (!rec.ok() && ev) gpu::event_destroy(ev);
    progress_.notify_all();
    inflight_cv_.notify_one();
  }
  inflight_cv_.notify_all();
}

void Stream::CompletionLoop() {
  gpu::set_device(device_);
  for (;;) {
    InFlight f;
    {
      std::unique_lock<std::mutex> lock(mu_);
      inflight_cv_.wait(lock, [this] { return !inflight_.empty() || worker_exited_; });
      if (inflight_.empty()) break;
      f = std::move(inflight_.front());
      inflight_.pop_front();
    }
    Status status = f.status;
    if (f.event) {
      Status s = gpu::event_synchronize(f.event);
      if (!s.ok()) {
        // A device fault (illegal address, ...) is sticky for the whole CUDA context.
        s.op = s.op.empty() ? "device" : s.op;
        auto st = make_status(s);
        {
          std::lock_guard<std::mutex> lock(err_mu_);
          if (!sticky_) sticky_ = st;
          if (!first_error_) first_error_ = st;
        }
        if (status.ok()) status = s;
      }
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (f.event) {
        events_.erase(f.seq);
        free_events_.push_back(f.event);
      }
      completed_.store(f.seq, std::memory_order_release);
    }
    progress_.notify_all();
    if (f.done) f.done(status);
  }
}

void Stream::WaitCompleted(uint64_t seq) {
  std::unique_lock<std::mutex> lock(mu_);
  progress_.wait(lock, [&] { return completed_.load(std::memory_order_acquire) >= seq || stopping_; });
}

void Stream::RequestStop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_when_idle_ = true;
  }
  cv_.notify_all();
}

void Stream::Shutdown() {
  std::deque<Pending> dropped;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    dropped.swap(queue_);
  }
  cv_.notify_all();
  progress_.notify_all();
  {
    std::lock_guard<std::mutex> guard(threads_mu_);
    if (worker_.joinable() && worker_.get_id() != std::this_thread::get_id()) worker_.join();
    inflight_cv_.notify_all();
    if (completion_.joinable() && completion_.get_id() != std::this_thread::get_id()) completion_.join();
  }
  const Status cancelled = Status::Error(ErrorCode::kCancelled, "the stream was shut down before this ran");
  for (auto& p : dropped) {
    if (p.task.done) p.task.done(cancelled);
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    completed_.store(submitted_, std::memory_order_release);
  }
  progress_.notify_all();
}

}  // namespace sk::rt
