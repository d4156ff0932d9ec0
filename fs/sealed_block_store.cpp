#include "fs/sealed_block_store.h"

#include <utility>

namespace enclavefs {
namespace {

// A racing writer may change the value between our read and the inner
// commit; retry a few times before reporting Conflict.
constexpr int kConditionAttempts = 8;

}  // namespace

SealedBlockStore::SealedBlockStore(std::unique_ptr<BlockStore> inner,
                                   std::unique_ptr<Sealer> sealer)
    : inner_(std::move(inner)), sealer_(std::move(sealer)) {}

Result<GetResult> SealedBlockStore::Get(std::span<const std::string> keys) {
  EFS_ASSIGN_OR_RETURN(GetResult values, inner_->Get(keys));
  for (size_t i = 0; i < values.size(); ++i) {
    if (!values[i]) continue;
    EFS_ASSIGN_OR_RETURN(*values[i], sealer_->Open(BlockKind::kOpaque, keys[i],
                                                   std::move(*values[i])));
  }
  return values;
}

Result<CommitCondition> SealedBlockStore::SealedCondition(
    const CommitCondition& plain) {
  EFS_ASSIGN_OR_RETURN(GetResult current, inner_->Get({&plain.key, 1}));
  CommitCondition sealed{plain.key, std::move(current[0])};
  std::optional<std::string> current_plain;
  if (sealed.expected) {
    EFS_ASSIGN_OR_RETURN(
        current_plain,
        sealer_->Open(BlockKind::kOpaque, plain.key, *sealed.expected));
  }
  if (current_plain != plain.expected) {
    return Status::Conflict("condition on key does not hold");
  }
  return sealed;
}

Status SealedBlockStore::Commit(const CommitBatch& batch) {
  EFS_RETURN_IF_ERROR(ValidateBatch(batch));
  CommitBatch sealed;
  sealed.deletes = batch.deletes;
  sealed.durable = batch.durable;
  sealed.puts.reserve(batch.puts.size());
  for (const auto& [key, value] : batch.puts) {
    EFS_ASSIGN_OR_RETURN(SealedBlock block,
                         sealer_->Seal(BlockKind::kOpaque, key, value));
    sealed.puts.emplace_back(key, std::move(block.bytes));
  }
  if (!batch.condition) return inner_->Commit(sealed);
  for (int attempt = 1;; ++attempt) {
    EFS_ASSIGN_OR_RETURN(sealed.condition, SealedCondition(*batch.condition));
    Status s = inner_->Commit(sealed);
    if (s.code() != StatusCode::kConflict || attempt == kConditionAttempts) {
      return s;
    }
  }
}

Result<StoreStats> SealedBlockStore::Stat() { return inner_->Stat(); }

Status SealedBlockStore::RestoreConnection() {
  return inner_->RestoreConnection();
}

Result<KeyPage> SealedBlockStore::ListKeys(std::string_view start_after,
                                           size_t limit) {
  return inner_->ListKeys(start_after, limit);
}

}  // namespace enclavefs
