#include "blockstore/transport.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cstring>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

namespace enclavefs {
namespace {

using Clock = std::chrono::steady_clock;

// Socket buffer for bulk transfers, vsock and unix alike. The kernel's
// defaults (256 KiB vsock window, 208 KiB unix send buffer) make a 512 KiB
// read reply cross in several sender wake-ups (docs/protocol.md).
constexpr int kStreamBufferSize = 4 << 20;
// Back-off when accept() runs out of descriptors or memory.
constexpr int kAcceptRetryMs = 100;

std::string ErrnoText(int err) { return std::strerror(err); }

// Owns a file descriptor until released; keeps error paths leak-free.
class UniqueFd {
 public:
  explicit UniqueFd(int fd = -1) : fd_(fd) {}
  ~UniqueFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  UniqueFd& operator=(UniqueFd&&) = delete;
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

// A socket address in the form the socket calls want.
struct SockAddr {
  sockaddr_storage storage{};
  socklen_t size = 0;
  int family = AF_UNSPEC;
  sockaddr* get() { return reinterpret_cast<sockaddr*>(&storage); }
};

std::optional<uint32_t> ParseNumber(std::string_view text, uint32_t max) {
  uint32_t value = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || ec != std::errc() || ptr != end || value > max) {
    return std::nullopt;
  }
  return value;
}

Status BadAddress(std::string_view text, std::string_view why) {
  return Status::InvalidArgument(
      "invalid address \"" + std::string(text) + "\": " + std::string(why) +
      " (expected unix:PATH, tcp:HOST:PORT or vsock:CID:PORT)");
}

Result<SockAddr> ToSockAddr(const Address& a) {
  SockAddr out;
  switch (a.kind) {
    case Address::Kind::kUnix: {
      auto* un = reinterpret_cast<sockaddr_un*>(&out.storage);
      if (a.path.empty() || a.path.size() >= sizeof(un->sun_path)) {
        return Status::InvalidArgument("bad unix socket path length");
      }
      un->sun_family = AF_UNIX;
      std::memcpy(un->sun_path, a.path.data(), a.path.size());
      out.size = sizeof(sockaddr_un);
      out.family = AF_UNIX;
      return out;
    }
    case Address::Kind::kTcp: {
      const std::string host = a.host == "localhost" ? "127.0.0.1" : a.host;
      auto* in4 = reinterpret_cast<sockaddr_in*>(&out.storage);
      if (inet_pton(AF_INET, host.c_str(), &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons(static_cast<uint16_t>(a.port));
        out.size = sizeof(sockaddr_in);
        out.family = AF_INET;
        return out;
      }
      auto* in6 = reinterpret_cast<sockaddr_in6*>(&out.storage);
      if (inet_pton(AF_INET6, host.c_str(), &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(static_cast<uint16_t>(a.port));
        out.size = sizeof(sockaddr_in6);
        out.family = AF_INET6;
        return out;
      }
      return Status::InvalidArgument("bad tcp host \"" + a.host + "\"");
    }
    case Address::Kind::kVsock: {
      auto* vm = reinterpret_cast<sockaddr_vm*>(&out.storage);
      vm->svm_family = AF_VSOCK;
      vm->svm_cid = a.cid;
      vm->svm_port = a.port;
      out.size = sizeof(sockaddr_vm);
      out.family = AF_VSOCK;
      return out;
    }
  }
  return Status::InvalidArgument("unknown address kind");
}

// Inverse of ToSockAddr for addresses the kernel reports.
Address FromSockAddr(const sockaddr_storage& ss, const Address& fallback) {
  Address a = fallback;
  char text[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET) {
    const auto& in4 = reinterpret_cast<const sockaddr_in&>(ss);
    inet_ntop(AF_INET, &in4.sin_addr, text, sizeof(text));
    a.host = text;
    a.port = ntohs(in4.sin_port);
  } else if (ss.ss_family == AF_INET6) {
    const auto& in6 = reinterpret_cast<const sockaddr_in6&>(ss);
    inet_ntop(AF_INET6, &in6.sin6_addr, text, sizeof(text));
    a.host = text;
    a.port = ntohs(in6.sin6_port);
  } else if (ss.ss_family == AF_VSOCK) {
    const auto& vm = reinterpret_cast<const sockaddr_vm&>(ss);
    a.cid = vm.svm_cid;
    a.port = vm.svm_port;
  }
  return a;
}

void SetVsockBufferSizes(int fd) {
  // Order matters: the kernel clamps SIZE into [MIN, MAX].
  for (int option : {SO_VM_SOCKETS_BUFFER_MAX_SIZE, SO_VM_SOCKETS_BUFFER_SIZE,
                     SO_VM_SOCKETS_BUFFER_MIN_SIZE}) {
    uint64_t value = kStreamBufferSize;
    if (setsockopt(fd, AF_VSOCK, option, &value, sizeof(value)) != 0) {
      spdlog::warn("vsock: cannot set buffer option {}: {}", option,
                   ErrnoText(errno));
    }
  }
}

void SetUnixSendBuffer(int fd) {
  // Unix stream sockets are flow-controlled by the sender's buffer alone.
  // SO_SNDBUFFORCE (CAP_NET_ADMIN) may exceed net.core.wmem_max; plain
  // SO_SNDBUF is silently capped by it.
  const int value = kStreamBufferSize;
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &value, sizeof(value)) == 0) {
    return;
  }
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &value, sizeof(value)) != 0) {
    spdlog::warn("unix: cannot set SO_SNDBUF: {}", ErrnoText(errno));
  }
}

