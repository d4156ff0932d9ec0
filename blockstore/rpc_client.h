// RpcClient: a pipelined request/response client over one Connection.
//
// Many requests may be in flight at once (at most protocol::kMaxInFlight);
// each gets a fresh request id and the server may answer them in any order.
// A reader thread matches responses to pending calls by id. When the
// connection fails -- or the peer breaks the protocol, e.g. by answering an
// id nobody asked for -- the client becomes broken: every pending and every
// later call completes with Unavailable. A broken client never recovers;
// reconnecting means building a new one (RemoteBlockStore does that).
//
// Calls wait for their reply as long as the connection lives: availability
// is the host's to give (docs/design.md), so a stalled host stalls them. A
// wait logs a warning after every `stall_warning` without a reply, naming
// the peer and the request, so that an operator can see why.
//
// Ownership: owns the Connection and the reader thread. The destructor shuts
// the connection down, joins the reader and fails calls still pending.
// Thread safety: all methods are safe to call concurrently.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <future>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>

#include "blockstore/frame_io.h"
#include "blockstore/protocol.h"
#include "blockstore/status.h"
#include "blockstore/transport.h"

namespace enclavefs {

class RpcClient {
 public:
  static constexpr std::chrono::milliseconds kDefaultStallWarning{30000};

  explicit RpcClient(
      std::unique_ptr<Connection> conn,
      std::chrono::milliseconds stall_warning = kDefaultStallWarning);
  ~RpcClient();
  RpcClient(const RpcClient&) = delete;
  RpcClient& operator=(const RpcClient&) = delete;

  // Sends one request and waits for its response. Returns the response
  // payload on OK; a non-OK response becomes Status(code, payload as the
  // message); Unavailable if the connection is or becomes broken before the
  // response arrives. Blocks while kMaxInFlight requests are outstanding.
  Result<Payload> Call(protocol::Opcode op, std::string_view payload);
  // The same, with the payload sent as the concatenation of `parts`.
  Result<Payload> Call(protocol::Opcode op,
                       std::span<const std::string_view> parts);

  // Like Call, but returns once the request is written, so one caller can
  // keep many requests in flight. Still blocks for a free slot first.
  std::future<Result<Payload>> CallAsync(protocol::Opcode op,
                                         std::string_view payload);
  std::future<Result<Payload>> CallAsync(
      protocol::Opcode op, std::span<const std::string_view> parts);

  // Waits for the reply of a CallAsync of `op` and returns it, with the
  // stall warnings described above.
  Result<Payload> Await(std::future<Result<Payload>>& reply,
                        protocol::Opcode op) const;

  // True once the connection has failed; calls then fail fast.
  bool broken() const;

  // Breaks the connection on purpose (pending calls fail with Unavailable).
  void Shutdown();

  const std::string& peer() const { return conn_->peer(); }

 private:
  struct Pending {
    uint16_t opcode;
    std::promise<Result<Payload>> promise;
  };

  void ReadLoop();
  // Marks the client broken for `reason`, shuts the socket down and fails
  // every pending call. Idempotent: the first reason wins.
  void Break(const Status& reason);

  std::unique_ptr<Connection> conn_;
  const std::chrono::milliseconds stall_warning_;
  std::mutex write_mu_;  // serializes frame writes on conn_

  mutable std::mutex mu_;
  std::condition_variable slot_freed_;
  uint64_t next_id_ = 1;                           // GUARDED_BY(mu_)
  std::unordered_map<uint64_t, Pending> pending_;  // GUARDED_BY(mu_)
  Status broken_reason_;                           // GUARDED_BY(mu_)
  bool broken_ = false;                            // GUARDED_BY(mu_)

  std::thread reader_;  // last: starts after everything above exists
};

}  // namespace enclavefs
