// The only error channel below the bindings: plain values, no exceptions, never exit().
// The bindings turn a non-OK Status into a SparseKernelsError (lib/errors.ts) with the same code.
#pragma once
#include <string>
#include <utility>

namespace sk {

enum class ErrorCode : int {
  kOk = 0,
  kInvalidArgument,  // JS maps to RangeError/TypeError; native re-checks as defence in depth
  kShape,            // ERR_SHAPE
  kOutOfMemory,      // ERR_OUT_OF_MEMORY (host or device)
  kCuda,             // ERR_CUDA, with the CUDA error name and number
  kCudaUnavailable,  // ERR_CUDA_UNAVAILABLE
  kDisposed,         // ERR_DISPOSED
  kCancelled,        // ERR_CANCELLED: work dropped because the process or the stream is shutting down
  kInternal,         // ERR_INTERNAL: a bug of ours
};

inline const char* error_code_string(ErrorCode c) {
  switch (c) {
    case ErrorCode::kOk: return "OK";
    case ErrorCode::kInvalidArgument: return "ERR_INVALID_ARG";
    case ErrorCode::kShape: return "ERR_SHAPE";
    case ErrorCode::kOutOfMemory: return "ERR_OUT_OF_MEMORY";
    case ErrorCode::kCuda: return "ERR_CUDA";
    case ErrorCode::kCudaUnavailable: return "ERR_CUDA_UNAVAILABLE";
    case ErrorCode::kDisposed: return "ERR_DISPOSED";
    case ErrorCode::kCancelled: return "ERR_CANCELLED";
    case ErrorCode::kInternal: return "ERR_INTERNAL";
  }
  return "ERR_INTERNAL";
}

struct Status {
  ErrorCode code = ErrorCode::kOk;
  std::string message;
  std::string cuda_error;  // e.g. "cudaErrorIllegalAddress"; empty unless code is kCuda/kOutOfMemory from CUDA
  int cuda_error_code = 0;
  std::string op;  // the op that failed, filled in by the stream when the task names one

  bool ok() const { return code == ErrorCode::kOk; }
  static Status Ok() { return Status{}; }
  static Status Error(ErrorCode c, std::string msg) {
    Status s;
    s.code = c;
    s.message = std::move(msg);
    return s;
  }
  static Status Invalid(std::string msg) { return Error(ErrorCode::kInvalidArgument, std::move(msg)); }
  static Status Internal(std::string msg) { return Error(ErrorCode::kInternal, std::move(msg)); }
};

#define SK_RETURN_IF_ERROR(expr)          \
  do {                                    \
    ::sk::Status sk_status_ = (expr);     \
    if (!sk_status_.ok()) return sk_status_; \
  } while (0)

}  // namespace sk
