#include "blockstore/status.h"

namespace enclavefs {

std::string_view StatusCodeName(StatusCode code) {
  // clang-format off
  switch (code) {
    case StatusCode::kOk: return "OK";
    case StatusCode::kNotFound: return "NotFound";
    case StatusCode::kCorruption: return "Corruption";
    case StatusCode::kInvalidArgument: return "InvalidArgument";
    case StatusCode::kIOError: return "IOError";
    case StatusCode::kUnavailable: return "Unavailable";
    case StatusCode::kBusy: return "Busy";
    case StatusCode::kPermissionDenied: return "PermissionDenied";
    case StatusCode::kQuotaExceeded: return "QuotaExceeded";
    case StatusCode::kConflict: return "Conflict";
    case StatusCode::kFenced: return "Fenced";
    case StatusCode::kAlreadyExists: return "AlreadyExists";
    case StatusCode::kProtocolError: return "ProtocolError";
    case StatusCode::kResourceExhausted: return "ResourceExhausted";
    case StatusCode::kShuttingDown: return "ShuttingDown";
    case StatusCode::kNotEmpty: return "NotEmpty";
    case StatusCode::kIsDirectory: return "IsDirectory";
    case StatusCode::kNotDirectory: return "NotDirectory";
    case StatusCode::kNameTooLong: return "NameTooLong";
    case StatusCode::kNoAttribute: return "NoAttribute";
    case StatusCode::kOutOfRange: return "OutOfRange";
    case StatusCode::kNotPermitted: return "NotPermitted";
    case StatusCode::kNotSupported: return "NotSupported";
    case StatusCode::kTooManyLinks: return "TooManyLinks";
  }
  // clang-format on
  return "Unknown";
}

Status::Status(StatusCode code, std::string message) {
  if (code != StatusCode::kOk) {
    rep_ = std::make_shared<const Rep>(Rep{code, std::move(message)});
  }
}

const std::string& Status::message() const {
  static const std::string kEmpty;
  return rep_ ? rep_->message : kEmpty;
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  std::string out(StatusCodeName(code()));
  if (!rep_->message.empty()) out += ": " + rep_->message;
  return out;
}

Status Status::WithContext(std::string_view context) const {
  if (ok()) return *this;
  return Status(code(), std::string(context) + ": " + message());
}

}  // namespace enclavefs
