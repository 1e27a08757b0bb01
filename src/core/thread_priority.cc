#include "core/thread_priority.h"

#include <cerrno>
#include <cstdlib>

#if defined(__linux__)
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace sk::core {

void lower_current_thread_priority() {
#if defined(__linux__)
  static const int increment = [] {
    const char* env = std::getenv("SPARSE_KERNELS_WORKER_NICE");
    if (env == nullptr) return 5;
    const int v = std::atoi(env);
    return v < 0 ? 0 : (v > 19 ? 19 : v);
  }();
  if (increment == 0) return;
  // On Linux, PRIO_PROCESS with a thread id sets that thread's nice value only.
  const auto tid = static_cast<id_t>(syscall(SYS_gettid));
  errno = 0;
  const int current = getpriority(PRIO_PROCESS, tid);
  if (errno == 0) setpriority(PRIO_PROCESS, tid, current + increment);
#endif
}

}  // namespace sk::core
