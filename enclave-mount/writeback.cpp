#include "enclave-mount/writeback.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

namespace enclavefs {
namespace {

// mountinfo writes space, tab, newline and backslash in paths as \ooo.
std::string Unescape(std::string_view field) {
  std::string out;
  for (size_t i = 0; i < field.size(); ++i) {
    if (field[i] == '\\' && i + 3 < field.size()) {
      const std::string_view digits = field.substr(i + 1, 3);
      if (digits.find_first_not_of("01234567") == std::string_view::npos) {
        out.push_back(static_cast<char>(((digits[0] - '0') << 6) |
                                        ((digits[1] - '0') << 3) |
                                        (digits[2] - '0')));
        i += 3;
        continue;
      }
    }
    out.push_back(field[i]);
  }
  return out;
}

std::vector<std::string_view> Fields(std::string_view line) {
  std::vector<std::string_view> fields;
  size_t pos = 0;
  while (pos < line.size()) {
    const size_t end = std::min(line.find(' ', pos), line.size());
    if (end > pos) fields.push_back(line.substr(pos, end - pos));
    pos = end + 1;
  }
  return fields;
}

}  // namespace

Result<std::string> MountDevice(std::string_view mountinfo,
                                std::string_view mountpoint) {
  std::string device;
  size_t pos = 0;
  while (pos < mountinfo.size()) {
    const size_t end = std::min(mountinfo.find('\n', pos), mountinfo.size());
    const std::string_view line = mountinfo.substr(pos, end - pos);
    pos = end + 1;
    if (line.empty()) continue;
    // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS ...
    const std::vector<std::string_view> fields = Fields(line);
    if (fields.size() < 5 || fields[2].find(':') == std::string_view::npos) {
      return Status::Corruption("unreadable mountinfo line: " +
                                std::string(line));
    }
    if (Unescape(fields[4]) == mountpoint) device = fields[2];
  }
  if (device.empty()) {
    return Status::NotFound("nothing is mounted at " + std::string(mountpoint));
  }
  return device;
}

Status SetWritebackShare(const std::string& mountpoint, unsigned percent) {
  std::ifstream in("/proc/self/mountinfo");
  if (!in) {
    return Status::IOError(std::string("cannot read /proc/self/mountinfo: ") +
                           std::strerror(errno));
  }
  std::stringstream text;
  text << in.rdbuf();
  EFS_ASSIGN_OR_RETURN(std::string device, MountDevice(text.str(), mountpoint));
  const std::string path = "/sys/class/bdi/" + device + "/max_ratio";
  const std::string value = std::to_string(percent) + "\n";
  const int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  const bool written = fd >= 0 && write(fd, value.data(), value.size()) ==
                                      static_cast<ssize_t>(value.size());
  const int error = errno;
  if (fd >= 0) close(fd);
  if (!written) {
    return Status::IOError("cannot write " + path + ": " +
                           std::strerror(error));
  }
  return Status::Ok();
}

}  // namespace enclavefs
