#include "fs/anchor.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>

namespace enclavefs {
namespace {

constexpr size_t kHashHexSize = 64;

std::string FormatAnchor(uint64_t generation, std::string_view hash) {
  return std::to_string(generation) + " " + std::string(hash) + "\n";
}

Status Errno(std::string_view what, const std::string& path) {
  return Status::IOError(std::string(what) + " " + path + ": " +
                         std::strerror(errno));
}

Status WriteAll(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Errno("cannot write", path);
    data.remove_prefix(static_cast<size_t>(n));
  }
  return Status::Ok();
}

// Runs `/bin/sh -c command`; returns its stdout if it exits 0.
Result<std::string> RunCommand(const std::string& command) {
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return Status::IOError("cannot run anchor command");
  std::string out;
  char buf[256];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), pipe)) > 0 && out.size() < 4096) {
    out.append(buf, n);
  }
  const int status = ::pclose(pipe);
  if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return Status::IOError(
        "anchor command failed (exit status " +
        std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -1) + ")");
  }
  return out;
}

}  // namespace

Result<AnchorState> ParseAnchorText(std::string_view text,
                                    std::string_view source) {
  const Status bad =
      Status::IOError("malformed anchor in " + std::string(source));
  if (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  const size_t space = text.find(' ');
  if (space == std::string_view::npos || space == 0) return bad;
  AnchorState state;
  auto [end, ec] =
      std::from_chars(text.data(), text.data() + space, state.generation);
  if (ec != std::errc() || end != text.data() + space) return bad;
  std::string_view hash = text.substr(space + 1);
  if (hash.size() != kHashHexSize ||
      hash.find_first_not_of("0123456789abcdef") != std::string_view::npos) {
    return bad;
  }
  state.root_hash = std::string(hash);
  return state;
}

AnchorFile::AnchorFile(std::string path) : path_(std::move(path)) {}

Result<std::optional<AnchorState>> AnchorFile::Load() {
  std::ifstream in(path_, std::ios::binary);
  if (!in) {
    if (errno == ENOENT) return std::optional<AnchorState>();
    return Errno("cannot read anchor file", path_);
  }
  std::stringstream text;
  text << in.rdbuf();
  EFS_ASSIGN_OR_RETURN(AnchorState state,
                       ParseAnchorText(text.str(), "anchor file " + path_));
  return std::optional<AnchorState>(std::move(state));
}

Status AnchorFile::Store(uint64_t generation, std::string_view root_hash) {
  const std::string temp = path_ + ".tmp";
  int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Errno("cannot create", temp);
  Status written = WriteAll(fd, FormatAnchor(generation, root_hash), temp);
  if (written.ok() && ::fsync(fd) != 0) written = Errno("cannot fsync", temp);
  ::close(fd);
  EFS_RETURN_IF_ERROR(written);
  if (::rename(temp.c_str(), path_.c_str()) != 0) {
    return Errno("cannot rename anchor to", path_);
  }
  const size_t slash = path_.rfind('/');
  const std::string dir =
      slash == std::string::npos ? "." : path_.substr(0, slash + 1);
  int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) return Errno("cannot open directory", dir);
  const bool synced = ::fsync(dir_fd) == 0;
  ::close(dir_fd);
  return synced ? Status::Ok() : Errno("cannot fsync directory", dir);
}

AnchorCommand::AnchorCommand(std::string command)
    : command_(std::move(command)) {}

Result<std::optional<AnchorState>> AnchorCommand::Load() {
  EFS_ASSIGN_OR_RETURN(std::string out, RunCommand(command_ + " load"));
  if (out.empty()) return std::optional<AnchorState>();
  EFS_ASSIGN_OR_RETURN(AnchorState state,
                       ParseAnchorText(out, "anchor command output"));
  return std::optional<AnchorState>(std::move(state));
}

Status AnchorCommand::Store(uint64_t generation, std::string_view root_hash) {
  return RunCommand(command_ + " store " + std::to_string(generation) + " " +
                    std::string(root_hash))
      .status();
}

}  // namespace enclavefs
