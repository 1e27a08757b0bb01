#include "runtime/context.h"

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "runtime/gpu_api.h"
#include "runtime/storage.h"
#include "runtime/stream.h"

namespace sk::rt {

namespace {

// The most host memory this process can ever hold: physical RAM, or the cgroup's limit when lower (a
// container). With overcommit on (vm.overcommit_memory=1, common on GPU hosts) malloc grants any size
// and the process is OOM-killed when the pages are touched; refusing what can never fit keeps "too big"
// an ERR_OUT_OF_MEMORY on every host, as it is on the GPU (where the device's total is the bound).
uint64_t host_memory_limit() {
  static const uint64_t limit = [] {
    uint64_t bytes = 0;
    const long pages = sysconf(_SC_PHYS_PAGES);
    const long page = sysconf(_SC_PAGESIZE);
    if (pages > 0 && page > 0) bytes = static_cast<uint64_t>(pages) * static_cast<uint64_t>(page);
    for (const char* path : {"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}) {
      std::ifstream f(path);
      std::string v;
      if (!(f >> v) || v.empty() || v == "max") continue;
      char* end = nullptr;
      const unsigned long long cg = std::strtoull(v.c_str(), &end, 10);
      if (end != v.c_str() && cg > 0 && (bytes == 0 || cg < bytes)) bytes = cg;
    }
    return bytes;
  }();
  return limit;
}

}  // namespace

Context::Context(DeviceKind kind, int device, int64_t max_device_bytes)
    : kind_(kind), device_(device), max_device_bytes_(max_device_bytes) {}

Context::~Context() = default;

Status Context::Create(DeviceKind kind, int device, int64_t max_device_bytes, std::shared_ptr<Context>* out) {
  std::shared_ptr<Context> ctx(new Context(kind, device, max_device_bytes));
  if (kind == DeviceKind::kCuda) SK_RETURN_IF_ERROR(gpu::set_device(device));
  SK_RETURN_IF_ERROR(ctx->CreateStream(&ctx->default_stream_));
  *out = std::move(ctx);
  return Status::Ok();
}

Status Context::CreateStream(std::shared_ptr<Stream>* out) {
  SK_RETURN_IF_ERROR(Stream::Create(shared_from_this(), out));
  std::lock_guard<std::mutex> lock(streams_mu_);
  // Forget streams that are gone, so a long-lived context does not grow this list without bound.
  std::vector<std::weak_ptr<Stream>> live;
  for (auto& w : streams_) {
    if (!w.expired()) live.push_back(std::move(w));
  }
  live.push_back(*out);
  streams_.swap(live);
  return Status::Ok();
}

Status Context::Allocate(size_t bytes, const std::shared_ptr<Stream>& stream, std::shared_ptr<Storage>* out) {
  void* data = nullptr;
  // The cap applies to the context's device, whichever it is (GPU memory, or host memory for the CPU).
  if (max_device_bytes_ > 0 &&
      bytes_.load(std::memory_order_relaxed) + static_cast<int64_t>(bytes) > max_device_bytes_) {
    return Status::Error(ErrorCode::kOutOfMemory,
                         "allocating " + std::to_string(bytes) + " bytes would exceed this context's " +
                             "maxDeviceBytes (" + std::to_string(max_device_bytes_) + "; " +
                             std::to_string(bytes_.load()) + " in use)");
  }
  if (is_cuda()) {
    if (bytes > 0) {
      SK_RETURN_IF_ERROR(gpu::set_device(device_));
      const auto& devices = gpu::probe().devices;
      if (device_ < static_cast<int>(devices.size()) && bytes > devices[device_].total_bytes) {
        // Never ask the pool for more than the device has: a failing request can leave the pool holding
        // most of the device until it is trimmed (seen on an H200: other processes then failed to allocate).
        return Status::Error(ErrorCode::kOutOfMemory,
                             "could not allocate " + std::to_string(bytes) + " bytes on CUDA device " +
                                 std::to_string(device_) + ": more than the device's total memory (" +
                                 std::to_string(devices[device_].total_bytes) + " bytes)");
      }
      Status s = gpu::malloc_async(&data, bytes, stream->cuda_stream());
      if (s.code == ErrorCode::kOutOfMemory) {
        // Cached pool blocks may be free but not reusable on this stream yet: return them and retry once.
        gpu::pool_trim(device_);
        s = gpu::malloc_async(&data, bytes, stream->cuda_stream());
        // Whatever a failed request made the pool reserve goes back to the device at once.
        if (!s.ok()) gpu::pool_trim(device_);
      }
      if (!s.ok()) {
        s.op = "allocate";
        s.message = "could not allocate " + std::to_string(bytes) + " bytes on CUDA device " +
                    std::to_string(device_) + ": " + s.message;
        return s;
      }
    }
  } else if (bytes > 0) {
    // 64-byte alignment: whole cache lines and aligned AVX-512 loads for the CPU kernels.
    const uint64_t limit = host_memory_limit();
    if (limit > 0 && bytes > limit) {
      return Status::Error(ErrorCode::kOutOfMemory, "could not allocate " + std::to_string(bytes) +
                                                        " bytes of host memory: more than this process can hold (" +
                                                        std::to_string(limit) + " bytes, RAM or cgroup limit)");
    }
    const size_t rounded = (bytes + 63) / 64 * 64;
    data = std::aligned_alloc(64, rounded);
    if (data == nullptr) {
      return Status::Error(ErrorCode::kOutOfMemory, "could not allocate " + std::to_string(bytes) + " bytes of host memory");
    }
  }
  *out = std::make_shared<Storage>(shared_from_this(), stream, data, bytes);
  return Status::Ok();
}

void Context::on_allocated(size_t bytes) {
  tensors_.fetch_add(1, std::memory_order_relaxed);
  bytes_.fetch_add(static_cast<int64_t>(bytes), std::memory_order_relaxed);
}

void Context::on_freed(size_t bytes) {
  tensors_.fetch_sub(1, std::memory_order_relaxed);
  bytes_.fetch_sub(static_cast<int64_t>(bytes), std::memory_order_relaxed);
}

MemoryStats Context::memory() const {
  MemoryStats m;
  m.tensors = tensors_.load(std::memory_order_relaxed);
  if (is_cuda()) {
    m.device_bytes = bytes_.load(std::memory_order_relaxed);
    m.pool_reserved_bytes = static_cast<int64_t>(gpu::pool_reserved_bytes(device_));
  } else {
    m.host_bytes = bytes_.load(std::memory_order_relaxed);
  }
  return m;
}

Status Context::ReleaseCachedMemory() {
  if (!is_cuda()) return Status::Ok();
  return gpu::pool_trim(device_);
}

void Context::Shutdown() {
  std::vector<std::shared_ptr<Stream>> streams;
  {
    std::lock_guard<std::mutex> lock(streams_mu_);
    for (auto& w : streams_) {
      if (auto s = w.lock()) streams.push_back(std::move(s));
    }
  }
  for (auto& s : streams) s->Shutdown();
}

}  // namespace sk::rt
