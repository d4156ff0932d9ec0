// RemoteBlockStore: the BlockStore of one volume served by enclavefs-host,
// reached over a pipelined RpcClient, with transparent reconnection.
//
// Open() connects and sends OPEN, which grants this client the volume's
// lease (fencing epoch). Gets are split into chunks issued concurrently on
// the one connection. If the connection drops, the failing call reconnects
// with exponential backoff until RemoteOptions::reconnect_deadline, re-sends
// OPEN with the same token (never takeover: Busy is retried, because the host
// frees the old lease only after the old connection's in-flight requests
// finish), then retries the call. Once a reconnect has given up, calls that
// would reconnect fail at once with its error until RemoteOptions::
// retry_pause has passed.
//
// Why retrying a commit whose reply was lost is safe:
//  * Commits through one RemoteBlockStore run concurrently (so several round
//    trips overlap), except that a commit waits while another one touching
//    any of the same keys (puts, deletes, condition key) is in flight --
//    including that one's reconnect and resend. So when we resend, no other
//    commit of ours that shares a key can have run in between, and commits
//    on other keys commute with it.
//  * Nobody else commits to the volume in between: we held the lease while
//    the commit was in flight, and every epoch the host granted since ours
//    must have gone to this store's client id, in one run that the host has
//    not broken (Reconnect checks it). Otherwise another client claimed the
//    volume while we were away, or the host crashed and may have lost our
//    non-durable commits, and we fail with Fenced instead of resending.
//  * Once the new OPEN succeeds the lost commit has either been applied or
//    never will be (the host drained the old connection first).
//  Hence an unconditional batch is idempotent: re-applying the same puts and
//  deletes to a volume nobody else touched yields the same state. A batch
//  whose condition key it also changes (the filesystem's root-record
//  pattern) would Conflict on resend if it was applied, so the condition key
//  is read first: still the expected old value -> not applied, resend; the
//  batch's new value -> applied, report OK; anything else -> Conflict.
//
// Thread safety: all methods are safe to call concurrently. Ownership: owns
// its connection; destroying the store drops the connection, which releases
// the lease just like Close() does, only less politely.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "blockstore/block_store.h"
#include "blockstore/protocol.h"
#include "blockstore/rpc_client.h"
#include "blockstore/transport.h"

namespace enclavefs {

struct RemoteOptions {
  Address address;
  std::string volume;
  std::string token;
  // Fence the current holder instead of failing with Busy (first OPEN only).
  bool takeover = false;
  std::chrono::milliseconds connect_timeout{5000};
  // How long one call keeps trying to reconnect before giving up.
  std::chrono::milliseconds reconnect_deadline{30000};
  std::chrono::milliseconds initial_backoff{50};
  std::chrono::milliseconds max_backoff{2000};
  // After a reconnect gives up, calls that would reconnect fail at once
  // with its error for this long; then the next one tries again. Without
  // it, requests queued behind a dead host each waited a whole deadline,
  // one after the other.
  std::chrono::milliseconds retry_pause{5000};
  // A request without a reply for this long is logged, and again after
  // each further period; it keeps waiting (RpcClient).
  std::chrono::milliseconds stall_warning = RpcClient::kDefaultStallWarning;
  // The largest value this client reads (a volume's largest sealed block).
  // A Get asks for as many keys per request as about 1 MiB of such values,
  // at least 16, and no more than fit one frame. A host that answers with
  // larger values can only make the Get fail.
  size_t max_value_size = kMaxValueSize;
};

class RemoteBlockStore : public BlockStore {
 public:
  // Draws the store's random client id, connects and opens the volume.
  // Unavailable ("cannot reach host at ...") if the host does not answer;
  // Busy if another client holds the volume and takeover is false;
  // PermissionDenied for a wrong token; NotFound if the volume does not
  // exist. No retries here: the caller decides.
  static Result<std::unique_ptr<RemoteBlockStore>> Open(RemoteOptions options);
  ~RemoteBlockStore() override;

