#include "blockstore/in_memory_block_store.h"

namespace enclavefs {

InMemoryBlockStore::InMemoryBlockStore(uint64_t quota_bytes)
    : quota_bytes_(quota_bytes) {}

Result<GetResult> InMemoryBlockStore::Get(std::span<const std::string> keys) {
  for (const auto& key : keys) EFS_RETURN_IF_ERROR(ValidateKey(key));
  std::lock_guard lock(mu_);
  GetResult out;
  out.reserve(keys.size());
  for (const auto& key : keys) {
    auto it = blocks_.find(key);
    if (it == blocks_.end()) {
      out.emplace_back(std::nullopt);
    } else {
      out.emplace_back(it->second);
    }
  }
  return out;
}

Status InMemoryBlockStore::Commit(const CommitBatch& batch) {
  EFS_RETURN_IF_ERROR(ValidateBatch(batch));
  std::lock_guard lock(mu_);
  if (batch.condition) {
    auto it = blocks_.find(batch.condition->key);
    std::optional<std::string_view> current;
    if (it != blocks_.end()) current = it->second;
    const auto& expected = batch.condition->expected;
    if (current.has_value() != expected.has_value() ||
        (current && *current != *expected)) {
      return Status::Conflict("condition key does not hold the expected value");
    }
  }
  int64_t delta = 0;
  for (const auto& [key, value] : batch.puts) {
    auto it = blocks_.find(key);
    delta += static_cast<int64_t>(value.size());
    delta -= it == blocks_.end() ? -static_cast<int64_t>(key.size())
                                 : static_cast<int64_t>(it->second.size());
  }
  for (const auto& key : batch.deletes) {
    auto it = blocks_.find(key);
    if (it != blocks_.end()) {
      delta -= static_cast<int64_t>(key.size() + it->second.size());
    }
  }
  const uint64_t new_used = used_bytes_ + delta;
  if (quota_bytes_ != 0 && delta > 0 && new_used > quota_bytes_) {
    return Status::QuotaExceeded("commit needs " + std::to_string(new_used) +
                                 " bytes, quota is " +
                                 std::to_string(quota_bytes_));
  }
  for (const auto& [key, value] : batch.puts) blocks_[key] = value;
  for (const auto& key : batch.deletes) {
    auto it = blocks_.find(key);
    if (it != blocks_.end()) blocks_.erase(it);
  }
  used_bytes_ = new_used;
  return Status::Ok();
}

Result<StoreStats> InMemoryBlockStore::Stat() {
  std::lock_guard lock(mu_);
  return StoreStats{used_bytes_, blocks_.size(), quota_bytes_};
}

Result<KeyPage> InMemoryBlockStore::ListKeys(std::string_view start_after,
                                             size_t limit) {
  if (limit == 0) return Status::InvalidArgument("limit must be at least 1");
  std::lock_guard lock(mu_);
  KeyPage page;
  auto it = blocks_.upper_bound(start_after);
  for (; it != blocks_.end() && page.keys.size() < limit; ++it) {
    page.keys.push_back(it->first);
  }
  page.more = it != blocks_.end();
  return page;
}

std::map<std::string, std::string> InMemoryBlockStore::Snapshot() const {
  std::lock_guard lock(mu_);
  return {blocks_.begin(), blocks_.end()};
}

void InMemoryBlockStore::Restore(std::map<std::string, std::string> blocks) {
  std::lock_guard lock(mu_);
  blocks_ = {blocks.begin(), blocks.end()};
  used_bytes_ = 0;
  for (const auto& [key, value] : blocks_)
    used_bytes_ += key.size() + value.size();
}

}  // namespace enclavefs
