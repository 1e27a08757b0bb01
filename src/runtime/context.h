// A Context is one device (the CPU, or CUDA device N) plus memory accounting and a default stream.
// Everything here is plain C++ (no N-API); src/bindings/context.cc wraps it for JS.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "core/status.h"

namespace sk::rt {

class Stream;
class Storage;

enum class DeviceKind { kCpu = 0, kCuda = 1 };

struct MemoryStats {
  int64_t tensors = 0;          // live storages allocated through this context
  int64_t device_bytes = 0;     // bytes of live CUDA storages
  int64_t host_bytes = 0;       // bytes of live CPU storages
  int64_t pool_reserved_bytes = 0;  // device memory the CUDA pool holds (live + cached), whole device
};

class Context : public std::enable_shared_from_this<Context> {
 public:
  // max_device_bytes <= 0: no cap. For kCuda the caller has checked the device is usable.
  static Status Create(DeviceKind kind, int device, int64_t max_device_bytes, std::shared_ptr<Context>* out);
  ~Context();

  DeviceKind kind() const { return kind_; }
  bool is_cuda() const { return kind_ == DeviceKind::kCuda; }
  int device() const { return device_; }
  int64_t max_device_bytes() const { return max_device_bytes_; }
  const std::shared_ptr<Stream>& default_stream() const { return default_stream_; }

  // Allocates `bytes` for use on `stream` (its home: the CUDA free is ordered on it). JS thread only.
  Status Allocate(size_t bytes, const std::shared_ptr<Stream>& stream, std::shared_ptr<Storage>* out);
  Status CreateStream(std::shared_ptr<Stream>* out);

  MemoryStats memory() const;
  // Returns cached pool memory to the device once every stream is idle (CUDA); no-op on CPU.
  Status ReleaseCachedMemory();

  // Accounting hooks for Storage.
  void on_allocated(size_t bytes);
  void on_freed(size_t bytes);

  // Stops every stream of this context; pending work is dropped (process exit, context.dispose()).
  void Shutdown();

 private:
  Context(DeviceKind kind, int device, int64_t max_device_bytes);

  DeviceKind kind_;
  int device_;
  int64_t max_device_bytes_;
  std::shared_ptr<Stream> default_stream_;
  std::atomic<int64_t> tensors_{0};
  std::atomic<int64_t> bytes_{0};
  mutable std::mutex streams_mu_;
  std::vector<std::weak_ptr<Stream>> streams_;
};

}  // namespace sk::rt
