#include "blockstore/logging.h"

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

}  // namespace enclavefs
