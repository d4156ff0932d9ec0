#include "enclave-mount/errno_map.h"

#include <spdlog/spdlog.h>

#include <cerrno>

namespace enclavefs {

int ToErrno(const Status& status) {
  switch (status.code()) {
    case StatusCode::kOk:
      return 0;
    case StatusCode::kNotFound:
      return ENOENT;
    case StatusCode::kAlreadyExists:
      return EEXIST;
    case StatusCode::kNotEmpty:
      return ENOTEMPTY;
    case StatusCode::kIsDirectory:
      return EISDIR;
    case StatusCode::kNotDirectory:
      return ENOTDIR;
    case StatusCode::kNameTooLong:
      return ENAMETOOLONG;
    case StatusCode::kNoAttribute:
      return ENODATA;
    case StatusCode::kOutOfRange:
      // The Filesystem's only OutOfRange outcomes are sizes past a limit;
      // the xattr "buffer too small" ERANGE is decided in fuse_ops.cpp.
      return EFBIG;
    case StatusCode::kInvalidArgument:
      return EINVAL;
    case StatusCode::kNotPermitted:
      return EPERM;
    case StatusCode::kNotSupported:
      return EOPNOTSUPP;
    case StatusCode::kTooManyLinks:
      return EMLINK;
    case StatusCode::kQuotaExceeded:
    case StatusCode::kResourceExhausted:  // the host's disk is full
      return ENOSPC;
    case StatusCode::kPermissionDenied:
      return EACCES;
    case StatusCode::kBusy:
      return EBUSY;
    case StatusCode::kCorruption:
      spdlog::error("integrity check failed: {}", status.message());
      return EIO;
    case StatusCode::kUnavailable:
    case StatusCode::kFenced:
    case StatusCode::kConflict:
    case StatusCode::kIOError:
    case StatusCode::kProtocolError:
    case StatusCode::kShuttingDown:
      spdlog::error("storage failure: {}", status.ToString());
      return EIO;
  }
  spdlog::error("unexpected status: {}", status.ToString());
  return EIO;
}

}  // namespace enclavefs
