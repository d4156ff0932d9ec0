// Test helpers shared by the host-server tests: a temp directory that cleans
// up after itself and a client that speaks raw protocol frames, so tests can
// send exactly the bytes they want (including broken ones).
//
// Not thread safe; each test thread uses its own RawClient.
#pragma once

#include <stdlib.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "blockstore/frame_io.h"
#include "blockstore/protocol.h"
#include "blockstore/transport.h"

namespace enclavefs::testing {

inline constexpr std::string_view kToken = "token-0123456789abcdef";
// Two fixed, distinct client ids for OPEN (real clients draw random ones).
inline constexpr protocol::ClientId kClientId = {1, 2,  3,  4,  5,  6,  7,  8,
                                                 9, 10, 11, 12, 13, 14, 15, 16};
inline constexpr protocol::ClientId kOtherClientId = {
    16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1};

// mkdtemp under /tmp; removed with everything in it on destruction.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = "/tmp/efs-h3-XXXXXX";
    path_ = ::mkdtemp(tmpl.data()) ? tmpl : "";
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string Sub(std::string_view name) const {
    return path_ + "/" + std::string(name);
  }

 private:
  std::string path_;
};

inline Address UnixAddress(const std::string& path) {
  Address address;
  address.path = path;
  return address;
}

class RawClient {
 public:
  // nullptr if nothing answers. Reads time out after a few seconds so a
  // broken server fails the test instead of hanging it.
  static std::unique_ptr<RawClient> Connect(const Address& address) {
    auto conn = enclavefs::Connect(address);
    if (!conn.ok()) return nullptr;
    timeval timeout{.tv_sec = 10, .tv_usec = 0};
    ::setsockopt((*conn)->fd(), SOL_SOCKET, SO_RCVTIMEO, &timeout,
                 sizeof timeout);
    return std::unique_ptr<RawClient>(new RawClient(std::move(*conn)));
  }

  Status Send(protocol::Opcode op, uint64_t id, std::string_view payload) {
    return SendRawOpcode(static_cast<uint16_t>(op), id, payload);
  }
  Status SendRawOpcode(uint16_t op, uint64_t id, std::string_view payload) {
    return WriteFrame(*conn_, {.opcode = op, .request_id = id}, payload);
  }
  Status SendBytes(std::string_view bytes) { return conn_->WriteFull(bytes); }
  Result<Frame> Read() { return ReadFrame(*conn_); }

  // Sends one request with a fresh id and reads the next frame.
  Result<Frame> Call(protocol::Opcode op, std::string_view payload = {}) {
    EFS_RETURN_IF_ERROR(Send(op, next_id_++, payload));
    return Read();
  }
  Result<Frame> Open(const std::string& volume, bool takeover = false,
                     const protocol::ClientId& client_id = kClientId) {
    return Call(protocol::Opcode::kOpen,
                protocol::Encode(protocol::OpenRequest{
                    volume, std::string(kToken), takeover, client_id}));
  }
  Result<Frame> Commit(const CommitBatch& batch) {
    return Call(protocol::Opcode::kCommit, protocol::Encode(batch));
  }
  Result<Frame> Get(std::vector<std::string> keys) {
    return Call(protocol::Opcode::kGet,
                protocol::Encode(protocol::GetRequest{std::move(keys)}));
  }

  // True once the server has closed the connection: reads hit EOF (any
  // frames still queued before it are skipped). False on a read timeout.
  bool ClosedByPeer() {
    while (true) {
      auto frame = Read();
      if (frame.ok()) continue;
      const std::string& message = frame.status().message();
      return message.find("connection closed") != std::string::npos ||
             message.find("reset") != std::string::npos;
    }
  }
  void HalfClose() { ::shutdown(conn_->fd(), SHUT_WR); }

 private:
  explicit RawClient(std::unique_ptr<Connection> conn)
      : conn_(std::move(conn)) {}
  std::unique_ptr<Connection> conn_;
  uint64_t next_id_ = 1;
};

}  // namespace enclavefs::testing
