#include "host-server/volume_manager.h"

#include <spdlog/spdlog.h>

#include <optional>
#include <utility>

namespace enclavefs {

VolumeManager::VolumeManager(RocksDbVolumes& volumes,
                             TakeoverCallback on_takeover)
    : volumes_(volumes), on_takeover_(std::move(on_takeover)) {}

Result<Lease> VolumeManager::Acquire(const std::string& name,
                                     const std::string& token, bool takeover,
                                     SessionId session,
                                     const protocol::ClientId& client_id) {
  std::optional<SessionId> evicted;
  Lease lease;
  {
    std::lock_guard lock(mu_);
    // The token is checked before the lease table so that a caller without
    // the token cannot learn whether the volume is in use.
    Status verified = volumes_.VerifyToken(name, token);
    if (verified.code() == StatusCode::kPermissionDenied) {
      return Status::PermissionDenied("wrong access token for volume " + name);
    }
    EFS_RETURN_IF_ERROR(verified);
    auto holder = holders_.find(name);
    if (holder != holders_.end() && holder->second != session) {
      if (!takeover) {
        return Status::Busy("volume " + name +
                            " is busy (held by another client)");
      }
      evicted = holder->second;
    }
    EFS_ASSIGN_OR_RETURN(
        EpochGrant grant,
        volumes_.Claim(
            name, token,
            std::string_view(reinterpret_cast<const char*>(client_id.data()),
                             client_id.size())));
    lease.epoch = grant.epoch;
    lease.holder_since = grant.holder_since;
    EFS_ASSIGN_OR_RETURN(lease.store, volumes_.OpenVolume(name, lease.epoch));
    holders_[name] = session;
  }
  if (evicted) {
    spdlog::info("volume {}: session {} took over from session {} (epoch {})",
                 name, session, *evicted, lease.epoch);
    if (on_takeover_) on_takeover_(*evicted, name);
  }
  return lease;
}

void VolumeManager::Release(const std::string& name, SessionId session) {
  std::lock_guard lock(mu_);
  auto holder = holders_.find(name);
  if (holder != holders_.end() && holder->second == session) {
    holders_.erase(holder);
  }
}

bool VolumeManager::IsHeld(const std::string& name) const {
  std::lock_guard lock(mu_);
  return holders_.contains(name);
}

Status VolumeManager::CreateVolume(const std::string& name,
                                   uint64_t quota_bytes) {
  return volumes_.CreateVolume(name, quota_bytes);
}

Status VolumeManager::DeleteVolume(const std::string& name) {
  // Holding the mutex keeps an Acquire from slipping in during the delete.
  std::lock_guard lock(mu_);
  if (holders_.contains(name)) {
    return Status::Busy("volume " + name +
                        " is held by a client; close it first");
  }
  EFS_RETURN_IF_ERROR(volumes_.DeleteVolume(name));
  // A volume created later under the same name starts from zero.
  traffic_.erase(name);
  return Status::Ok();
}

Status VolumeManager::ResizeVolume(const std::string& name,
                                   uint64_t quota_bytes) {
  return volumes_.ResizeVolume(name, quota_bytes);
}

Result<std::vector<protocol::VolumeEntry>> VolumeManager::ListVolumes() const {
  EFS_ASSIGN_OR_RETURN(std::vector<VolumeInfo> infos, volumes_.ListVolumes());
  std::lock_guard lock(mu_);
  std::vector<protocol::VolumeEntry> entries;
  entries.reserve(infos.size());
  for (const VolumeInfo& info : infos) {
    entries.push_back({.name = info.name,
                       .used_bytes = info.used_bytes,
                       .quota_bytes = info.quota_bytes,
                       .block_count = info.block_count,
                       .held = holders_.contains(info.name)});
  }
  return entries;
}

std::shared_ptr<TrafficCounters> VolumeManager::Traffic(
    const std::string& name) {
  std::lock_guard lock(mu_);
  auto& counters = traffic_[name];
  if (!counters) counters = std::make_shared<TrafficCounters>();
  return counters;
}

Result<protocol::VolumeTraffic> VolumeManager::TrafficOf(
    const std::string& name) {
  EFS_RETURN_IF_ERROR(volumes_.GetVolume(name).status());
  std::lock_guard lock(mu_);
  auto it = traffic_.find(name);
  if (it == traffic_.end()) return protocol::VolumeTraffic{};
  return it->second->Snapshot();
}

void TrafficCounters::CountRequest(protocol::Opcode op, uint64_t keys_read,
                                   uint64_t frame_bytes) {
  constexpr auto kRelaxed = std::memory_order_relaxed;
  requests_.fetch_add(1, kRelaxed);
  if (op == protocol::Opcode::kGet) get_requests_.fetch_add(1, kRelaxed);
  if (op == protocol::Opcode::kCommit) commit_requests_.fetch_add(1, kRelaxed);
  keys_read_.fetch_add(keys_read, kRelaxed);
  bytes_received_.fetch_add(frame_bytes, kRelaxed);
}

void TrafficCounters::CountReply(uint64_t frame_bytes) {
  bytes_sent_.fetch_add(frame_bytes, std::memory_order_relaxed);
}

protocol::VolumeTraffic TrafficCounters::Snapshot() const {
  constexpr auto kRelaxed = std::memory_order_relaxed;
  return {.requests = requests_.load(kRelaxed),
          .get_requests = get_requests_.load(kRelaxed),
          .commit_requests = commit_requests_.load(kRelaxed),
          .keys_read = keys_read_.load(kRelaxed),
          .bytes_received = bytes_received_.load(kRelaxed),
          .bytes_sent = bytes_sent_.load(kRelaxed)};
}

}  // namespace enclavefs
