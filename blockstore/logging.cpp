#include "blockstore/logging.h"

#include <pthread.h>
#include <spdlog/sinks/dup_filter_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <memory>

namespace enclavefs {

void InstallStderrLogger(const std::string& name) {
  auto folding = std::make_shared<spdlog::sinks::dup_filter_sink_mt>(
      std::chrono::duration_cast<std::chrono::microseconds>(kRepeatWindow));
  folding->add_sink(std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
  spdlog::set_default_logger(std::make_shared<spdlog::logger>(name, folding));
}

void NameThisThread(const std::string& name) {
  constexpr size_t kMaxNameChars = 15;  // the kernel's TASK_COMM_LEN - 1
  pthread_setname_np(pthread_self(), name.substr(0, kMaxNameChars).c_str());
}

}  // namespace enclavefs