// Per-connection options, applied to connected and accepted sockets alike.
void ConfigureConnected(int fd, Address::Kind kind) {
  if (kind == Address::Kind::kTcp) {
    int one = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0) {
      spdlog::warn("tcp: cannot set TCP_NODELAY: {}", ErrnoText(errno));
    }
  } else if (kind == Address::Kind::kVsock) {
    SetVsockBufferSizes(fd);
  } else {
    SetUnixSendBuffer(fd);
  }
}

// Non-blocking: listeners must not block in accept(), connects must time out.
Result<UniqueFd> NewSocket(int family, const Address& a) {
  UniqueFd fd(socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (fd.get() < 0) {
    return Status::IOError("socket for " + a.ToString() + ": " +
                           ErrnoText(errno));
  }
  return fd;
}

Status SetBlocking(int fd) {
  const int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0) {
    return Status::IOError("fcntl: " + ErrnoText(errno));
  }
  return Status::Ok();
}

// Binds a unix socket, replacing a stale socket file whose server died.
Status BindUnix(int fd, SockAddr& sa, const Address& a) {
  int err = 0;
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (bind(fd, sa.get(), sa.size) == 0) return Status::Ok();
    err = errno;
    if (err != EADDRINUSE) break;
    struct stat st {};
    if (lstat(a.path.c_str(), &st) == 0 && !S_ISSOCK(st.st_mode)) {
      return Status::AlreadyExists("address in use: " + a.path +
                                   " exists and is not a socket");
    }
    UniqueFd probe(
        socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (probe.get() < 0) break;
    if (connect(probe.get(), sa.get(), sa.size) == 0 || errno == EAGAIN) {
      return Status::AlreadyExists("address in use: " + a.ToString() +
                                   " has a live listener");
    }
    // ENOENT: the file vanished meanwhile; just bind again.
    if (errno == ECONNREFUSED) {
      spdlog::info("replacing stale unix socket {}", a.path);
      if (unlink(a.path.c_str()) != 0 && errno != ENOENT) err = errno;
    } else if (errno != ENOENT) {
      err = errno;
      break;
    }
  }
  return Status::IOError("bind " + a.ToString() + ": " + ErrnoText(err));
}

std::string PeerName(const sockaddr_storage& ss, const Address& local) {
  // Unix clients are unnamed; the listening path is the useful label.
  if (ss.ss_family == AF_UNIX) return local.ToString();
  return FromSockAddr(ss, local).ToString();
}

