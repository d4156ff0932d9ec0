// enclavefs: the enclave-side command (see commands.h).
#include "blockstore/logging.h"
#include "blockstore/malloc_tuning.h"
#include "enclave-mount/commands.h"

int main(int argc, char** argv) {
  // Logs go to stderr (the log file once a mount daemon detaches), so stdout
  // carries only results.
  enclavefs::InstallStderrLogger("enclavefs");
  enclavefs::ReexecWithHugePages(argv);
  enclavefs::RecycleLargeBuffers();
  return enclavefs::RunCommandLine(argc, argv);
}
