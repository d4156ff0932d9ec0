// VolumeManager: the lease table of enclavefs-host.
//
// A lease says which connection (session id) currently holds a volume and
// with which fencing epoch. Acquire grants leases, Release drops them, and
// the admin operations consult the table (a held volume cannot be deleted).
// It also keeps each volume's traffic counters.
// Fencing itself lives in RocksDbVolumes: every Acquire bumps the volume's
// epoch durably and hands out a store bound to the new epoch, so commits of
// an older holder fail with Fenced even if they race with the takeover.
//
// Ownership: borrows the RocksDbVolumes, which must outlive this object.
// Thread safety: all methods are safe to call concurrently; one mutex
// serializes lease changes and deletes. The takeover callback runs without
// that mutex held.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "blockstore/protocol.h"
#include "blockstore/rocksdb_volumes.h"

namespace enclavefs {

using SessionId = uint64_t;

struct Lease {
  uint64_t epoch = 0;
  // First epoch of the unbroken run of leases granted to this client id
  // (see protocol::OpenResponse).
  uint64_t holder_since = 0;
  // Bound to `epoch`: its commits fail with Fenced once the lease is lost.
  std::unique_ptr<RocksDbBlockStore> store;
};

// Cumulative wire traffic of one volume since the server started. Updated
// by many sessions at once without locks (relaxed atomics: each counter is
// exact, a snapshot is not one instant across counters).
class TrafficCounters {
 public:
  // One request frame of `frame_bytes` (header included) asking for
  // `keys_read` keys.
  void CountRequest(protocol::Opcode op, uint64_t keys_read,
                    uint64_t frame_bytes);
  // One response frame of `frame_bytes` (header included) sent.
  void CountReply(uint64_t frame_bytes);
  protocol::VolumeTraffic Snapshot() const;

 private:
  std::atomic<uint64_t> requests_{0};
  std::atomic<uint64_t> get_requests_{0};
  std::atomic<uint64_t> commit_requests_{0};
  std::atomic<uint64_t> keys_read_{0};
  std::atomic<uint64_t> bytes_received_{0};
  std::atomic<uint64_t> bytes_sent_{0};
};

class VolumeManager {
 public:
  // Called after `session` lost its lease on `volume` to a takeover, so the
  // owner of that session can close it.
  using TakeoverCallback =
      std::function<void(SessionId session, const std::string& volume)>;

  explicit VolumeManager(RocksDbVolumes& volumes,
                         TakeoverCallback on_takeover = {});

  // Grants `session` the lease on `name`, on behalf of client `client_id`
  // (recorded with the epoch). Fails with PermissionDenied for a wrong token
  // (nothing changes, and holding is not revealed), NotFound for a missing
  // volume, Busy if another session holds it and !takeover. On a takeover
  // the previous holder is fenced and reported to the callback.
  Result<Lease> Acquire(const std::string& name, const std::string& token,
                        bool takeover, SessionId session,
                        const protocol::ClientId& client_id);

  // Drops the lease if `session` still holds it; otherwise does nothing.
  void Release(const std::string& name, SessionId session);

  bool IsHeld(const std::string& name) const;

  // Admin operations. DeleteVolume fails with Busy while the volume is held;
  // the others pass RocksDbVolumes' errors through.
  Status CreateVolume(const std::string& name, uint64_t quota_bytes);
  Status DeleteVolume(const std::string& name);
  Status ResizeVolume(const std::string& name, uint64_t quota_bytes);
  // All volumes, sorted by name, with `held` from the lease table.
  Result<std::vector<protocol::VolumeEntry>> ListVolumes() const;

  // The traffic counters of `name`, created on first use and kept in memory
  // until the volume is deleted. Call only for a volume that exists.
  std::shared_ptr<TrafficCounters> Traffic(const std::string& name);
  // A snapshot of `name`'s counters (zeros if it has seen no traffic yet).
  // NotFound if the volume does not exist.
  Result<protocol::VolumeTraffic> TrafficOf(const std::string& name);

 private:
  RocksDbVolumes& volumes_;
  TakeoverCallback on_takeover_;
  mutable std::mutex mu_;
  std::map<std::string, SessionId> holders_;  // GUARDED_BY(mu_)
  std::map<std::string, std::shared_ptr<TrafficCounters>>
      traffic_;  // GUARDED_BY(mu_)
};

}  // namespace enclavefs
