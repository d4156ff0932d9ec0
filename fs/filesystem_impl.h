// Filesystem::Impl: the state and record helpers shared by the two halves of
// the POSIX layer (filesystem.cpp: namespace and metadata; file_io.cpp: file
// contents and xattrs). Private to fs/: nothing outside includes it.
//
// Locking (see fs/filesystem.h): one Volume::Operation per mutating call,
// begun first, then ns_mu (exclusive for namespace changes,
// shared for lookups and directory reads) -> inode lock shards in ascending
// shard index -> count_mu -> the Volume's own lock. Every read-modify-write of
// an inode record holds that inode's shard exclusively; plain reads of a
// record take no inode lock (each Volume::Get is atomic).
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string_view>
#include <vector>

#include "fs/filesystem.h"
#include "fs/inode_codec.h"

namespace enclavefs {

// 2^40 bytes: well past 4 GiB, and block indices stay far from overflow.
inline constexpr uint64_t kMaxFileSize = uint64_t{1} << 40;
inline constexpr uint32_t kMaxLinks = 0xFFFF'FFF0u;
inline constexpr size_t kMaxSymlinkTarget = 4095;  // PATH_MAX - 1
inline constexpr size_t kLockShards = 64;
inline constexpr size_t kScanPage = 1024;  // entries per tree scan

using InodeLocks = std::vector<std::unique_lock<std::shared_mutex>>;

struct Filesystem::Impl {
  Impl(Volume& v, std::shared_ptr<BlockStore> s)
      : volume(v), store(std::move(s)), block_size(v.block_size()) {}

  // Exclusive locks on the shards of `inos` (duplicates allowed).
  InodeLocks LockInodes(std::initializer_list<uint64_t> inos);
  std::shared_lock<std::shared_mutex> ReadLock(uint64_t ino) {
    return std::shared_lock(inode_mu[ino % kLockShards]);
  }

  // NotFound if the inode does not exist; Corruption if undecodable.
  Result<InodeRecord> Load(uint64_t ino);
  // Like Load, plus NotDirectory for a non-directory and NotFound for a
  // directory that was removed (nlink 0) but is still referenced.
  Result<InodeRecord> LoadDir(uint64_t ino);
  Status Store(const InodeRecord& rec);
  // The entry `name` of directory `parent`, nullopt if absent.
  Result<std::optional<DirentValue>> FindEntry(uint64_t parent,
                                               std::string_view name);
  Result<bool> DirIsEmpty(uint64_t dir);
  // Orphans `rec` (nlink just reached 0): the marker lets Open free it after
  // a crash.
  Status MarkOrphan(const InodeRecord& rec);
  // Deletes data blocks, xattrs, the record and the orphan marker.
  Status FreeInode(uint64_t ino);
  Status AdjustInodeCount(int64_t delta);
  // Sets rec.size, dropping blocks past it and zeroing the tail of the last
  // partial block; does not store `rec`. OutOfRange past kMaxFileSize.
  Status Truncate(InodeRecord& rec, uint64_t size);

  // The steps below REQUIRE the namespace lock held exclusively.
  // Adds `rec` (all but ino, parent and times filled in) as `name` in
  // `parent`: AlreadyExists, NotFound/NotDirectory for a bad parent.
  Result<InodeAttr> CreateEntry(uint64_t parent, std::string_view name,
                                InodeRecord rec);
  // Removes `name` (naming `entry`) from `parent` and drops one link of the
  // child (all of them for a directory), orphaning it at zero.
  Status RemoveEntry(uint64_t parent, std::string_view name,
                     const DirentValue& entry);
  // Whether directory `ancestor` is `dir` or contains it, following the
  // parent links of directories.
  Result<bool> IsSelfOrAncestor(uint64_t ancestor, uint64_t dir);

  Volume& volume;
  const std::shared_ptr<BlockStore> store;
  const uint32_t block_size;
  std::shared_mutex ns_mu;
  std::array<std::shared_mutex, kLockShards> inode_mu;
  std::mutex count_mu;  // the live inode count record
};

// The enclave's wall clock.
Timespec Now();

// InvalidArgument for "", ".", "..", or a name with '/' or NUL; NameTooLong
// past kMaxNameSize bytes.
Status CheckName(std::string_view name);

}  // namespace enclavefs