  // Missing keys are nullopt. Retried after a reconnect.
  Result<GetResult> Get(std::span<const std::string> keys) override;
  // The values point into the reply frames: one buffer per chunk of keys.
  Result<SharedGetResult> GetShared(std::span<const std::string> keys) override;
  // See the header comment for how a lost reply is resolved. InvalidArgument
  // if the encoded batch exceeds protocol::kMaxPayloadSize; Fenced (never
  // retried) if another client took the volume over.
  Status Commit(const CommitBatch& batch) override;
  Result<StoreStats> Stat() override;
  // Reconnects now if the connection broke (the host closed it or went
  // away), under the same deadline and retry pause as a call's reconnect.
  Status RestoreConnection() override;
  // `limit` above protocol::kMaxKeysPerRequest is clamped (page.more tells).
  Result<KeyPage> ListKeys(std::string_view start_after, size_t limit) override;

  // Round trip to the host; OK if it answers. Retried after a reconnect.
  Status Ping();
  // Sends CLOSE, releasing the lease. Later calls fail with Unavailable.
  // Not retried: a dropped connection releases the lease anyway.
  Status Close();
  // Fencing epoch of the current lease (changes after a reconnect).
  uint64_t epoch() const;

 private:
  RemoteBlockStore(RemoteOptions options, const protocol::ClientId& client_id);

  using Clock = std::chrono::steady_clock;
  struct Session {
    std::shared_ptr<RpcClient> client;
    uint64_t generation = 0;  // bumped by every reconnect
  };
  // The live session, or why there is none (closed, fenced).
  Result<Session> CurrentSession() const;
  // Replaces the broken session `failed_generation` with a new one, retrying
  // with backoff until `deadline`. OK at once if another thread already
  // replaced it. Unavailable after the deadline; Fenced (and the store is
  // dead) if another client claimed the volume meanwhile; other OPEN errors
  // as they come.
  Status Reconnect(uint64_t failed_generation, Clock::time_point deadline);
  // Runs `call` on the current session; reconnects and retries while it
  // fails because the connection broke.
  template <typename T, typename Fn>
  Result<T> WithRetry(Fn call);
  // After a reconnect, decides whether the commit whose reply was lost had
  // been applied (true), must be resent (false) or can no longer apply
  // (Conflict).
  Result<bool> WasApplied(const CommitBatch& batch);
  Result<SharedGetResult> GetOnce(RpcClient& client,
                                  std::span<const std::string> keys);

  const RemoteOptions options_;
  const size_t get_chunk_keys_;  // keys per GET request
  // Sent in every OPEN; the host tells us which epochs went to it.
  const protocol::ClientId client_id_;
  // Keys of the commits in flight, so commits sharing a key take turns.
  class KeyLocks;
  std::unique_ptr<KeyLocks> key_locks_;
  std::mutex reconnect_mu_;  // one thread reconnects at a time
  // The last reconnect's failure, returned at once until the pause ends.
  Status unreachable_;             // GUARDED_BY(reconnect_mu_)
  Clock::time_point retry_after_;  // GUARDED_BY(reconnect_mu_)
  mutable std::mutex mu_;
  Session session_;     // GUARDED_BY(mu_)
  uint64_t epoch_ = 0;  // GUARDED_BY(mu_)
  Status dead_;         // GUARDED_BY(mu_); non-OK once closed or fenced
};

// Reads the volume's public header (protocol::kPublicHeaderKey) without a
// token or lease, over a short-lived connection. nullopt if the volume has no
// header yet; NotFound if the volume does not exist; Unavailable if the host
// does not answer within `timeout`.
Result<std::optional<std::string>> ReadPublicHeader(
    const Address& address, const std::string& volume,
    std::chrono::milliseconds timeout = std::chrono::seconds(5));

}  // namespace enclavefs
