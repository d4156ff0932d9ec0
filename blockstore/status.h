// Status and Result<T>: how every fallible call in EnclaveFS reports failure.
//
// A Status is a code plus a human-readable message. OK carries no message and
// costs one pointer. Result<T> holds either a value or a non-OK Status. Both
// are plain values: copyable, movable, and safe to share between threads once
// constructed. No exception crosses a library boundary; errors are turned into
// errno in exactly one place, at the FUSE edge.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace enclavefs {

// Stable numbering: codes travel on the wire (docs/protocol.md).
enum class StatusCode : uint16_t {
  kOk = 0,
  kNotFound = 1,
  kCorruption = 2,        // data failed authentication or decoding
  kInvalidArgument = 3,   // caller broke a precondition or limit
  kIOError = 4,           // storage or OS failure
  kUnavailable = 5,       // peer unreachable or connection lost
  kBusy = 6,              // volume is held by another client
  kPermissionDenied = 7,  // wrong access token
  kQuotaExceeded = 8,     // commit would exceed the volume quota
  kConflict = 9,          // compare-and-swap precondition did not match
  kFenced = 10,           // lease was taken over; this holder is stale
  kAlreadyExists = 11,
  kProtocolError = 12,  // malformed frame or request
  kResourceExhausted = 13,
  kShuttingDown = 14,
  // POSIX-layer outcomes (fs/filesystem.h); mapped to errno at the FUSE edge.
  kNotEmpty = 15,      // ENOTEMPTY
  kIsDirectory = 16,   // EISDIR
  kNotDirectory = 17,  // ENOTDIR
  kNameTooLong = 18,   // ENAMETOOLONG
  kNoAttribute = 19,   // ENODATA (xattr)
  kOutOfRange = 20,    // ERANGE (xattr buffer), EFBIG (file size)
  kNotPermitted = 21,  // EPERM
  kNotSupported = 22,  // EOPNOTSUPP
  kTooManyLinks = 23,  // EMLINK
};

// Returns a short stable name such as "Corruption".
std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(StatusCode code, std::string message);

  // One factory per line reads as a table of the codes.
  // clang-format off
  static Status Ok() { return Status(); }
  static Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
  static Status Corruption(std::string m) { return {StatusCode::kCorruption, std::move(m)}; }
  static Status InvalidArgument(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
  static Status IOError(std::string m) { return {StatusCode::kIOError, std::move(m)}; }
  static Status Unavailable(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
  static Status Busy(std::string m) { return {StatusCode::kBusy, std::move(m)}; }
  static Status PermissionDenied(std::string m) { return {StatusCode::kPermissionDenied, std::move(m)}; }
  static Status QuotaExceeded(std::string m) { return {StatusCode::kQuotaExceeded, std::move(m)}; }
  static Status Conflict(std::string m) { return {StatusCode::kConflict, std::move(m)}; }
  static Status Fenced(std::string m) { return {StatusCode::kFenced, std::move(m)}; }
  static Status AlreadyExists(std::string m) { return {StatusCode::kAlreadyExists, std::move(m)}; }
  static Status ProtocolError(std::string m) { return {StatusCode::kProtocolError, std::move(m)}; }
  static Status ResourceExhausted(std::string m) { return {StatusCode::kResourceExhausted, std::move(m)}; }
  static Status ShuttingDown(std::string m) { return {StatusCode::kShuttingDown, std::move(m)}; }
  static Status NotEmpty(std::string m) { return {StatusCode::kNotEmpty, std::move(m)}; }
  static Status IsDirectory(std::string m) { return {StatusCode::kIsDirectory, std::move(m)}; }
  static Status NotDirectory(std::string m) { return {StatusCode::kNotDirectory, std::move(m)}; }
  static Status NameTooLong(std::string m) { return {StatusCode::kNameTooLong, std::move(m)}; }
  static Status NoAttribute(std::string m) { return {StatusCode::kNoAttribute, std::move(m)}; }
  static Status OutOfRange(std::string m) { return {StatusCode::kOutOfRange, std::move(m)}; }
  static Status NotPermitted(std::string m) { return {StatusCode::kNotPermitted, std::move(m)}; }
  static Status NotSupported(std::string m) { return {StatusCode::kNotSupported, std::move(m)}; }
  static Status TooManyLinks(std::string m) { return {StatusCode::kTooManyLinks, std::move(m)}; }
  // clang-format on

  bool ok() const { return rep_ == nullptr; }
  StatusCode code() const { return rep_ ? rep_->code : StatusCode::kOk; }
  const std::string& message() const;
  // "Corruption: block 12 failed authentication"
  std::string ToString() const;

  // Prefixes the message with context, keeping the code.
  Status WithContext(std::string_view context) const;

 private:
  struct Rep {
    StatusCode code;
    std::string message;
  };
  std::shared_ptr<const Rep> rep_;
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {}  // NOLINT
  // REQUIRES: !status.ok() for the Status constructor.

  bool ok() const { return std::holds_alternative<T>(v_); }
  Status status() const { return ok() ? Status() : std::get<Status>(v_); }

  // REQUIRES: ok()
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace enclavefs

// Propagates a non-OK Status from the current function.
#define EFS_RETURN_IF_ERROR(expr)              \
  do {                                         \
    ::enclavefs::Status efs_status_ = (expr);  \
    if (!efs_status_.ok()) return efs_status_; \
  } while (0)

#define EFS_CONCAT_INNER(a, b) a##b
#define EFS_CONCAT(a, b) EFS_CONCAT_INNER(a, b)
// Declares `lhs` from a Result, or returns its Status.
#define EFS_ASSIGN_OR_RETURN(lhs, expr) \
  EFS_ASSIGN_OR_RETURN_IMPL(EFS_CONCAT(efs_result_, __LINE__), lhs, expr)
#define EFS_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                              \
  if (!tmp.ok()) return tmp.status();             \
  lhs = std::move(tmp).value()
