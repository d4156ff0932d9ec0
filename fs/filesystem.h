// Filesystem: POSIX file and directory semantics on a sealed Volume.
//
// Inodes, directory entries and extended attributes are records in the
// Volume's authenticated tree; file contents are the Volume's data blocks,
// block `i` of inode `ino` holding bytes [i*B, (i+1)*B) for block size
// B = volume().block_size() (also the StatFs block size). Holes
// (never-written blocks) read as zeros and take no space. Nothing here
// knows FUSE: the FUSE layer (enclave-mount/) calls these methods and turns
// their Status into errno in one function. Permission checks are the
// kernel's (default_permissions); this layer enforces structure (ENOTDIR,
// ENOTEMPTY, EISDIR, EEXIST, ...).
//
// Errors: NotFound (ENOENT), AlreadyExists (EEXIST), NotEmpty, IsDirectory,
// NotDirectory, NameTooLong (names over 255 bytes), NoAttribute, OutOfRange,
// InvalidArgument, NotPermitted, NotSupported, TooManyLinks (EMLINK),
// QuotaExceeded (ENOSPC), Corruption (EIO: the host tampered; logged by the
// layer that found it).
//
// Inode lifetime: an inode whose link count drops to 0 stays readable while
// the kernel still knows it; Forget(ino) with no links left frees it. Inodes
// left unlinked by a crash are freed at the next Open.
//
// Thread safety: every method is safe to call concurrently. Operations on
// one inode are serialized by a per-inode lock; namespace changes (create,
// link, unlink, rename) take a filesystem-wide namespace lock first. Every
// mutating operation runs inside one Volume::Operation, begun before any
// lock here. Lock order: Volume::Operation (the Volume's commit gate) ->
// namespace -> inode locks (a table of shards, taken in ascending shard
// order) -> Volume. Taking the Operation first means a thread waiting at the
// gate (behind a pending commit) holds no filesystem lock that an active
// Operation could need, so commits and operations cannot deadlock. Sync
// holds neither an Operation nor a lock. Details in fs/filesystem_impl.h.
//
// Durability: changes reach the host on Volume commits (its timer or dirty
// limit) and on Sync. Every commit holds whole operations only, so a crash
// never persists half of one. Destroying a Filesystem does not commit.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "blockstore/block_store.h"
#include "fs/volume.h"

namespace enclavefs {

inline constexpr uint64_t kRootInode = 1;  // FUSE_ROOT_ID
inline constexpr size_t kMaxNameSize = 255;

struct Timespec {
  int64_t sec = 0;
  int64_t nsec = 0;
};

struct InodeAttr {
  uint64_t ino = 0;
  uint32_t mode = 0;  // file type and permission bits, as st_mode
  uint32_t nlink = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint64_t rdev = 0;
  uint64_t size = 0;
  uint64_t blocks = 0;  // 512-byte units actually stored (holes excluded)
  Timespec atime, mtime, ctime;
};

// Which fields SetAttr changes. Times set to "now" use the enclave clock.
struct SetAttrRequest {
  std::optional<uint32_t> mode;  // permission bits only
  std::optional<uint32_t> uid;
  std::optional<uint32_t> gid;
  std::optional<uint64_t> size;  // truncate up or down
  std::optional<Timespec> atime;
  std::optional<Timespec> mtime;
  bool atime_now = false;
  bool mtime_now = false;
};

struct DirEntry {
  std::string name;
  InodeAttr attr;
  // Opaque, stable position to resume after this entry (> 2). Positions do
  // not shift when other entries are added or removed.
  uint64_t next_offset = 0;
};

struct FsStats {
  uint64_t block_size = 0;
  uint64_t total_blocks = 0;  // from the host quota
  uint64_t free_blocks = 0;
  uint64_t files = 0;
};

// Rename flags, as renameat2(2).
inline constexpr unsigned kRenameNoReplace = 1;
inline constexpr unsigned kRenameExchange = 2;

class Filesystem {
 public:
  // Takes the volume. Creates the root directory (mode 0755, owned by
  // uid/gid) on a fresh volume, and frees orphaned inodes left by a crash.
  static Result<std::unique_ptr<Filesystem>> Open(
      std::unique_ptr<Volume> volume, std::shared_ptr<BlockStore> store,
      uint32_t root_uid, uint32_t root_gid);
  ~Filesystem();

