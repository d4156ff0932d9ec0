#include "blockstore/block_store.h"

#include <unordered_set>

namespace enclavefs {

namespace {

template <typename Puts>
size_t SumPutBytes(const Puts& puts) {
  size_t total = 0;
  for (const auto& [key, value] : puts) total += key.size() + value.size();
  return total;
}

}  // namespace

size_t CommitBatch::PutBytes() const { return SumPutBytes(puts); }

CommitBatchView::CommitBatchView(const CommitBatch& batch)
    : deletes(batch.deletes.begin(), batch.deletes.end()),
      condition(batch.condition),
      durable(batch.durable) {
  puts.reserve(batch.puts.size());
  for (const auto& [key, value] : batch.puts) puts.emplace_back(key, value);
}

size_t CommitBatchView::PutBytes() const { return SumPutBytes(puts); }

Status ValidateKey(std::string_view key) {
  if (key.empty()) return Status::InvalidArgument("empty key");
  if (key.size() > kMaxKeySize) {
    return Status::InvalidArgument("key of " + std::to_string(key.size()) +
                                   " bytes exceeds " +
                                   std::to_string(kMaxKeySize));
  }
  return Status::Ok();
}

Status ValidateBatch(const CommitBatch& batch) {
  return ValidateBatch(CommitBatchView(batch));
}

Status ValidateBatch(const CommitBatchView& batch) {
  std::unordered_set<std::string_view> seen;
  seen.reserve(batch.puts.size() + batch.deletes.size());
  auto check = [&](std::string_view key) -> Status {
    EFS_RETURN_IF_ERROR(ValidateKey(key));
    if (!seen.insert(key).second) {
      return Status::InvalidArgument("key appears twice in one batch");
    }
    return Status::Ok();
  };
  for (const auto& [key, value] : batch.puts) {
    EFS_RETURN_IF_ERROR(check(key));
    if (value.size() > kMaxValueSize) {
      return Status::InvalidArgument(
          "value of " + std::to_string(value.size()) + " bytes exceeds " +
          std::to_string(kMaxValueSize));
    }
  }
  for (const auto& key : batch.deletes) EFS_RETURN_IF_ERROR(check(key));
  if (batch.condition) EFS_RETURN_IF_ERROR(ValidateKey(batch.condition->key));
  return Status::Ok();
}

Result<SharedGetResult> BlockStore::GetShared(
    std::span<const std::string> keys) {
  EFS_ASSIGN_OR_RETURN(GetResult got, Get(keys));
  SharedGetResult out;
  out.reserve(got.size());
  for (auto& value : got) {
    if (!value) {
      out.emplace_back(std::nullopt);
      continue;
    }
    auto owner = std::make_shared<std::string>(std::move(*value));
    std::span<char> bytes(owner->data(), owner->size());
    out.emplace_back(SharedValue{std::move(owner), bytes});
  }
  return out;
}

Result<std::string> BlockStore::GetOne(const std::string& key) {
  EFS_ASSIGN_OR_RETURN(GetResult got,
                       Get(std::span<const std::string>(&key, 1)));
  if (!got[0]) return Status::NotFound("no block under the requested key");
  return std::move(*got[0]);
}

}  // namespace enclavefs
