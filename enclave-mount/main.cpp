// enclavefs: the enclave-side command (see commands.h).
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "blockstore/malloc_tuning.h"
#include "enclave-mount/commands.h"

int main(int argc, char** argv) {
  // Logs go to stderr (the log file once a mount daemon detaches), so stdout
  // carries only results.
  spdlog::set_default_logger(spdlog::stderr_color_mt("enclavefs"));
  enclavefs::ReexecWithHugePages(argv);
  enclavefs::RecycleLargeBuffers();
  return enclavefs::RunCommandLine(argc, argv);
}
