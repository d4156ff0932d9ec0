#include "blockstore/malloc_tuning.h"

#include <malloc.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <string_view>

namespace enclavefs {

void RecycleLargeBuffers() {
  const bool mmap_set = mallopt(M_MMAP_THRESHOLD, kMmapThreshold) == 1;
  const bool trim_set = mallopt(M_TRIM_THRESHOLD, kTrimThreshold) == 1;
  const bool arena_set = mallopt(M_ARENA_MAX, kMallocArenas) == 1;
  if (!mmap_set || !trim_set || !arena_set) {
    spdlog::warn("malloc refused the large-buffer settings; running without");
  }
}

std::optional<std::string> TunablesWithHugePages(const char* current) {
  constexpr std::string_view kName = "glibc.malloc.hugetlb";
  const std::string_view tunables = current == nullptr ? "" : current;
  // Entries are name=value, separated by colons.
  size_t start = 0;
  while (start <= tunables.size()) {
    const size_t end = std::min(tunables.find(':', start), tunables.size());
    const std::string_view entry = tunables.substr(start, end - start);
    if (entry.substr(0, entry.find('=')) == kName) return std::nullopt;
    start = end + 1;
  }
  std::string next(tunables);
  if (!next.empty()) next += ':';
  next += kName;
  next += "=1";
  return next;
}

void ReexecWithHugePages(char** argv) {
  // The re-executed program never runs itself again, whatever its
  // environment says: glibc drops unsafe tunables for setuid programs, so
  // checking GLIBC_TUNABLES alone could loop.
  if (std::getenv(kReexecMarker) != nullptr) {
    ::unsetenv(kReexecMarker);
    return;
  }
  const std::optional<std::string> tunables =
      TunablesWithHugePages(std::getenv("GLIBC_TUNABLES"));
  if (!tunables) return;
  // The program's own path, not /proc/self/exe, so that the process keeps
  // its name (the kernel names it after the file executed).
  char path[PATH_MAX];
  const ssize_t length = ::readlink("/proc/self/exe", path, sizeof path - 1);
  if (length <= 0) {
    spdlog::warn("cannot run again with malloc huge pages: {}",
                 std::strerror(errno));
    return;
  }
  path[length] = '\0';
  if (::setenv("GLIBC_TUNABLES", tunables->c_str(), 1) != 0 ||
      ::setenv(kReexecMarker, "1", 1) != 0) {
    return;
  }
  ::execv(path, argv);
  const int error = errno;
  ::unsetenv(kReexecMarker);
  spdlog::warn("cannot run again with malloc huge pages: {}",
               std::strerror(error));
}

}  // namespace enclavefs