  Result<InodeAttr> Lookup(uint64_t parent, std::string_view name);
  Result<InodeAttr> GetAttr(uint64_t ino);
  Result<InodeAttr> SetAttr(uint64_t ino, const SetAttrRequest& req);

  // Create regular files, fifos, sockets and device nodes (mode has the
  // type bits), directories and symlinks.
  Result<InodeAttr> Mknod(uint64_t parent, std::string_view name, uint32_t mode,
                          uint64_t rdev, uint32_t uid, uint32_t gid);
  Result<InodeAttr> Mkdir(uint64_t parent, std::string_view name, uint32_t mode,
                          uint32_t uid, uint32_t gid);
  Result<InodeAttr> Symlink(uint64_t parent, std::string_view name,
                            std::string_view target, uint32_t uid,
                            uint32_t gid);
  Result<std::string> Readlink(uint64_t ino);
  Result<InodeAttr> Link(uint64_t ino, uint64_t new_parent,
                         std::string_view new_name);
  Status Unlink(uint64_t parent, std::string_view name);
  Status Rmdir(uint64_t parent, std::string_view name);
  Status Rename(uint64_t parent, std::string_view name, uint64_t new_parent,
                std::string_view new_name, unsigned flags);

  // Reads up to `size` bytes at `offset` (short at end of file).
  Result<std::string> Read(uint64_t ino, uint64_t offset, size_t size);
  // The same bytes as Read, as one DataSlice per block touched, sharing the
  // cached plaintext instead of copying it (fs/volume.h).
  Result<std::vector<DataSlice>> ReadSlices(uint64_t ino, uint64_t offset,
                                            size_t size);
  // Writes `data` at `offset`, growing the file as needed. Returns bytes
  // written. OutOfRange past the maximum file size.
  Result<size_t> Write(uint64_t ino, uint64_t offset, std::string_view data);
  // mode 0 (allocate, extend size) and FALLOC_FL_KEEP_SIZE; others
  // NotSupported.
  Status Fallocate(uint64_t ino, int mode, uint64_t offset, uint64_t length);

  // Entries of directory `ino` after position `offset` (0 = start; "." and
  // ".." are the caller's), at most `limit`.
  Result<std::vector<DirEntry>> ReadDir(uint64_t ino, uint64_t offset,
                                        size_t limit);

  // flags: 0, XATTR_CREATE or XATTR_REPLACE.
  Status SetXattr(uint64_t ino, std::string_view name, std::string_view value,
                  int flags);
  Result<std::string> GetXattr(uint64_t ino, std::string_view name);
  Result<std::vector<std::string>> ListXattr(uint64_t ino);
  Status RemoveXattr(uint64_t ino, std::string_view name);

  // The kernel dropped its last reference to `ino`: free it if unlinked.
  Status Forget(uint64_t ino);

  // Commits everything; durable when it returns OK.
  Status Sync();
  Result<FsStats> StatFs();

  Volume& volume() { return *volume_; }

 private:
  // Unlink (directory = false) and Rmdir (directory = true).
  Status RemoveName(uint64_t parent, std::string_view name, bool directory);
  // Record helpers and locks, shared by filesystem.cpp and file_io.cpp.
  struct Impl;
  explicit Filesystem(std::unique_ptr<Impl> impl, std::unique_ptr<Volume> v);
  std::unique_ptr<Impl> impl_;
  std::unique_ptr<Volume> volume_;
};

}  // namespace enclavefs
