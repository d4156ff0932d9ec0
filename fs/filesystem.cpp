#include "fs/filesystem.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <algorithm>

#include "fs/filesystem_impl.h"

namespace enclavefs {
namespace {

// A huge total when the host sets no quota: 2^60 bytes.
constexpr uint64_t kUnlimitedBytes = uint64_t{1} << 60;

bool IsDirType(uint32_t mode) { return S_ISDIR(mode); }

void Touch(InodeRecord& dir, const Timespec& now) {
  dir.mtime = now;
  dir.ctime = now;
}

}  // namespace

// ---- lifetime ----

Filesystem::Filesystem(std::unique_ptr<Impl> impl, std::unique_ptr<Volume> v)
    : impl_(std::move(impl)), volume_(std::move(v)) {}

Filesystem::~Filesystem() = default;

Result<std::unique_ptr<Filesystem>> Filesystem::Open(
    std::unique_ptr<Volume> volume, std::shared_ptr<BlockStore> store,
    uint32_t root_uid, uint32_t root_gid) {
  if (!volume || !store) return Status::InvalidArgument("no volume or store");
  auto impl = std::make_unique<Impl>(*volume, std::move(store));
  Result<InodeRecord> root = impl->Load(kRootInode);
  if (root.status().code() == StatusCode::kNotFound) {
    // Fresh volume: consume id 1 so NextId never hands out the root's.
    EFS_RETURN_IF_ERROR(volume->NextId().status());
    InodeRecord rec;
    rec.ino = kRootInode;
    rec.mode = S_IFDIR | 0755;
    rec.nlink = 2;
    rec.uid = root_uid;
    rec.gid = root_gid;
    rec.parent = kRootInode;
    rec.atime = rec.mtime = rec.ctime = Now();
    {
      Volume::Operation op = volume->BeginOperation();
      EFS_RETURN_IF_ERROR(impl->Store(rec));
      EFS_RETURN_IF_ERROR(impl->AdjustInodeCount(1));
    }
    EFS_RETURN_IF_ERROR(volume->Commit(true));
  } else if (!root.ok()) {
    return root.status();
  } else if (!root->is_dir()) {
    return Status::Corruption("root inode is not a directory");
  }

  // Inodes unlinked while open when the last mount ended.
  const std::string prefix = OrphanKey(0).substr(0, 1);
  const std::string end = PrefixEnd(prefix);
  uint64_t freed = 0;
  while (true) {
    EFS_ASSIGN_OR_RETURN(auto orphans, volume->Scan(prefix, end, kScanPage));
    if (orphans.empty()) break;
    for (const auto& entry : orphans) {
      Volume::Operation op = volume->BeginOperation();
      EFS_RETURN_IF_ERROR(impl->FreeInode(KeyInode(entry.first)));
      ++freed;
    }
  }
  if (freed > 0) spdlog::info("fs: freed {} orphaned inodes", freed);
  return std::unique_ptr<Filesystem>(
      new Filesystem(std::move(impl), std::move(volume)));
}

// ---- attributes ----

Result<InodeAttr> Filesystem::Lookup(uint64_t parent, std::string_view name) {
  EFS_RETURN_IF_ERROR(CheckName(name));
  std::shared_lock ns(impl_->ns_mu);
  EFS_RETURN_IF_ERROR(impl_->LoadDir(parent).status());
  EFS_ASSIGN_OR_RETURN(std::optional<DirentValue> entry,
                       impl_->FindEntry(parent, name));
  if (!entry) return Status::NotFound("no such entry");
  EFS_ASSIGN_OR_RETURN(InodeRecord child, impl_->Load(entry->ino));
  return child.ToAttr(impl_->block_size);
}

Result<InodeAttr> Filesystem::GetAttr(uint64_t ino) {
  EFS_ASSIGN_OR_RETURN(InodeRecord rec, impl_->Load(ino));
  return rec.ToAttr(impl_->block_size);
}

Result<InodeAttr> Filesystem::SetAttr(uint64_t ino, const SetAttrRequest& req) {
  Volume::Operation op = volume_->BeginOperation();
  InodeLocks locks = impl_->LockInodes({ino});
  EFS_ASSIGN_OR_RETURN(InodeRecord rec, impl_->Load(ino));
  const Timespec now = Now();
  if (req.size) {
    if (rec.is_dir()) return Status::IsDirectory("cannot truncate a directory");
    if (!rec.is_regular()) return Status::InvalidArgument("not a regular file");
    EFS_RETURN_IF_ERROR(impl_->Truncate(rec, *req.size));
    rec.mtime = now;
  }
  if (req.mode) rec.mode = (rec.mode & S_IFMT) | (*req.mode & 07777);
  if (req.uid) rec.uid = *req.uid;
  if (req.gid) rec.gid = *req.gid;
  if (req.atime_now) {
    rec.atime = now;
  } else if (req.atime) {
    rec.atime = *req.atime;
  }
  if (req.mtime_now) {
    rec.mtime = now;
  } else if (req.mtime) {
    rec.mtime = *req.mtime;
  }
  rec.ctime = now;
  EFS_RETURN_IF_ERROR(impl_->Store(rec));
  return rec.ToAttr(impl_->block_size);
}

// ---- creating names ----

Result<InodeAttr> Filesystem::Impl::CreateEntry(uint64_t parent,
                                                std::string_view name,
                                                InodeRecord rec) {
  InodeLocks locks = LockInodes({parent});
  EFS_ASSIGN_OR_RETURN(InodeRecord dir, LoadDir(parent));
  EFS_ASSIGN_OR_RETURN(std::optional<DirentValue> existing,
                       FindEntry(parent, name));
  if (existing) return Status::AlreadyExists("name exists");
  if (rec.is_dir() && dir.nlink >= kMaxLinks) {
    return Status::TooManyLinks("too many subdirectories");
  }
  // Nobody else knows the new inode yet, so it needs no lock.
  EFS_ASSIGN_OR_RETURN(rec.ino, volume.NextId());
  const Timespec now = Now();
  rec.atime = rec.mtime = rec.ctime = now;
  if (rec.is_dir()) rec.parent = parent;
  // Record before entry: a crash in between leaks an inode but never leaves
  // an entry pointing nowhere.
  EFS_RETURN_IF_ERROR(Store(rec));
  EFS_RETURN_IF_ERROR(AdjustInodeCount(1));
  EFS_RETURN_IF_ERROR(
      volume.Put(DirentKey(parent, name),
                 DirentValue{rec.ino, rec.mode & S_IFMT}.Encode()));
  if (rec.is_dir()) ++dir.nlink;
  Touch(dir, now);
  EFS_RETURN_IF_ERROR(Store(dir));
  return rec.ToAttr(block_size);
}

Result<InodeAttr> Filesystem::Mknod(uint64_t parent, std::string_view name,
                                    uint32_t mode, uint64_t rdev, uint32_t uid,
                                    uint32_t gid) {
  EFS_RETURN_IF_ERROR(CheckName(name));
  uint32_t type = mode & S_IFMT;
  if (type == 0) type = S_IFREG;
  if (type != S_IFREG && type != S_IFIFO && type != S_IFSOCK &&
      type != S_IFCHR && type != S_IFBLK) {
    return Status::InvalidArgument("mknod cannot create this file type");
  }
  InodeRecord rec;
  rec.mode = type | (mode & 07777);
  rec.nlink = 1;
  rec.uid = uid;
  rec.gid = gid;
  rec.rdev = (type == S_IFCHR || type == S_IFBLK) ? rdev : 0;
  Volume::Operation op = volume_->BeginOperation();
  std::unique_lock ns(impl_->ns_mu);
  return impl_->CreateEntry(parent, name, std::move(rec));
}

Result<InodeAttr> Filesystem::Mkdir(uint64_t parent, std::string_view name,
                                    uint32_t mode, uint32_t uid, uint32_t gid) {
  EFS_RETURN_IF_ERROR(CheckName(name));
  InodeRecord rec;
  rec.mode = S_IFDIR | (mode & 07777);
  rec.nlink = 2;
  rec.uid = uid;
  rec.gid = gid;
  Volume::Operation op = volume_->BeginOperation();
  std::unique_lock ns(impl_->ns_mu);
  return impl_->CreateEntry(parent, name, std::move(rec));
}

Result<InodeAttr> Filesystem::Symlink(uint64_t parent, std::string_view name,
                                      std::string_view target, uint32_t uid,
                                      uint32_t gid) {
  EFS_RETURN_IF_ERROR(CheckName(name));
  if (target.empty()) return Status::InvalidArgument("empty symlink target");
  // The target lives inline in the record, which must fit one tree value.
  const size_t room =
      volume_->max_value_size() > 128 ? volume_->max_value_size() - 128 : 0;
  if (target.size() > std::min(kMaxSymlinkTarget, room)) {
    return Status::NameTooLong("symlink target too long");
  }
  InodeRecord rec;
  rec.mode = S_IFLNK | 0777;
  rec.nlink = 1;
  rec.uid = uid;
  rec.gid = gid;
  rec.size = target.size();
  rec.symlink_target = std::string(target);
  Volume::Operation op = volume_->BeginOperation();
  std::unique_lock ns(impl_->ns_mu);
  return impl_->CreateEntry(parent, name, std::move(rec));
}

Result<std::string> Filesystem::Readlink(uint64_t ino) {
  EFS_ASSIGN_OR_RETURN(InodeRecord rec, impl_->Load(ino));
  if (!rec.is_symlink()) return Status::InvalidArgument("not a symlink");
  return rec.symlink_target;
}

Result<InodeAttr> Filesystem::Link(uint64_t ino, uint64_t new_parent,
                                   std::string_view new_name) {
  EFS_RETURN_IF_ERROR(CheckName(new_name));
  Volume::Operation op = volume_->BeginOperation();
  std::unique_lock ns(impl_->ns_mu);
  InodeLocks locks = impl_->LockInodes({ino, new_parent});
  EFS_ASSIGN_OR_RETURN(InodeRecord rec, impl_->Load(ino));
  if (rec.is_dir()) return Status::NotPermitted("cannot hard-link a directory");
  if (rec.nlink == 0) return Status::NotFound("file was unlinked");
  if (rec.nlink >= kMaxLinks) return Status::TooManyLinks("too many links");
  EFS_ASSIGN_OR_RETURN(InodeRecord dir, impl_->LoadDir(new_parent));
  EFS_ASSIGN_OR_RETURN(std::optional<DirentValue> existing,
                       impl_->FindEntry(new_parent, new_name));
  if (existing) return Status::AlreadyExists("name exists");
  const Timespec now = Now();
  ++rec.nlink;
  rec.ctime = now;
  EFS_RETURN_IF_ERROR(impl_->Store(rec));
  EFS_RETURN_IF_ERROR(
      volume_->Put(DirentKey(new_parent, new_name),
                   DirentValue{ino, rec.mode & S_IFMT}.Encode()));
  Touch(dir, now);
  EFS_RETURN_IF_ERROR(impl_->Store(dir));
  return rec.ToAttr(impl_->block_size);
}

// ---- removing names ----

Status Filesystem::Impl::RemoveEntry(uint64_t parent, std::string_view name,
                                     const DirentValue& entry) {
  InodeLocks locks = LockInodes({parent, entry.ino});
  EFS_ASSIGN_OR_RETURN(InodeRecord dir, LoadDir(parent));
  EFS_ASSIGN_OR_RETURN(InodeRecord child, Load(entry.ino));
  const Timespec now = Now();
  // Entry first: a crash before the link count drops leaks the inode rather
  // than leaving an entry to a freed one.
  EFS_RETURN_IF_ERROR(volume.Delete(DirentKey(parent, name)));
  if (child.is_dir()) {
    child.nlink = 0;
    --dir.nlink;
  } else if (child.nlink > 0) {
    --child.nlink;
  }
  child.ctime = now;
  if (child.nlink == 0) EFS_RETURN_IF_ERROR(MarkOrphan(child));
  EFS_RETURN_IF_ERROR(Store(child));
  Touch(dir, now);
  return Store(dir);
}

Status Filesystem::Unlink(uint64_t parent, std::string_view name) {
  return RemoveName(parent, name, /*directory=*/false);
}

Status Filesystem::Rmdir(uint64_t parent, std::string_view name) {
  return RemoveName(parent, name, /*directory=*/true);
}

Status Filesystem::RemoveName(uint64_t parent, std::string_view name,
                              bool directory) {
  EFS_RETURN_IF_ERROR(CheckName(name));
  Volume::Operation op = volume_->BeginOperation();
  std::unique_lock ns(impl_->ns_mu);
  EFS_RETURN_IF_ERROR(impl_->LoadDir(parent).status());
  EFS_ASSIGN_OR_RETURN(std::optional<DirentValue> entry,
                       impl_->FindEntry(parent, name));
  if (!entry) return Status::NotFound("no such entry");
  if (directory) {
    if (!IsDirType(entry->type)) return Status::NotDirectory("not a directory");
    EFS_ASSIGN_OR_RETURN(bool empty, impl_->DirIsEmpty(entry->ino));
    if (!empty) return Status::NotEmpty("directory not empty");
  } else if (IsDirType(entry->type)) {
    return Status::IsDirectory("is a directory");
  }
  return impl_->RemoveEntry(parent, name, *entry);
}

Result<bool> Filesystem::Impl::IsSelfOrAncestor(uint64_t ancestor,
                                                uint64_t dir) {
  for (uint64_t cur = dir;;) {
    if (cur == ancestor) return true;
    if (cur == kRootInode) return false;
    EFS_ASSIGN_OR_RETURN(InodeRecord rec, Load(cur));
    if (rec.parent == cur) return false;
    cur = rec.parent;
  }
}

Status Filesystem::Rename(uint64_t parent, std::string_view name,
                          uint64_t new_parent, std::string_view new_name,
                          unsigned flags) {
  const bool exchange = flags & kRenameExchange;
  if ((flags & ~(kRenameNoReplace | kRenameExchange)) != 0 ||
      (exchange && (flags & kRenameNoReplace))) {
    return Status::InvalidArgument("unsupported rename flags");
  }
  EFS_RETURN_IF_ERROR(CheckName(name));
  EFS_RETURN_IF_ERROR(CheckName(new_name));
  Impl& impl = *impl_;
  Volume::Operation op = volume_->BeginOperation();
  std::unique_lock ns(impl.ns_mu);
  EFS_RETURN_IF_ERROR(impl.LoadDir(parent).status());
  EFS_RETURN_IF_ERROR(impl.LoadDir(new_parent).status());
  EFS_ASSIGN_OR_RETURN(std::optional<DirentValue> src,
                       impl.FindEntry(parent, name));
  if (!src) return Status::NotFound("no such entry");
  if (parent == new_parent && name == new_name) return Status::Ok();
  EFS_ASSIGN_OR_RETURN(std::optional<DirentValue> dst,
                       impl.FindEntry(new_parent, new_name));
  if (exchange && !dst) return Status::NotFound("exchange target missing");
  if (dst && (flags & kRenameNoReplace)) {
    return Status::AlreadyExists("target exists");
  }
  // Two names of one file: POSIX says do nothing.
  if (dst && dst->ino == src->ino) return Status::Ok();
  const bool src_dir = IsDirType(src->type);
  const bool dst_dir = dst && IsDirType(dst->type);
  if (dst && !exchange) {
    if (src_dir && !dst_dir) return Status::NotDirectory("target not a dir");
    if (!src_dir && dst_dir) return Status::IsDirectory("target is a dir");
    if (dst_dir) {
      EFS_ASSIGN_OR_RETURN(bool empty, impl.DirIsEmpty(dst->ino));
      if (!empty) return Status::NotEmpty("target directory not empty");
    }
  }
  const bool moves = parent != new_parent;
  if (moves && src_dir) {
    EFS_ASSIGN_OR_RETURN(bool loop,
                         impl.IsSelfOrAncestor(src->ino, new_parent));
    if (loop) return Status::InvalidArgument("cannot move a dir into itself");
  }
  if (moves && exchange && dst_dir) {
    EFS_ASSIGN_OR_RETURN(bool loop, impl.IsSelfOrAncestor(dst->ino, parent));
    if (loop) return Status::InvalidArgument("cannot move a dir into itself");
  }

  InodeLocks locks = impl.LockInodes(
      {parent, new_parent, src->ino, dst ? dst->ino : src->ino});
  EFS_ASSIGN_OR_RETURN(InodeRecord from_dir, impl.Load(parent));
  InodeRecord to_dir_storage;
  if (moves) {
    EFS_ASSIGN_OR_RETURN(to_dir_storage, impl.Load(new_parent));
  }
  InodeRecord& to_dir = moves ? to_dir_storage : from_dir;
  EFS_ASSIGN_OR_RETURN(InodeRecord moved, impl.Load(src->ino));
  std::optional<InodeRecord> other;
  if (dst) {
    EFS_ASSIGN_OR_RETURN(other, impl.Load(dst->ino));
  }
  const Timespec now = Now();
  Volume& vol = impl.volume;

  if (exchange) {
    EFS_RETURN_IF_ERROR(vol.Put(DirentKey(parent, name), dst->Encode()));
    EFS_RETURN_IF_ERROR(
        vol.Put(DirentKey(new_parent, new_name), src->Encode()));
    if (moves && src_dir) moved.parent = new_parent;
    if (moves && dst_dir) other->parent = parent;
    if (moves && src_dir != dst_dir) {
      // One subdirectory changed sides.
      if (src_dir) {
        --from_dir.nlink;
        ++to_dir.nlink;
      } else {
        ++from_dir.nlink;
        --to_dir.nlink;
      }
    }
  } else {
    // Old name first: a crash in between leaks rather than double-links.
    EFS_RETURN_IF_ERROR(vol.Delete(DirentKey(parent, name)));
    EFS_RETURN_IF_ERROR(
        vol.Put(DirentKey(new_parent, new_name), src->Encode()));
    if (other) {
      if (other->is_dir()) {
        other->nlink = 0;
        --to_dir.nlink;
      } else if (other->nlink > 0) {
        --other->nlink;
      }
      if (other->nlink == 0) EFS_RETURN_IF_ERROR(impl.MarkOrphan(*other));
    }
    if (moves && src_dir) {
      moved.parent = new_parent;
      --from_dir.nlink;
      ++to_dir.nlink;
    }
  }
  moved.ctime = now;
  EFS_RETURN_IF_ERROR(impl.Store(moved));
  if (other) {
    other->ctime = now;
    EFS_RETURN_IF_ERROR(impl.Store(*other));
  }
  Touch(from_dir, now);
  EFS_RETURN_IF_ERROR(impl.Store(from_dir));
  if (moves) {
    Touch(to_dir, now);
    EFS_RETURN_IF_ERROR(impl.Store(to_dir));
  }
  return Status::Ok();
}

// ---- directories ----

Result<std::vector<DirEntry>> Filesystem::ReadDir(uint64_t ino, uint64_t offset,
                                                  size_t limit) {
  std::shared_lock ns(impl_->ns_mu);
  EFS_RETURN_IF_ERROR(impl_->LoadDir(ino).status());
  std::vector<DirEntry> out;
  // Offsets are name hashes (< 2^63); 1 and 2 belong to "." and "..".
  if (limit == 0 || offset >= (uint64_t{1} << 63) - 1) return out;
  const uint64_t start_hash = offset < kFirstDirOffset ? 0 : offset + 1;
  const std::string end = PrefixEnd(DirPrefix(ino));
  EFS_ASSIGN_OR_RETURN(
      auto entries, volume_->Scan(DirHashPrefix(ino, start_hash), end, limit));
  std::vector<uint64_t> hashes;
  for (const auto& entry : entries) {
    EFS_ASSIGN_OR_RETURN(uint64_t hash, DirentHash(entry.first));
    hashes.push_back(hash);
  }
  if (entries.size() == limit) {
    // Names sharing a hash share a position: return all of them or none.
    const uint64_t last = hashes.back();
    EFS_ASSIGN_OR_RETURN(
        auto rest,
        volume_->Scan(entries.back().first + '\0',
                      PrefixEnd(DirHashPrefix(ino, last)), kScanPage));
    if (hashes.front() == last) {
      entries.insert(entries.end(), rest.begin(), rest.end());
      hashes.resize(entries.size(), last);
    } else if (!rest.empty()) {
      while (hashes.back() == last) {
        hashes.pop_back();
        entries.pop_back();
      }
    }
  }
  out.reserve(entries.size());
  for (size_t i = 0; i < entries.size(); ++i) {
    DirEntry entry;
    EFS_ASSIGN_OR_RETURN(entry.name, DirentName(entries[i].first));
    entry.next_offset = hashes[i];
    EFS_ASSIGN_OR_RETURN(DirentValue child,
                         DirentValue::Decode(entries[i].second));
    EFS_ASSIGN_OR_RETURN(InodeRecord rec, impl_->Load(child.ino));
    entry.attr = rec.ToAttr(impl_->block_size);
    out.push_back(std::move(entry));
  }
  return out;
}

// ---- lifetime of unlinked inodes, durability, usage ----

Status Filesystem::Forget(uint64_t ino) {
  Volume::Operation op = volume_->BeginOperation();
  InodeLocks locks = impl_->LockInodes({ino});
  Result<InodeRecord> rec = impl_->Load(ino);
  if (rec.status().code() == StatusCode::kNotFound) return Status::Ok();
  EFS_RETURN_IF_ERROR(rec.status());
  if (rec->nlink > 0) return Status::Ok();
  return impl_->FreeInode(ino);
}

// Holds no Operation or lock: Commit waits for every Operation to end.
Status Filesystem::Sync() { return volume_->Commit(true); }

Result<FsStats> Filesystem::StatFs() {
  EFS_ASSIGN_OR_RETURN(StoreStats stats, impl_->store->Stat());
  FsStats out;
  out.block_size = impl_->block_size;
  const uint64_t total =
      stats.quota_bytes == 0 ? kUnlimitedBytes : stats.quota_bytes;
  out.total_blocks = total / out.block_size;
  out.free_blocks = stats.used_bytes >= total
                        ? 0
                        : (total - stats.used_bytes) / out.block_size;
  EFS_ASSIGN_OR_RETURN(std::optional<std::string> count,
                       volume_->Get(InodeCountKey()));
  if (count) {
    EFS_ASSIGN_OR_RETURN(out.files, DecodeU64Le(*count));
  }
  return out;
}

}  // namespace enclavefs