// Waits for a non-blocking connect to finish. OK, or errno-style failure.
Status WaitForConnect(int fd, const Address& a, Clock::time_point deadline,
                      std::chrono::milliseconds timeout) {
  for (;;) {
    const auto left =
        std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) break;
    pollfd p{fd, POLLOUT, 0};
    const int n = poll(&p, 1, static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::IOError("poll: " + ErrnoText(errno));
    if (n == 0) continue;  // re-check the deadline
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    if (err != 0) {
      return Status::Unavailable("cannot reach " + a.ToString() + ": " +
                                 ErrnoText(err));
    }
    return Status::Ok();
  }
  return Status::Unavailable("cannot reach " + a.ToString() +
                             ": timed out after " +
                             std::to_string(timeout.count()) + " ms");
}

}  // namespace

std::string Address::ToString() const {
  switch (kind) {
    case Kind::kUnix:
      return "unix:" + path;
    case Kind::kTcp: {
      const bool v6 = host.find(':') != std::string::npos;
      return "tcp:" + (v6 ? "[" + host + "]" : host) + ":" +
             std::to_string(port);
    }
    case Kind::kVsock:
      return "vsock:" + (cid == kAnyCid ? "ANY" : std::to_string(cid)) + ":" +
             std::to_string(port);
  }
  return "?";
}

Result<Address> ParseAddress(std::string_view text) {
  Address a;
  if (text.starts_with("unix:")) {
    a.kind = Address::Kind::kUnix;
    a.path = std::string(text.substr(5));
    if (a.path.empty()) return BadAddress(text, "empty unix path");
    if (a.path.find('\0') != std::string::npos) {
      return BadAddress(text, "NUL byte in unix path");
    }
    if (a.path.size() >= sizeof(sockaddr_un{}.sun_path)) {
      return BadAddress(text,
                        "unix path longer than " +
                            std::to_string(sizeof(sockaddr_un{}.sun_path) - 1) +
                            " bytes");
    }
    return a;
  }
  if (text.starts_with("tcp:")) {
    a.kind = Address::Kind::kTcp;
    std::string_view rest = text.substr(4);
    std::string_view host, port;
    if (rest.starts_with("[")) {
      const size_t close = rest.find("]:");
      if (close == std::string_view::npos) {
        return BadAddress(text, "IPv6 host must be written [ADDR]:PORT");
      }
      host = rest.substr(1, close - 1);
      port = rest.substr(close + 2);
      in6_addr ignored;
      if (inet_pton(AF_INET6, std::string(host).c_str(), &ignored) != 1) {
        return BadAddress(text, "bad IPv6 address");
      }
    } else {
      const size_t colon = rest.rfind(':');
      if (colon == std::string_view::npos) {
        return BadAddress(text, "missing :PORT");
      }
      host = rest.substr(0, colon);
      port = rest.substr(colon + 1);
      in_addr ignored;
      if (host != "localhost" &&
          inet_pton(AF_INET, std::string(host).c_str(), &ignored) != 1) {
        return BadAddress(text,
                          "host must be a numeric IPv4 address or localhost");
      }
    }
    const auto port_num = ParseNumber(port, 65535);
    if (!port_num) return BadAddress(text, "port must be 0..65535");
    a.host = std::string(host);
    a.port = *port_num;
    return a;
  }
  if (text.starts_with("vsock:")) {
    a.kind = Address::Kind::kVsock;
    std::string_view rest = text.substr(6);
    const size_t colon = rest.find(':');
    if (colon == std::string_view::npos) {
      return BadAddress(text, "missing :PORT");
    }
    const std::string_view cid = rest.substr(0, colon);
    if (cid == "ANY") {
      a.cid = Address::kAnyCid;
    } else if (auto n = ParseNumber(cid, UINT32_MAX)) {
      a.cid = *n;
    } else {
      return BadAddress(text, "CID must be a decimal number or ANY");
    }
    const auto port = ParseNumber(rest.substr(colon + 1), UINT32_MAX);
    if (!port) return BadAddress(text, "port must be a decimal number");
    a.port = *port;
    return a;
  }
  return BadAddress(text, "unknown scheme");
}

