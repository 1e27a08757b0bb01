#include "runtime/storage.h"

#include <cstdlib>

#include "runtime/gpu_api.h"
#include "runtime/stream.h"

namespace sk::rt {

Storage::Storage(std::shared_ptr<Context> ctx, std::shared_ptr<Stream> home, void* data, size_t bytes)
    : ctx_(std::move(ctx)), home_(std::move(home)), data_(data), bytes_(bytes) {
  ctx_->on_allocated(bytes_);
}

Storage::~Storage() {
  if (data_ != nullptr) {
    if (ctx_->is_cuda()) {
      // Order the free after every use on other streams, then free in the home stream's order. Tasks
      // that used this storage have all been issued (they held a reference until then).
      gpu::set_device(ctx_->device());
      void* home_stream = home_->cuda_stream();
      auto wait_for = [&](const StreamPoint& p) {
        if (!p.stream || p.stream == home_ || p.seq == 0) return;
        if (p.stream->completed() >= p.seq) return;
        // An event recorded on the other stream now follows its uses of this storage (all issued).
        void* ev = nullptr;
        if (gpu::event_create(&ev, false).ok()) {
          if (gpu::event_record(ev, p.stream->cuda_stream()).ok()) gpu::stream_wait_event(home_stream, ev);
          gpu::event_destroy(ev);  // destroying a recorded event is allowed; the wait stays valid
        }
      };
      wait_for(last_write);
      for (const auto& r : reads) wait_for(r);
      gpu::free_async(data_, home_stream);
    } else {
      std::free(data_);
    }
  }
  ctx_->on_freed(bytes_);
}

std::shared_ptr<const Status> Storage::error() const {
  std::lock_guard<std::mutex> lock(error_mu_);
  return error_;
}

void Storage::set_error(std::shared_ptr<const Status> s) {
  std::lock_guard<std::mutex> lock(error_mu_);
  error_ = std::move(s);
}

}  // namespace sk::rt
