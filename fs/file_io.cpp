// File contents and extended attributes of the POSIX layer (the namespace
// half is in filesystem.cpp).
#include <linux/falloc.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include <algorithm>
#include <limits>

#include "fs/filesystem.h"
#include "fs/filesystem_impl.h"

namespace enclavefs {
namespace {

// Where one block meets the byte range [begin, end): offsets inside it.
struct BlockSpan {
  uint64_t index;
  size_t lo;  // first byte of the block in range
  size_t hi;  // one past the last
};

BlockSpan SpanOf(uint64_t index, uint64_t block_size, uint64_t begin,
                 uint64_t end) {
  const uint64_t start = index * block_size;
  return {index, static_cast<size_t>(std::max(begin, start) - start),
          static_cast<size_t>(std::min(end, start + block_size) - start)};
}

Status CheckRegularForIo(const InodeRecord& rec) {
  if (rec.is_dir()) return Status::IsDirectory("is a directory");
  if (!rec.is_regular()) return Status::InvalidArgument("not a regular file");
  return Status::Ok();
}

Status CheckXattrName(std::string_view name) {
  if (name.empty() || name.size() > kMaxNameSize) {
    return Status::OutOfRange("xattr name must be 1..255 bytes");
  }
  // Without FUSE_CAP_POSIX_ACL the kernel passes ACLs through as plain
  // xattrs; storing them would ignore them. EOPNOTSUPP makes cp -a, tar
  // and friends fall back to chmod, so modes are kept.
  if (name == "system.posix_acl_access" || name == "system.posix_acl_default") {
    return Status::NotSupported("POSIX ACLs are not supported");
  }
  return Status::Ok();
}

}  // namespace

Status Filesystem::Impl::Truncate(InodeRecord& rec, uint64_t size) {
  if (size > kMaxFileSize) return Status::OutOfRange("file too large");
  if (size < rec.size) {
    const uint64_t keep = (size + block_size - 1) / block_size;
    uint64_t dropped = 0;
    for (uint64_t from = keep;;) {
      EFS_ASSIGN_OR_RETURN(
          std::vector<uint64_t> stored,
          volume.ListData(rec.ino, from, std::numeric_limits<uint64_t>::max(),
                          kScanPage));
      if (stored.empty()) break;
      dropped += stored.size();
      from = stored.back() + 1;
    }
    EFS_RETURN_IF_ERROR(volume.DeleteData(rec.ino, keep));
    rec.data_blocks -= std::min(rec.data_blocks, dropped);
    // Cut the last partial block so a later extension reads zeros there.
    if (const size_t tail = size % block_size; tail != 0) {
      EFS_ASSIGN_OR_RETURN(std::optional<std::string> last,
                           volume.ReadData(rec.ino, size / block_size));
      if (last && last->size() > tail) {
        last->resize(tail);
        EFS_RETURN_IF_ERROR(
            volume.WriteData(rec.ino, size / block_size, *last));
      }
    }
  }
  rec.size = size;
  return Status::Ok();
}

Result<std::vector<DataSlice>> Filesystem::ReadSlices(uint64_t ino,
                                                      uint64_t offset,
                                                      size_t size) {
  auto lock = impl_->ReadLock(ino);
  EFS_ASSIGN_OR_RETURN(InodeRecord rec, impl_->Load(ino));
  EFS_RETURN_IF_ERROR(CheckRegularForIo(rec));
  std::vector<DataSlice> slices;
  if (offset >= rec.size || size == 0) return slices;
  const uint64_t end = offset + std::min<uint64_t>(size, rec.size - offset);
  const uint64_t b = impl_->block_size;
  slices.reserve((end - 1) / b - offset / b + 1);
  for (uint64_t i = offset / b; i <= (end - 1) / b; ++i) {
    const BlockSpan span = SpanOf(i, b, offset, end);
    EFS_ASSIGN_OR_RETURN(DataSlice slice,
                         volume_->SliceData(ino, i, span.lo, span.hi));
    slices.push_back(std::move(slice));
  }
  return slices;
}

Result<std::string> Filesystem::Read(uint64_t ino, uint64_t offset,
                                     size_t size) {
  EFS_ASSIGN_OR_RETURN(std::vector<DataSlice> slices,
                       ReadSlices(ino, offset, size));
  size_t total = 0;
  for (const DataSlice& slice : slices)
    total += slice.bytes.size() + slice.zeros;
  std::string out;
  out.reserve(total);
  for (const DataSlice& slice : slices) {
    out.append(slice.bytes);
    out.append(slice.zeros, '\0');
  }
  return out;
}

Result<size_t> Filesystem::Write(uint64_t ino, uint64_t offset,
                                 std::string_view data) {
  if (offset > kMaxFileSize || data.size() > kMaxFileSize - offset) {
    return Status::OutOfRange("write past the maximum file size");
  }
  Volume::Operation op = volume_->BeginOperation();
  EFS_RETURN_IF_ERROR(volume_->CheckRoom());
  InodeLocks locks = impl_->LockInodes({ino});
  EFS_ASSIGN_OR_RETURN(InodeRecord rec, impl_->Load(ino));
  EFS_RETURN_IF_ERROR(CheckRegularForIo(rec));
  if (data.empty()) return size_t{0};
  const uint64_t b = impl_->block_size;
  const uint64_t end = offset + data.size();
  const uint64_t first = offset / b;
  const uint64_t last = (end - 1) / b;
  // Which blocks exist decides read-modify-write and the block count,
  // without fetching any data block.
  EFS_ASSIGN_OR_RETURN(
      std::vector<uint64_t> stored,
      volume_->ListData(ino, first, last + 1, last - first + 1));
  for (uint64_t i = first; i <= last; ++i) {
    const BlockSpan span = SpanOf(i, b, offset, end);
    const std::string_view piece =
        data.substr(i * b + span.lo - offset, span.hi - span.lo);
    const bool exists = std::binary_search(stored.begin(), stored.end(), i);
    if (span.lo == 0 && span.hi == b) {
      EFS_RETURN_IF_ERROR(volume_->WriteData(ino, i, piece));
    } else {
      EFS_RETURN_IF_ERROR(volume_->PatchData(ino, i, span.lo, piece));
    }
    if (!exists) ++rec.data_blocks;
  }
  rec.size = std::max(rec.size, end);
  rec.mtime = rec.ctime = Now();
  EFS_RETURN_IF_ERROR(impl_->Store(rec));
  return data.size();
}

Status Filesystem::Fallocate(uint64_t ino, int mode, uint64_t offset,
                             uint64_t length) {
  if (mode != 0 && mode != FALLOC_FL_KEEP_SIZE) {
    return Status::NotSupported("fallocate mode not supported");
  }
  if (length == 0) return Status::InvalidArgument("zero-length fallocate");
  if (offset > kMaxFileSize || length > kMaxFileSize - offset) {
    return Status::OutOfRange("fallocate past the maximum file size");
  }
  Volume::Operation op = volume_->BeginOperation();
  InodeLocks locks = impl_->LockInodes({ino});
  EFS_ASSIGN_OR_RETURN(InodeRecord rec, impl_->Load(ino));
  EFS_RETURN_IF_ERROR(CheckRegularForIo(rec));
  // Storage is sparse and allocated on write, so reserving space is a no-op;
  // mode 0 only has to make the file at least offset + length long.
  if (mode == FALLOC_FL_KEEP_SIZE || offset + length <= rec.size) {
    return Status::Ok();
  }
  rec.size = offset + length;
  rec.mtime = rec.ctime = Now();
  return impl_->Store(rec);
}

// ---- extended attributes ----

Status Filesystem::SetXattr(uint64_t ino, std::string_view name,
                            std::string_view value, int flags) {
  if ((flags & ~(XATTR_CREATE | XATTR_REPLACE)) != 0 ||
      flags == (XATTR_CREATE | XATTR_REPLACE)) {
    return Status::InvalidArgument("bad xattr flags");
  }
  EFS_RETURN_IF_ERROR(CheckXattrName(name));
  if (value.size() > volume_->max_value_size()) {
    return Status::OutOfRange("xattr value too large");
  }
  Volume::Operation op = volume_->BeginOperation();
  InodeLocks locks = impl_->LockInodes({ino});
  EFS_ASSIGN_OR_RETURN(InodeRecord rec, impl_->Load(ino));
  const std::string key = XattrKey(ino, name);
  EFS_ASSIGN_OR_RETURN(std::optional<std::string> existing, volume_->Get(key));
  if ((flags & XATTR_CREATE) && existing) {
    return Status::AlreadyExists("xattr exists");
  }
  if ((flags & XATTR_REPLACE) && !existing) {
    return Status::NoAttribute("no such xattr");
  }
  EFS_RETURN_IF_ERROR(volume_->Put(key, value));
  rec.ctime = Now();
  return impl_->Store(rec);
}

Result<std::string> Filesystem::GetXattr(uint64_t ino, std::string_view name) {
  EFS_RETURN_IF_ERROR(CheckXattrName(name));
  EFS_RETURN_IF_ERROR(impl_->Load(ino).status());
  EFS_ASSIGN_OR_RETURN(std::optional<std::string> value,
                       volume_->Get(XattrKey(ino, name)));
  if (!value) return Status::NoAttribute("no such xattr");
  return std::move(*value);
}

Result<std::vector<std::string>> Filesystem::ListXattr(uint64_t ino) {
  EFS_RETURN_IF_ERROR(impl_->Load(ino).status());
  const std::string prefix = XattrPrefix(ino);
  const std::string end = PrefixEnd(prefix);
  std::vector<std::string> names;
  for (std::string start = prefix;;) {
    EFS_ASSIGN_OR_RETURN(auto page, volume_->Scan(start, end, kScanPage));
    for (const auto& entry : page)
      names.push_back(entry.first.substr(prefix.size()));
    if (page.size() < kScanPage) break;
    start = page.back().first + '\0';
  }
  return names;
}

Status Filesystem::RemoveXattr(uint64_t ino, std::string_view name) {
  EFS_RETURN_IF_ERROR(CheckXattrName(name));
  Volume::Operation op = volume_->BeginOperation();
  InodeLocks locks = impl_->LockInodes({ino});
  EFS_ASSIGN_OR_RETURN(InodeRecord rec, impl_->Load(ino));
  const std::string key = XattrKey(ino, name);
  EFS_ASSIGN_OR_RETURN(std::optional<std::string> existing, volume_->Get(key));
  if (!existing) return Status::NoAttribute("no such xattr");
  EFS_RETURN_IF_ERROR(volume_->Delete(key));
  rec.ctime = Now();
  return impl_->Store(rec);
}

}  // namespace enclavefs
