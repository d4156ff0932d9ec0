// Record and lock helpers of Filesystem::Impl (fs/filesystem_impl.h).
#include "fs/filesystem_impl.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <ctime>

namespace enclavefs {

Timespec Now() {
  struct timespec ts {};
  clock_gettime(CLOCK_REALTIME, &ts);
  return Timespec{ts.tv_sec, ts.tv_nsec};
}

Status CheckName(std::string_view name) {
  if (name.empty() || name == "." || name == "..") {
    return Status::InvalidArgument("invalid file name");
  }
  if (name.size() > kMaxNameSize) {
    return Status::NameTooLong("file name longer than 255 bytes");
  }
  if (name.find_first_of(std::string_view("/\0", 2)) !=
      std::string_view::npos) {
    return Status::InvalidArgument("file name contains '/' or NUL");
  }
  return Status::Ok();
}

InodeLocks Filesystem::Impl::LockInodes(std::initializer_list<uint64_t> inos) {
  std::vector<size_t> shards;
  for (uint64_t ino : inos) shards.push_back(ino % kLockShards);
  std::sort(shards.begin(), shards.end());
  shards.erase(std::unique(shards.begin(), shards.end()), shards.end());
  InodeLocks locks;
  for (size_t shard : shards) locks.emplace_back(inode_mu[shard]);
  return locks;
}

Result<InodeRecord> Filesystem::Impl::Load(uint64_t ino) {
  EFS_ASSIGN_OR_RETURN(std::optional<std::string> bytes,
                       volume.Get(InodeKey(ino)));
  if (!bytes) return Status::NotFound("no inode " + std::to_string(ino));
  Result<InodeRecord> rec = InodeRecord::Decode(ino, *bytes);
  if (!rec.ok()) spdlog::error("fs: {}", rec.status().message());
  return rec;
}

Result<InodeRecord> Filesystem::Impl::LoadDir(uint64_t ino) {
  EFS_ASSIGN_OR_RETURN(InodeRecord rec, Load(ino));
  if (!rec.is_dir()) {
    return Status::NotDirectory("inode " + std::to_string(ino) +
                                " is not a directory");
  }
  if (rec.nlink == 0) return Status::NotFound("directory was removed");
  return rec;
}

Status Filesystem::Impl::Store(const InodeRecord& rec) {
  return volume.Put(InodeKey(rec.ino), rec.Encode());
}

Result<std::optional<DirentValue>> Filesystem::Impl::FindEntry(
    uint64_t parent, std::string_view name) {
  // The full key names exactly one entry, so a point lookup replaces a scan
  // of the (parent, hash) prefix.
  EFS_ASSIGN_OR_RETURN(std::optional<std::string> bytes,
                       volume.Get(DirentKey(parent, name)));
  if (!bytes) return std::optional<DirentValue>();
  EFS_ASSIGN_OR_RETURN(DirentValue value, DirentValue::Decode(*bytes));
  return std::optional<DirentValue>(value);
}

Result<bool> Filesystem::Impl::DirIsEmpty(uint64_t dir) {
  const std::string prefix = DirPrefix(dir);
  EFS_ASSIGN_OR_RETURN(auto entries, volume.Scan(prefix, PrefixEnd(prefix), 1));
  return entries.empty();
}

Status Filesystem::Impl::MarkOrphan(const InodeRecord& rec) {
  return volume.Put(OrphanKey(rec.ino), "");
}

Status Filesystem::Impl::FreeInode(uint64_t ino) {
  EFS_RETURN_IF_ERROR(volume.DeleteData(ino, 0));
  const std::string prefix = XattrPrefix(ino);
  const std::string end = PrefixEnd(prefix);
  while (true) {
    EFS_ASSIGN_OR_RETURN(auto xattrs, volume.Scan(prefix, end, kScanPage));
    if (xattrs.empty()) break;
    for (const auto& entry : xattrs) {
      EFS_RETURN_IF_ERROR(volume.Delete(entry.first));
    }
  }
  EFS_ASSIGN_OR_RETURN(std::optional<std::string> record,
                       volume.Get(InodeKey(ino)));
  EFS_RETURN_IF_ERROR(volume.Delete(InodeKey(ino)));
  EFS_RETURN_IF_ERROR(volume.Delete(OrphanKey(ino)));
  return record ? AdjustInodeCount(-1) : Status::Ok();
}

Status Filesystem::Impl::AdjustInodeCount(int64_t delta) {
  std::lock_guard lock(count_mu);
  EFS_ASSIGN_OR_RETURN(std::optional<std::string> bytes,
                       volume.Get(InodeCountKey()));
  uint64_t count = 0;
  if (bytes) {
    EFS_ASSIGN_OR_RETURN(count, DecodeU64Le(*bytes));
  }
  count =
      delta < 0 && count < static_cast<uint64_t>(-delta) ? 0 : count + delta;
  return volume.Put(InodeCountKey(), EncodeU64Le(count));
}

}  // namespace enclavefs
