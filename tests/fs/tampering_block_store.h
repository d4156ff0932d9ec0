// TamperingBlockStore: a test-only BlockStore playing a malicious host.
//
// Wraps an InMemoryBlockStore, passes every call through, counts Gets (calls
// and keys) and records every version ever committed per key. The attack
// methods change the stored blocks behind the client's back: flip a bit,
// truncate, swap two keys, replay an older version, delete, roll everything
// back to a snapshot, or implant a block taken from another volume's store.
//
// Thread safety: safe for concurrent use (the inner store has its own lock;
// the history and counters have one here).
#pragma once

#include <atomic>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "blockstore/in_memory_block_store.h"

namespace enclavefs::testing {

class TamperingBlockStore : public BlockStore {
 public:
  TamperingBlockStore() = default;
  // A store that refuses growth past `quota_bytes` (0: none), as the host.
  explicit TamperingBlockStore(uint64_t quota_bytes) : inner_(quota_bytes) {}

  Result<GetResult> Get(std::span<const std::string> keys) override {
    {
      std::lock_guard lock(mu_);
      ++get_calls_;
      get_keys_ += keys.size();
      get_batch_sizes_.push_back(keys.size());
    }
    return inner_.Get(keys);
  }

  Status Commit(const CommitBatch& batch) override {
    std::function<void(const CommitBatch&)> before;
    {
      std::lock_guard lock(mu_);
      ++commit_calls_;
      if (!commit_failure_.ok()) return commit_failure_;
      before = before_commit_;
    }
    if (before) before(batch);
    if (auto unreachable = Unreachable()) return unreachable();
    if (refuse_growth_ && Growth(batch) > 0) {
      return Status::QuotaExceeded("the volume is full to the last byte");
    }
    Status s = inner_.Commit(batch);
    if (s.ok()) {
      std::lock_guard lock(mu_);
      for (const auto& [key, value] : batch.puts)
        versions_[key].push_back(value);
    }
    return s;
  }

  Result<StoreStats> Stat() override { return inner_.Stat(); }
  Status RestoreConnection() override {
    auto unreachable = Unreachable();
    return unreachable ? unreachable() : Status::Ok();
  }
  Result<KeyPage> ListKeys(std::string_view start_after,
                           size_t limit) override {
    return inner_.ListKeys(start_after, limit);
  }

  // ---- counters ----
  size_t get_calls() const {
    std::lock_guard lock(mu_);
    return get_calls_;
  }
  size_t get_keys() const {
    std::lock_guard lock(mu_);
    return get_keys_;
  }
  std::vector<size_t> get_batch_sizes() const {
    std::lock_guard lock(mu_);
    return get_batch_sizes_;
  }
  size_t commit_calls() const {
    std::lock_guard lock(mu_);
    return commit_calls_;
  }
  void ResetCounters() {
    std::lock_guard lock(mu_);
    get_calls_ = get_keys_ = 0;
    get_batch_sizes_.clear();
  }

  // ---- inspection ----
  std::optional<std::string> Peek(const std::string& key) {
    auto got = inner_.Get(std::span<const std::string>(&key, 1));
    return got.ok() ? (*got)[0] : std::nullopt;
  }
  // Every version of `key` ever committed, oldest first.
  std::vector<std::string> Versions(const std::string& key) const {
    std::lock_guard lock(mu_);
    auto it = versions_.find(key);
    return it == versions_.end() ? std::vector<std::string>() : it->second;
  }
  // Every key ever committed, including deleted ones.
  std::vector<std::string> HistoricKeys() const {
    std::lock_guard lock(mu_);
    std::vector<std::string> out;
    for (const auto& [key, versions] : versions_) out.push_back(key);
    return out;
  }
  // Current keys whose (key, value) satisfy `pred`.
  std::vector<std::string> KeysWhere(
      const std::function<bool(const std::string&, const std::string&)>& pred)
      const {
    std::vector<std::string> out;
    for (const auto& [key, value] : inner_.Snapshot()) {
      if (pred(key, value)) out.push_back(key);
    }
    return out;
  }
  std::map<std::string, std::string> Snapshot() const {
    return inner_.Snapshot();
  }