// ---- Connection ----

Connection::Connection(int fd, std::string peer)
    : fd_(fd), peer_(std::move(peer)) {}

Connection::~Connection() {
  if (fd_ >= 0) ::close(fd_);
}

Status Connection::ReadFull(void* buf, size_t size) {
  auto* p = static_cast<char*>(buf);
  size_t done = 0;
  while (done < size) {
    const ssize_t n = recv(fd_, p + done, size - done, 0);
    if (n > 0) {
      done += static_cast<size_t>(n);
    } else if (n == 0) {
      if (done == 0) return Status::Unavailable("connection closed");
      return Status::Unavailable("connection closed by " + peer_ + " after " +
                                 std::to_string(done) + " of " +
                                 std::to_string(size) + " bytes");
    } else if (errno != EINTR) {
      return Status::Unavailable("read from " + peer_ + ": " +
                                 ErrnoText(errno));
    }
  }
  return Status::Ok();
}

Status Connection::WriteFull(std::string_view a, std::string_view b) {
  const std::string_view parts[] = {a, b};
  return WriteGathered(parts);
}

Status Connection::WriteGathered(std::span<const std::string_view> parts) {
  std::vector<iovec> iov;
  iov.reserve(parts.size());
  for (std::string_view part : parts) {
    if (!part.empty())
      iov.push_back({const_cast<char*>(part.data()), part.size()});
  }
  size_t first = 0;  // index of the first iovec with bytes left
  while (first < iov.size()) {
    msghdr msg{};
    msg.msg_iov = iov.data() + first;
    msg.msg_iovlen = std::min<size_t>(iov.size() - first, IOV_MAX);
    // MSG_NOSIGNAL: a vanished peer is an error, not a process-wide SIGPIPE.
    const ssize_t n = sendmsg(fd_, &msg, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::Unavailable("write to " + peer_ + ": " + ErrnoText(errno));
    }
    auto left = static_cast<size_t>(n);
    while (left > 0) {
      const size_t used = std::min(left, iov[first].iov_len);
      iov[first].iov_base = static_cast<char*>(iov[first].iov_base) + used;
      iov[first].iov_len -= used;
      left -= used;
      if (iov[first].iov_len == 0) ++first;
    }
  }
  return Status::Ok();
}

void Connection::Shutdown() { ::shutdown(fd_, SHUT_RDWR); }

// ---- Listener ----

Listener::Listener(int fd, Address address)
    : fd_(fd), wake_pipe_{-1, -1}, address_(std::move(address)) {
  // Listen() checks wake_pipe_ and reports a failure here.
  if (pipe2(wake_pipe_, O_CLOEXEC | O_NONBLOCK) != 0) {
    wake_pipe_[0] = wake_pipe_[1] = -1;
  }
}

Listener::~Listener() {
  Close();
  ::close(fd_);
  for (int end : wake_pipe_) {
    if (end >= 0) ::close(end);
  }
  if (address_.kind == Address::Kind::kUnix) unlink(address_.path.c_str());
}

void Listener::Close() {
  if (closed_.exchange(true)) return;
  const char byte = 1;
  if (wake_pipe_[1] >= 0 && write(wake_pipe_[1], &byte, 1) != 1) {
    spdlog::warn("listener {}: cannot wake acceptor: {}", address_.ToString(),
                 ErrnoText(errno));
  }
}

