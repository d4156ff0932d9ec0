// Transport: byte-stream connections over unix, TCP and vsock sockets.
//
// Addresses are written "unix:PATH", "tcp:HOST:PORT" and "vsock:CID:PORT",
// where CID is a number or ANY (listen only). All three are SOCK_STREAM
// sockets, so one Connection type serves them; only Listen/Connect differ by
// family. vsock sockets get a large SO_VM_SOCKETS_BUFFER_SIZE because the
// kernel's 256 KiB default window throttles throughput; unix sockets get a
// send buffer of the same size for the same reason.
//
// Thread safety: a Connection may be read by one thread while another writes
// to it; concurrent writers must serialize themselves. Shutdown() may be
// called from any thread and makes blocked reads and writes fail.
// Listener::Close() may be called from any thread and unblocks Accept().
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "blockstore/status.h"

namespace enclavefs {

struct Address {
  enum class Kind { kUnix, kTcp, kVsock };
  static constexpr uint32_t kAnyCid = 0xFFFFFFFFu;  // VMADDR_CID_ANY

  Kind kind = Kind::kUnix;
  std::string path;   // unix
  std::string host;   // tcp
  uint32_t cid = 0;   // vsock
  uint32_t port = 0;  // tcp and vsock

  std::string ToString() const;
};

// Parses the textual forms above. InvalidArgument with a helpful message
// (naming the accepted forms) on anything else.
Result<Address> ParseAddress(std::string_view text);

class Connection {
 public:
  explicit Connection(int fd, std::string peer);  // takes ownership of fd
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Reads exactly `size` bytes. Unavailable on EOF or error (message says
  // which); a clean EOF before the first byte says "connection closed".
  Status ReadFull(void* buf, size_t size);
  // Writes all of `a` then `b` (either may be empty) with one gathered
  // send loop; never raises SIGPIPE. Unavailable if the peer is gone.
  Status WriteFull(std::string_view a, std::string_view b = {});
  // Writes the concatenation of `parts` with gathered sends, so a message
  // assembled from pieces needs no copy into one buffer. As WriteFull.
  Status WriteGathered(std::span<const std::string_view> parts);
  void Shutdown();
  const std::string& peer() const { return peer_; }
  int fd() const { return fd_; }

 private:
  int fd_;
  std::string peer_;
};

class Listener {
 public:
  ~Listener();
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  // Blocks for the next connection. ShuttingDown after Close().
  Result<std::unique_ptr<Connection>> Accept();
  void Close();
  // The bound address; for "tcp:127.0.0.1:0" it holds the chosen port.
  const Address& address() const { return address_; }

 private:
  friend Result<std::unique_ptr<Listener>> Listen(const Address& address);
  Listener(int fd, Address address);
  int fd_;
  int wake_pipe_[2];
  std::atomic<bool> closed_{false};
  Address address_;
};

// Binds and listens. For unix sockets a stale socket file left by a dead
// process is replaced; a live one gives AlreadyExists ("address in use").
Result<std::unique_ptr<Listener>> Listen(const Address& address);

// Connects within `timeout`. Unavailable if nothing answers.
Result<std::unique_ptr<Connection>> Connect(
    const Address& address,
    std::chrono::milliseconds timeout = std::chrono::seconds(5));

}  // namespace enclavefs
