// A Storage is one allocation (host or device) shared by tensors and by the tasks that use it.
// Tasks hold shared_ptrs until they are issued (CUDA) or done (CPU), so dispose() while an op is in
// flight never frees memory under a kernel: the last owner frees it, in stream order on CUDA.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "core/status.h"
#include "runtime/context.h"

namespace sk::rt {

// A point in one stream's task order.
struct StreamPoint {
  std::shared_ptr<Stream> stream;
  uint64_t seq = 0;
};

class Storage {
 public:
  Storage(std::shared_ptr<Context> ctx, std::shared_ptr<Stream> home, void* data, size_t bytes);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  bool is_cuda() const { return ctx_->is_cuda(); }
  const std::shared_ptr<Context>& context() const { return ctx_; }
  const std::shared_ptr<Stream>& home() const { return home_; }

  // Set when the op that produced this storage failed (or an input of it had failed); later readers
  // propagate it instead of computing on garbage. Thread-safe.
  std::shared_ptr<const Status> error() const;
  void set_error(std::shared_ptr<const Status> s);

  // Dependency tracking, touched only on the JS thread that owns the context (Stream::Enqueue), and by
  // the destructor once no one else holds the storage.
  StreamPoint last_write;
  std::vector<StreamPoint> reads;  // at most one entry per stream

 private:
  std::shared_ptr<Context> ctx_;
  std::shared_ptr<Stream> home_;
  void* data_;
  size_t bytes_;
  mutable std::mutex error_mu_;
  std::shared_ptr<const Status> error_;
};

}  // namespace sk::rt