Result<std::unique_ptr<Connection>> Listener::Accept() {
  for (;;) {
    if (closed_) return Status::ShuttingDown("listener closed");
    pollfd fds[2] = {{fd_, POLLIN, 0}, {wake_pipe_[0], POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return Status::IOError("poll on " + address_.ToString() + ": " +
                             ErrnoText(errno));
    }
    if (fds[1].revents != 0) return Status::ShuttingDown("listener closed");
    sockaddr_storage ss{};
    socklen_t len = sizeof(ss);
    const int fd =
        accept4(fd_, reinterpret_cast<sockaddr*>(&ss), &len, SOCK_CLOEXEC);
    if (fd >= 0) {
      ConfigureConnected(fd, address_.kind);
      return std::make_unique<Connection>(fd, PeerName(ss, address_));
    }
    switch (errno) {
      case EAGAIN:
      case EINTR:
      case ECONNABORTED:
      case EPROTO:
        continue;  // the client gave up, or another thread took it
      case EMFILE:
      case ENFILE:
      case ENOBUFS:
      case ENOMEM: {
        spdlog::warn("accept on {}: {}; retrying", address_.ToString(),
                     ErrnoText(errno));
        // Sleep on the wake pipe so Close() still interrupts the back-off.
        pollfd wake{wake_pipe_[0], POLLIN, 0};
        poll(&wake, 1, kAcceptRetryMs);
        continue;
      }
      default:
        return Status::IOError("accept on " + address_.ToString() + ": " +
                               ErrnoText(errno));
    }
  }
}

Result<std::unique_ptr<Listener>> Listen(const Address& address) {
  EFS_ASSIGN_OR_RETURN(SockAddr sa, ToSockAddr(address));
  EFS_ASSIGN_OR_RETURN(UniqueFd fd, NewSocket(sa.family, address));
  if (address.kind == Address::Kind::kUnix) {
    EFS_RETURN_IF_ERROR(BindUnix(fd.get(), sa, address));
  } else {
    if (address.kind == Address::Kind::kTcp) {
      int one = 1;
      setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    } else {
      SetVsockBufferSizes(fd.get());
    }
    if (bind(fd.get(), sa.get(), sa.size) != 0) {
      const int err = errno;
      if (err == EADDRINUSE) {
        return Status::AlreadyExists("address in use: " + address.ToString());
      }
      return Status::IOError("bind " + address.ToString() + ": " +
                             ErrnoText(err));
    }
  }
  // From here on the Listener owns the fd (and unlinks a unix path).
  Address bound = address;
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (address.kind != Address::Kind::kUnix &&
      getsockname(fd.get(), reinterpret_cast<sockaddr*>(&ss), &len) == 0) {
    bound = FromSockAddr(ss, address);
    bound.host = address.host;  // keep "localhost" as the caller wrote it
  }
  // The constructor is private, so make_unique cannot reach it.
  std::unique_ptr<Listener> listener(new Listener(fd.release(), bound));
  if (listener->wake_pipe_[0] < 0) {
    return Status::IOError("pipe for " + address.ToString() + ": " +
                           ErrnoText(errno));
  }
  if (listen(listener->fd_, SOMAXCONN) != 0) {
    return Status::IOError("listen " + address.ToString() + ": " +
                           ErrnoText(errno));
  }
  return listener;
}

Result<std::unique_ptr<Connection>> Connect(const Address& address,
                                            std::chrono::milliseconds timeout) {
  if (address.kind == Address::Kind::kVsock &&
      address.cid == Address::kAnyCid) {
    return Status::InvalidArgument("vsock:ANY can only be listened on");
  }
  EFS_ASSIGN_OR_RETURN(SockAddr sa, ToSockAddr(address));
  EFS_ASSIGN_OR_RETURN(UniqueFd fd, NewSocket(sa.family, address));
  ConfigureConnected(fd.get(), address.kind);
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    if (connect(fd.get(), sa.get(), sa.size) == 0) break;
    if (errno == EINPROGRESS || errno == EINTR) {
      EFS_RETURN_IF_ERROR(WaitForConnect(fd.get(), address, deadline, timeout));
      break;
    }
    // A unix listener with a full backlog: retry until the deadline.
    if (errno == EAGAIN && Clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      continue;
    }
    return Status::Unavailable("cannot reach " + address.ToString() + ": " +
                               ErrnoText(errno));
  }
  EFS_RETURN_IF_ERROR(SetBlocking(fd.get()));
  return std::make_unique<Connection>(fd.release(), address.ToString());
}

}  // namespace enclavefs
