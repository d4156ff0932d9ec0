// BlockServer: the network face of enclavefs-host.
//
// Listens on client addresses (unix, tcp, vsock) and optionally on a local
// admin unix socket. Each connection is a session: one reader thread decodes
// frames and hands requests to a shared worker pool, so one connection's
// requests run concurrently and may be answered out of order; replies are
// written under a per-connection mutex. A client session opens one volume
// (leased through VolumeManager) and then reads and commits blocks; the admin
// socket only manages volumes. A connection whose lease was taken over stays
// open but gets Fenced for every volume request. Any protocol violation gets a
// ProtocolError reply (when the request id is known) and closes that connection
// only. GET replies are written straight from the values (gathered send, no
// copy into one buffer). Every frame of an opened session is added to the
// volume's traffic counters (VolumeManager::Traffic), read by ADMIN_STATS.
//
// Ownership: borrows the RocksDbVolumes, which must outlive the server.
// Thread safety: Start and Stop are called by the owner (not concurrently
// with each other); everything else runs on the server's own threads.
#pragma once

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "blockstore/frame_io.h"
#include "blockstore/protocol.h"
#include "blockstore/rocksdb_volumes.h"
#include "blockstore/transport.h"
#include "host-server/volume_manager.h"

namespace enclavefs {

struct BlockServerOptions {
  std::vector<Address> listen;   // client listeners
  std::optional<Address> admin;  // admin listener (unix)
  size_t worker_threads = 8;
  // Test seam: runs on a worker before each request is executed (lets tests
  // hold requests in flight deterministically).
  std::function<void(protocol::Opcode)> before_request;
};

class BlockServer {
 public:
  BlockServer(RocksDbVolumes& volumes, BlockServerOptions options);
  ~BlockServer();  // Stop()
  BlockServer(const BlockServer&) = delete;
  BlockServer& operator=(const BlockServer&) = delete;

  // Binds every listener and starts serving. On any bind failure nothing
  // keeps listening and the Status names the address that failed.
  Status Start();

  // Graceful shutdown: stops accepting and reading, lets in-flight requests
  // finish and answers them, closes all connections, then syncs the WAL.
  // Idempotent.
  void Stop();

  // Bound client addresses (tcp port 0 resolved), valid after Start().
  std::vector<Address> listen_addresses() const;
  std::optional<Address> admin_address() const;

  VolumeManager& volume_manager() { return manager_; }

 private:
  struct Session;
  struct Request;
  class WorkerPool;

  void AcceptLoop(Listener& listener, bool admin);
  void ServeSession(const std::shared_ptr<Session>& session);
  // Runs on the session's reader thread. Returns ProtocolError (already
  // answered where possible) when the connection must be closed.
  Status HandleFrame(const std::shared_ptr<Session>& session, Frame frame);
  // A reply payload: plain bytes, or GET values, which are written to the
  // socket from RocksDB's read buffers, without a copy.
  using ReplyBody = std::variant<std::string, PinnedValues>;
  // Runs on a worker: the reply payload or the error to send back.
  Result<ReplyBody> Execute(protocol::Opcode op, const Request& request,
                            RocksDbBlockStore* store);
  Result<ReplyBody> ExecuteAdmin(protocol::Opcode op,
                                 const protocol::VolumeRequest& request);
  void OnTakeover(SessionId session);
  void ReapFinishedSessions();

  RocksDbVolumes& volumes_;
  BlockServerOptions options_;
  VolumeManager manager_;
  std::unique_ptr<WorkerPool> pool_;
  std::vector<std::unique_ptr<Listener>> listeners_;  // client ones first
  std::unique_ptr<Listener> admin_listener_;
  std::vector<std::thread> accept_threads_;
  std::atomic<bool> stopping_{false};
  bool started_ = false;
  std::atomic<SessionId> next_session_id_{1};

  std::mutex sessions_mu_;
  std::vector<std::shared_ptr<Session>> sessions_;  // GUARDED_BY(sessions_mu_)
};

}  // namespace enclavefs
