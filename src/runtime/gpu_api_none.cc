// The GPU interface of a build without CUDA (node-gyp, or cmake with SPARSE_KERNELS_CUDA=OFF): every
// entry answers "built without CUDA"; the probe reports it as the reason for the CPU backend.
#if !SK_WITH_CUDA
#include "runtime/gpu_api.h"

namespace sk::gpu {

namespace {
Status no_cuda() {
  return Status::Error(ErrorCode::kCudaUnavailable, "this binary was built without CUDA support");
}
}  // namespace

const ProbeResult& probe() {
  static const ProbeResult r = [] {
    ProbeResult p;
    p.built_with_cuda = false;
    p.usable = false;
    p.reason = "this binary was built without CUDA support";
    p.reason_code = "built-without-cuda";
    return p;
  }();
  return r;
}
bool built_with_cuda() { return false; }
bool probed() { return false; }

Status set_device(int) { return no_cuda(); }
Status stream_create(int, void**) { return no_cuda(); }
void stream_destroy(void*) {}
Status stream_synchronize(void*) { return no_cuda(); }
Status stream_wait_event(void*, void*) { return no_cuda(); }
Status event_create(void**, bool) { return no_cuda(); }
void event_destroy(void*) {}
Status event_record(void*, void*) { return no_cuda(); }
Status event_synchronize(void*) { return no_cuda(); }
Status event_query(void*) { return no_cuda(); }
Status event_elapsed_ms(float*, void*, void*) { return no_cuda(); }
Status malloc_async(void**, size_t, void*) { return no_cuda(); }
Status free_async(void*, void*) { return no_cuda(); }
Status pool_trim(int) { return no_cuda(); }
size_t pool_reserved_bytes(int) { return 0; }
Status mem_get_info(int, size_t*, size_t*) { return no_cuda(); }
Status memcpy_h2d(void*, const void*, size_t, void*) { return no_cuda(); }
Status memcpy_d2h(void*, const void*, size_t, void*) { return no_cuda(); }
Status memcpy_d2d(void*, const void*, size_t, void*) { return no_cuda(); }
Status memset_async(void*, int, size_t, void*) { return no_cuda(); }
Status convert_async(void*, int, const void*, int, int64_t, void*) { return no_cuda(); }
Status launch_fault_for_testing(void*) { return no_cuda(); }
Status launch_spin_for_testing(void*, double) { return no_cuda(); }

}  // namespace sk::gpu
#endif
