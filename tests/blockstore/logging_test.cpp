// Tests of the shared logger set-up: repeated lines are folded into a count;
// threads are named.
#include "blockstore/logging.h"

#include <gtest/gtest.h>
#include <pthread.h>
#include <spdlog/spdlog.h>

#include <string>
#include <thread>

namespace enclavefs {
namespace {

size_t Count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos;
       at = text.find(what, at + what.size())) {
    ++n;
  }
  return n;
}

TEST(LoggingTest, givenRepeatedError_whenLogged_thenOneLineAndACount) {
  const auto previous = spdlog::default_logger();
  InstallStderrLogger("logging-test");
  testing::internal::CaptureStderr();
  for (int i = 0; i < 100; ++i) {
    spdlog::error("storage failure: host unreachable");
  }
  spdlog::info("volume: commits succeed again");
  spdlog::error("storage failure: host unreachable");
  spdlog::default_logger()->flush();
  const std::string logged = testing::internal::GetCapturedStderr();
  spdlog::set_default_logger(previous);

  // The first of the 100, a count of the other 99, the distinct line, and
  // the repeat after it (a different line came between).
  EXPECT_EQ(Count(logged, "storage failure: host unreachable"), 2u) << logged;
  EXPECT_EQ(Count(logged, "Skipped 99 duplicate messages"), 1u) << logged;
  EXPECT_EQ(Count(logged, "commits succeed again"), 1u) << logged;
  EXPECT_LT(logged.find("Skipped 99"), logged.find("commits succeed again"));
}

std::string NameOf(pthread_t thread) {
  char name[64] = {};
  EXPECT_EQ(pthread_getname_np(thread, name, sizeof(name)), 0);
  return name;
}

TEST(LoggingTest, givenThreadNamed_thenKernelReportsFirst15Chars) {
  std::string short_name, long_name;
  std::thread([&] {
    NameThisThread("efs-uploader");
    short_name = NameOf(pthread_self());
    NameThisThread("efs-a-name-longer-than-fifteen");
    long_name = NameOf(pthread_self());
  }).join();
  EXPECT_EQ(short_name, "efs-uploader");
  EXPECT_EQ(long_name, "efs-a-name-long");
}

}  // namespace
}  // namespace enclavefs
