// Logging set-up shared by enclavefs and enclavefs-host: the default spdlog
// logger writes to stderr and folds repeats.
//
// A stopped host or a tampered block can make every request fail with the
// same error. Each caller still gets its error; the log keeps the first
// line, drops identical lines that follow within kRepeatWindow of it, and
// says how many it dropped ("Skipped N duplicate messages..") before the
// next line it writes. spdlog's dup_filter_sink does the folding.
//
// Thread safety: InstallStderrLogger once at start, before any other thread
// logs; NameThisThread from any thread.
#pragma once

#include <chrono>
#include <string>

namespace enclavefs {

inline constexpr std::chrono::seconds kRepeatWindow{5};

// Makes a logger named `name` on stderr the default spdlog logger.
void InstallStderrLogger(const std::string& name);

// Names the calling thread for `top -H`, perf and /proc/PID/task/*/comm, so
// that the CPU of each role (ring threads, uploader, read-ahead, ...) can be
// told apart. Linux keeps the first 15 characters.
void NameThisThread(const std::string& name);

}  // namespace enclavefs
