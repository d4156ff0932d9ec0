#include "enclave-mount/exit_codes.h"

namespace enclavefs {
namespace {

bool Contains(const std::string& text, std::string_view part) {
  return text.find(part) != std::string::npos;
}

}  // namespace

ExitCode ClassifyFailure(Step step, const Status& status) {
  const std::string& message = status.message();
  switch (status.code()) {
    case StatusCode::kOk:
      return ExitCode::kOk;
    case StatusCode::kUnavailable:
      return ExitCode::kHostUnreachable;
    case StatusCode::kBusy:
      return ExitCode::kBusy;
    case StatusCode::kNotFound:
      if (step == Step::kReadHeader || step == Step::kLease) {
        return ExitCode::kNoSuchVolume;
      }
      return step == Step::kOpenVolume ? ExitCode::kNotFormatted
                                       : ExitCode::kFailure;
    case StatusCode::kPermissionDenied:
      // At the lease step the host refused the token the key derived.
      return ExitCode::kWrongKey;
    case StatusCode::kAlreadyExists:
      return Contains(message, "already formatted")
                 ? ExitCode::kAlreadyFormatted
                 : ExitCode::kFailure;
    case StatusCode::kInvalidArgument:
      // fs/volume_keys.h documents this message for a header of a newer
      // (or unknown) format version.
      if (Contains(message, "incompatible format version")) {
        return ExitCode::kIncompatibleFormat;
      }
      return step == Step::kOther ? ExitCode::kFailure : ExitCode::kUsage;
    case StatusCode::kCorruption:
      // fs/volume.cpp: anchor and --expect-generation refusals at open.
      if (step == Step::kOpenVolume &&
          (Contains(message, "rolled back") || Contains(message, "forked") ||
           Contains(message, "expected"))) {
        return ExitCode::kRollback;
      }
      return ExitCode::kIntegrity;
    default:
      return ExitCode::kFailure;
  }
}

Outcome FailureAt(Step step, const Status& status) {
  return Outcome::Fail(ClassifyFailure(step, status), status.message());
}

}  // namespace enclavefs
