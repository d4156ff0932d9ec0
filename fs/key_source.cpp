#include "fs/key_source.h"

#include <fcntl.h>
#include <signal.h>
#include <sodium.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "fs/crypto.h"

extern char** environ;

namespace enclavefs {
namespace {

constexpr size_t kHexKeySize = 2 * kKeySize;
// Anything longer than a hex key plus newline cannot be a key; reading stops
// one byte past it so an overlong input is recognized without buffering it.
constexpr size_t kMaxKeyInput = kHexKeySize + 1;

// Closes a file descriptor on scope exit.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() { Reset(); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  void Reset() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

// Reads up to kMaxKeyInput + 1 bytes from `fd` into `buf`; returns the count.
Result<size_t> ReadBounded(int fd, SecureBytes& buf) {
  size_t got = 0;
  while (got < buf.size()) {
    ssize_t n = read(fd, buf.data() + got, buf.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::IOError(std::strerror(errno));
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  return got;
}

Result<SecureBytes> ReadKeyFile(const std::string& path) {
  Fd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    return Status::InvalidArgument("cannot open key file " + path + ": " +
                                   std::strerror(errno));
  }
  SecureBytes buf(kMaxKeyInput + 1);
  Result<size_t> got = ReadBounded(fd.get(), buf);
  if (!got.ok()) {
    return Status::InvalidArgument("cannot read key file " + path + ": " +
                                   got.status().message());
  }
  Result<SecureBytes> key = ParseRawKey({buf.data(), *got});
  if (!key.ok()) return key.status().WithContext("key file " + path);
  return key;
}

Result<SecureBytes> RunKeyCommand(const std::string& command) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    return Status::IOError(std::string("key command: pipe failed: ") +
                           std::strerror(errno));
  }
  Fd read_end(fds[0]);
  Fd write_end(fds[1]);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null",
                                   O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, write_end.get(), STDOUT_FILENO);
  const char* argv[] = {"/bin/sh", "-c", command.c_str(), nullptr};
  pid_t pid = -1;
  int rc = posix_spawn(&pid, "/bin/sh", &actions, nullptr,
                       const_cast<char* const*>(argv), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    return Status::InvalidArgument(std::string("key command: cannot start "
                                               "/bin/sh: ") +
                                   std::strerror(rc));
  }
  write_end.Reset();  // so read() sees EOF when the child exits

  SecureBytes buf(kMaxKeyInput + 1);
  Result<size_t> got = ReadBounded(read_end.get(), buf);
  read_end.Reset();  // an overlong writer gets EPIPE instead of blocking
  int wstatus = 0;
  while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
  }
  if (!got.ok()) {
    return Status::InvalidArgument("key command: cannot read its output: " +
                                   got.status().message());
  }
  if (*got > kMaxKeyInput) {  // the child may have died of EPIPE: say why
    return ParseRawKey({buf.data(), *got})
        .status()
        .WithContext("key command output");
  }
  if (WIFSIGNALED(wstatus)) {
    return Status::InvalidArgument("key command was killed by signal " +
                                   std::to_string(WTERMSIG(wstatus)));
  }
  if (WEXITSTATUS(wstatus) != 0) {
    return Status::InvalidArgument("key command failed with exit status " +
                                   std::to_string(WEXITSTATUS(wstatus)));
  }
  Result<SecureBytes> key = ParseRawKey({buf.data(), *got});
  if (!key.ok()) return key.status().WithContext("key command output");
  return key;
}

}  // namespace

KeySource KeySource::Passphrase(std::string passphrase) {
  return {Kind::kPassphrase, std::move(passphrase)};
}
KeySource KeySource::KeyFile(std::string path) {
  return {Kind::kKeyFile, std::move(path)};
}
KeySource KeySource::KeyCommand(std::string command) {
  return {Kind::kKeyCommand, std::move(command)};
}

Result<SecureBytes> ParseRawKey(std::span<const uint8_t> bytes) {
  if (bytes.size() == kKeySize) return SecureBytes::CopyOf(bytes);
  size_t hex_len = bytes.size();
  if (hex_len == kHexKeySize + 1 && bytes.back() == '\n') --hex_len;
  if (hex_len == kHexKeySize) {
    SecureBytes key(kKeySize);
    size_t bin_len = 0;
    const char* end = nullptr;
    if (sodium_hex2bin(key.data(), key.size(),
                       reinterpret_cast<const char*>(bytes.data()), hex_len,
                       nullptr, &bin_len, &end) == 0 &&
        bin_len == kKeySize &&
        end == reinterpret_cast<const char*>(bytes.data()) + hex_len) {
      return key;
    }
    return Status::InvalidArgument(
        "a 64-character key must be hexadecimal digits only");
  }
  return Status::InvalidArgument(
      "a key must be 32 raw bytes or 64 hex digits (got " +
      std::string(bytes.size() > kMaxKeyInput ? "more than 65"
                                              : std::to_string(bytes.size())) +
      " bytes)");
}

Result<SecureBytes> LoadRawKey(const KeySource& source) {
  switch (source.kind) {
    case KeySource::Kind::kKeyFile:
      return ReadKeyFile(source.value);
    case KeySource::Kind::kKeyCommand:
      return RunKeyCommand(source.value);
    case KeySource::Kind::kPassphrase:
      break;
  }
  return Status::InvalidArgument("a passphrase is not a raw key");
}

}  // namespace enclavefs