  // ---- attacks ----
  // Every later Commit fails with `failure` and stores nothing, as a host
  // does once it has fenced the client.
  void FailCommits(Status failure) {
    std::lock_guard lock(mu_);
    commit_failure_ = std::move(failure);
  }
  // While `reach` is set, the connection is lost: RestoreConnection and
  // Commit return what it returns, and Commit stores nothing; it may block
  // first, as a client's reconnect does. nullptr: reachable again.
  void SetUnreachable(std::function<Status()> reach) {
    std::lock_guard lock(mu_);
    unreachable_ = std::move(reach);
  }
  // Runs `hook` at the start of every Commit, without the store's lock; it
  // may block, as a slow host does. nullptr: none.
  void SetBeforeCommit(std::function<void(const CommitBatch&)> hook) {
    std::lock_guard lock(mu_);
    before_commit_ = std::move(hook);
  }
  // Every later Commit that would raise the stored bytes fails with
  // QuotaExceeded, as at a quota reached to the last byte; the host judges
  // a batch by its net growth.
  void RefuseGrowth() { refuse_growth_ = true; }
  void FlipBit(const std::string& key, size_t bit) {
    std::string value = *Peek(key);
    value[(bit / 8) % value.size()] ^= static_cast<char>(1u << (bit % 8));
    Set(key, value);
  }
  void Truncate(const std::string& key, size_t size) {
    Set(key, Peek(key)->substr(0, size));
  }
  void Swap(const std::string& a, const std::string& b) {
    std::string va = *Peek(a), vb = *Peek(b);
    Set(a, vb);
    Set(b, va);
  }
  // Puts back version `version` (0 = oldest) of `key`.
  void Replay(const std::string& key, size_t version) {
    Set(key, Versions(key).at(version));
  }
  void Remove(const std::string& key) {
    CommitBatch batch;
    batch.deletes.push_back(key);
    (void)inner_.Commit(batch);
  }
  void RollBack(std::map<std::string, std::string> snapshot) {
    inner_.Restore(std::move(snapshot));
  }
  // Stores a block (e.g. copied from another volume) under `key`.
  void Implant(const std::string& key, const std::string& value) {
    Set(key, value);
  }

 private:
  // The hook of SetUnreachable, copied so that it runs without mu_.
  std::function<Status()> Unreachable() const {
    std::lock_guard lock(mu_);
    return unreachable_;
  }

  int64_t Growth(const CommitBatch& batch) {
    int64_t growth = 0;
    for (const auto& [key, value] : batch.puts) {
      const std::optional<std::string> old = Peek(key);
      growth += static_cast<int64_t>(value.size()) -
                (old ? static_cast<int64_t>(old->size())
                     : -static_cast<int64_t>(key.size()));
    }
    for (const std::string& key : batch.deletes) {
      if (std::optional<std::string> old = Peek(key)) {
        growth -= static_cast<int64_t>(key.size() + old->size());
      }
    }
    return growth;
  }

  void Set(const std::string& key, const std::string& value) {
    CommitBatch batch;
    batch.puts.emplace_back(key, value);
    (void)inner_.Commit(batch);
  }

  InMemoryBlockStore inner_;
  mutable std::mutex mu_;
  size_t get_calls_ = 0;
  size_t get_keys_ = 0;
  size_t commit_calls_ = 0;
  Status commit_failure_;
  std::function<Status()> unreachable_;
  std::function<void(const CommitBatch&)> before_commit_;
  std::atomic<bool> refuse_growth_{false};
  std::vector<size_t> get_batch_sizes_;
  std::map<std::string, std::vector<std::string>> versions_;
};

}  // namespace enclavefs::testing
