#include "enclave-mount/exit_codes.h"

#include <gtest/gtest.h>

namespace enclavefs {
namespace {

TEST(ExitCodesTest,
     givenNotFound_whenClassifiedByStep_thenVolumeMissingOrNotFormatted) {
  EXPECT_EQ(ClassifyFailure(Step::kReadHeader, Status::NotFound("x")),
            ExitCode::kNoSuchVolume);
  EXPECT_EQ(ClassifyFailure(Step::kLease, Status::NotFound("x")),
            ExitCode::kNoSuchVolume);
  EXPECT_EQ(ClassifyFailure(Step::kOpenVolume,
                            Status::NotFound("volume is not formatted")),
            ExitCode::kNotFormatted);
}

TEST(ExitCodesTest, givenHostAndKeyFailures_whenClassified_thenDistinctCodes) {
  EXPECT_EQ(ClassifyFailure(Step::kReadHeader, Status::Unavailable("x")),
            ExitCode::kHostUnreachable);
  EXPECT_EQ(
      ClassifyFailure(Step::kUnlock, Status::PermissionDenied("wrong key")),
      ExitCode::kWrongKey);
  EXPECT_EQ(ClassifyFailure(Step::kLease, Status::Busy("held")),
            ExitCode::kBusy);
  EXPECT_EQ(ClassifyFailure(
                Step::kUnlock,
                Status::InvalidArgument(
                    "incompatible format version 9 (this build reads 1)")),
            ExitCode::kIncompatibleFormat);
  EXPECT_EQ(ClassifyFailure(Step::kOther, Status::AlreadyExists(
                                              "volume is already formatted")),
            ExitCode::kAlreadyFormatted);
}

TEST(ExitCodesTest,
     givenCorruptionAtOpen_whenAnchorRefused_thenRollbackElseIntegrity) {
  EXPECT_EQ(
      ClassifyFailure(
          Step::kOpenVolume,
          Status::Corruption("volume was rolled back: host root generation 3")),
      ExitCode::kRollback);
  EXPECT_EQ(ClassifyFailure(Step::kOpenVolume,
                            Status::Corruption("volume was forked: x")),
            ExitCode::kRollback);
  EXPECT_EQ(
      ClassifyFailure(Step::kOpenVolume,
                      Status::Corruption("volume generation is 4, expected 5")),
      ExitCode::kRollback);
  EXPECT_EQ(ClassifyFailure(Step::kOpenVolume,
                            Status::Corruption("root block failed")),
            ExitCode::kIntegrity);
}

TEST(ExitCodesTest, givenFailure_whenFailureAt_thenMessageKept) {
  Outcome outcome = FailureAt(Step::kLease, Status::Busy("volume held"));
  EXPECT_EQ(outcome.code, ExitCode::kBusy);
  EXPECT_EQ(outcome.message, "volume held");
  EXPECT_FALSE(outcome.ok());
}

}  // namespace
}  // namespace enclavefs
