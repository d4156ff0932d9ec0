// Exit codes of the enclavefs command and the mapping from a failed step's
// Status to one of them. docs/usage.md lists the table; scripts rely on it,
// so values never change meaning.
//
// The same StatusCode means different things at different steps (NotFound
// from the host: no such volume; from the volume itself: not formatted), so
// classification takes the step that failed. Pure; thread-safe.
#pragma once

#include <string>

#include "blockstore/status.h"

namespace enclavefs {

enum class ExitCode : int {
  kOk = 0,
  kFailure = 1,  // anything not below; fsck: damage found
  kUsage = 2,    // bad command line, missing key
  kHostUnreachable = 3,
  kNoSuchVolume = 4,
  kWrongKey = 5,
  kBusy = 6,  // the volume is mounted or leased elsewhere
  kNotFormatted = 7,
  kAlreadyFormatted = 8,
  kIncompatibleFormat = 9,
  kRollback = 10,   // older or forked root than the anchor / expected
  kIntegrity = 11,  // the host returned data that failed authentication
};

// Where a volume-opening sequence failed.
enum class Step {
  kReadHeader,  // fetching the public header from the host
  kUnlock,      // deriving the volume key from the user's key
  kLease,       // OPEN on the host with the access token
  kOpenVolume,  // reading and verifying the root
  kOther,       // anything after the volume is open
};

// A command's result: kOk, or an exit code and the one-line cause the user
// sees as "enclavefs: <message>".
struct Outcome {
  ExitCode code = ExitCode::kOk;
  std::string message;

  bool ok() const { return code == ExitCode::kOk; }
  static Outcome Ok() { return {}; }
  static Outcome Fail(ExitCode code, std::string message) {
    return {code, std::move(message)};
  }
};

ExitCode ClassifyFailure(Step step, const Status& status);

// ClassifyFailure plus the status message (never a secret: statuses carry
// none) as the cause.
Outcome FailureAt(Step step, const Status& status);

}  // namespace enclavefs
