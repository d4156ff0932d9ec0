#define FUSE_USE_VERSION 314
#include "enclave-mount/fuse_ops.h"

#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "enclave-mount/errno_map.h"
#include "enclave-mount/fuse_uring.h"
#include "enclave-mount/writeback.h"

namespace enclavefs {

struct FuseState {
  std::unique_ptr<Filesystem> fs;
  std::shared_ptr<RemoteBlockStore> store;
  double timeout = 0;
  uint32_t block_size = 0;
  Status final_status;  // set by Destroy

  fuse_session* session = nullptr;
  FuseUring* uring = nullptr;  // the session's custom I/O, if any
  bool block_fill = true;

  std::mutex mu;
  std::unordered_map<uint64_t, uint64_t> lookups;  // GUARDED_BY(mu)

  // Per file with writable handles or fills under way (fuse_ops.h, block
  // fill). An entry exists only while one of its counts is non-zero.
  struct FillGate {
    uint32_t writers = 0;  // open writable handles and running truncates
    uint32_t fills = 0;    // notify_store calls under way
  };
  std::mutex fill_mu;
  std::condition_variable fills_done;
  std::unordered_map<uint64_t, FillGate> fill_gates;  // GUARDED_BY(fill_mu)

  // Called before the kernel can dirty pages of `ino`: waits for its
  // running fills and keeps new ones out until EndWrite.
  void BeginWrite(uint64_t ino) {
    std::unique_lock lock(fill_mu);
    FillGate& gate = fill_gates[ino];  // node-based: stays valid
    ++gate.writers;
    fills_done.wait(lock, [&] { return gate.fills == 0; });
  }

  void EndWrite(uint64_t ino) {
    std::lock_guard lock(fill_mu);
    auto it = fill_gates.find(ino);
    if (it == fill_gates.end() || it->second.writers == 0) return;
    if (--it->second.writers == 0 && it->second.fills == 0)
      fill_gates.erase(it);
  }

  bool BeginFill(uint64_t ino) {
    std::lock_guard lock(fill_mu);
    FillGate& gate = fill_gates[ino];
    if (gate.writers > 0) return false;
    ++gate.fills;
    return true;
  }

  void EndFill(uint64_t ino) {
    std::lock_guard lock(fill_mu);
    auto it = fill_gates.find(ino);
    if (--it->second.fills > 0) return;
    if (it->second.writers == 0) fill_gates.erase(it);
    fills_done.notify_all();
  }

  void Remember(uint64_t ino, uint64_t n = 1) {
    std::lock_guard lock(mu);
    lookups[ino] += n;
  }

  // Drops `n` kernel references; at zero the Filesystem may free the inode.
  void Drop(uint64_t ino, uint64_t n) {
    {
      std::lock_guard lock(mu);
      auto it = lookups.find(ino);
      if (it == lookups.end()) return;
      if (it->second > n) {
        it->second -= n;
        return;
      }
      lookups.erase(it);
    }
    // Outside the lock: Forget may do I/O. A concurrent lookup cannot
    // resurrect the inode in between, because Forget frees only inodes
    // that no directory entry names any more.
    Status s = fs->Forget(ino);
    if (!s.ok())
      spdlog::warn("forget of inode {} failed: {}", ino, s.ToString());
  }
};

namespace {

constexpr size_t kMaxWrite = 1u << 20;
constexpr size_t kMaxReadahead = 2u << 20;
// Rough packed sizes of one entry, to ask the Filesystem for about as many
// entries as the kernel's buffer holds.
constexpr size_t kDirentSize = 32;
constexpr size_t kDirentPlusSize = 160;

FuseState& StateOf(fuse_req_t req) {
  return *static_cast<FuseState*>(fuse_req_userdata(req));
}
Filesystem& FsOf(fuse_req_t req) { return *StateOf(req).fs; }

void ReplyStatus(fuse_req_t req, const Status& status) {
  fuse_reply_err(req, ToErrno(status));
}

struct stat ToStat(const InodeAttr& a, uint32_t block_size) {
  struct stat st {};
  st.st_ino = a.ino;
  st.st_mode = a.mode;
  st.st_nlink = a.nlink;
  st.st_uid = a.uid;
  st.st_gid = a.gid;
  st.st_rdev = a.rdev;
  st.st_size = static_cast<off_t>(a.size);
  st.st_blocks = static_cast<blkcnt_t>(a.blocks);
  st.st_blksize = block_size;
  st.st_atim = {a.atime.sec, a.atime.nsec};
  st.st_mtim = {a.mtime.sec, a.mtime.nsec};
  st.st_ctim = {a.ctime.sec, a.ctime.nsec};
  return st;
}

fuse_entry_param ToEntry(const FuseState& state, const InodeAttr& a) {
  fuse_entry_param e{};
  e.ino = a.ino;
  e.attr = ToStat(a, state.block_size);
  e.attr_timeout = state.timeout;
  e.entry_timeout = state.timeout;
  return e;
}

// Replies with a new kernel reference to the inode in `attr`. The count is
// raised before replying so a racing forget cannot take it below zero.
void ReplyEntry(fuse_req_t req, const Result<InodeAttr>& attr) {
  if (!attr.ok()) return ReplyStatus(req, attr.status());
  auto& state = StateOf(req);
  fuse_entry_param e = ToEntry(state, *attr);
  state.Remember(attr->ino);
  if (fuse_reply_entry(req, &e) != 0) state.Drop(attr->ino, 1);
}

void ReplyAttr(fuse_req_t req, const Result<InodeAttr>& attr) {
  if (!attr.ok()) return ReplyStatus(req, attr.status());
  auto& state = StateOf(req);
  struct stat st = ToStat(*attr, state.block_size);
  fuse_reply_attr(req, &st, state.timeout);
}

// ---- session ----

void OnInit(void* userdata, fuse_conn_info* conn) {
  (void)userdata;
  for (unsigned cap : {FUSE_CAP_WRITEBACK_CACHE, FUSE_CAP_READDIRPLUS,
                       FUSE_CAP_ASYNC_READ, FUSE_CAP_PARALLEL_DIROPS}) {
    if (conn->capable & cap) conn->want |= cap;
  }
  conn->max_write = kMaxWrite;
  conn->max_readahead = kMaxReadahead;
  conn->time_gran = 1;  // nanosecond timestamps
}

void OnDestroy(void* userdata) {
  auto& state = *static_cast<FuseState*>(userdata);
  // The kernel holds no inode any more: free unlinked ones now rather than
  // at the next open.
  std::unordered_map<uint64_t, uint64_t> held;
  {
    std::lock_guard lock(state.mu);
    held.swap(state.lookups);
  }
  for (const auto& [ino, count] : held) {
    Status s = state.fs->Forget(ino);
    if (!s.ok())
      spdlog::warn("forget of inode {} failed: {}", ino, s.ToString());
  }
  state.final_status = state.fs->Sync();
  if (state.final_status.ok()) {
    spdlog::info("final commit done: generation {}, root {}",
                 state.fs->volume().generation(),
                 state.fs->volume().root_hash());
  } else {
    spdlog::error("final commit failed: {}", state.final_status.ToString());
  }
  state.fs.reset();  // stops the commit timer before the lease goes
  Status closed = state.store->Close();
  if (!closed.ok()) spdlog::warn("releasing the lease: {}", closed.ToString());
}

// ---- inodes ----

void OnLookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Result<InodeAttr> attr = FsOf(req).Lookup(parent, name);
  if (attr.status().code() == StatusCode::kNotFound) {
    // A negative entry: the kernel caches the absence (ino 0 = no inode).
    fuse_entry_param e{};
    e.entry_timeout = StateOf(req).timeout;
    fuse_reply_entry(req, &e);
    return;
  }
  ReplyEntry(req, attr);
}

void OnForget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  StateOf(req).Drop(ino, nlookup);
  fuse_reply_none(req);
}

void OnForgetMulti(fuse_req_t req, size_t count, fuse_forget_data* forgets) {
  for (size_t i = 0; i < count; ++i) {
    StateOf(req).Drop(forgets[i].ino, forgets[i].nlookup);
  }
  fuse_reply_none(req);
}

void OnGetattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
  ReplyAttr(req, FsOf(req).GetAttr(ino));
}

// The kernel asks only a mount without default_permissions, whose callers
// are all root (FuseOptionString). Root may read and write anything but
// execute only a directory or a file with an x bit, as on a local disk;
// without this op the kernel would let access(X_OK) pass for every file.
void OnAccess(fuse_req_t req, fuse_ino_t ino, int mask) {
  const Result<InodeAttr> attr = FsOf(req).GetAttr(ino);
  if (!attr.ok()) return ReplyStatus(req, attr.status());
  const bool may_execute = S_ISDIR(attr->mode) || (attr->mode & 0111) != 0;
  if ((mask & X_OK) && !may_execute) {
    return ReplyStatus(req, Status::PermissionDenied("no execute bit"));
  }
  fuse_reply_err(req, 0);
}

void OnSetattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set,
               fuse_file_info*) {
  SetAttrRequest change;
  if (to_set & FUSE_SET_ATTR_MODE) change.mode = attr->st_mode & 07777;
  if (to_set & FUSE_SET_ATTR_UID) change.uid = attr->st_uid;
  if (to_set & FUSE_SET_ATTR_GID) change.gid = attr->st_gid;
  if (to_set & FUSE_SET_ATTR_SIZE)
    change.size = static_cast<uint64_t>(attr->st_size);
  if (to_set & FUSE_SET_ATTR_ATIME_NOW) {
    change.atime_now = true;
  } else if (to_set & FUSE_SET_ATTR_ATIME) {
    change.atime = Timespec{attr->st_atim.tv_sec, attr->st_atim.tv_nsec};
  }
  if (to_set & FUSE_SET_ATTR_MTIME_NOW) {
    change.mtime_now = true;
  } else if (to_set & FUSE_SET_ATTR_MTIME) {
    change.mtime = Timespec{attr->st_mtim.tv_sec, attr->st_mtim.tv_nsec};
  }
  // A truncate changes the file without a writable handle (truncate(2)).
  auto& state = StateOf(req);
  if (change.size) state.BeginWrite(ino);
  ReplyAttr(req, state.fs->SetAttr(ino, change));
  if (change.size) state.EndWrite(ino);
}

void OnReadlink(fuse_req_t req, fuse_ino_t ino) {
  Result<std::string> target = FsOf(req).Readlink(ino);
  if (!target.ok()) return ReplyStatus(req, target.status());
  fuse_reply_readlink(req, target->c_str());
}

void OnMknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode,
             dev_t rdev) {
  const fuse_ctx* ctx = fuse_req_ctx(req);
  ReplyEntry(req,
             FsOf(req).Mknod(parent, name, mode, rdev, ctx->uid, ctx->gid));
}

void OnMkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
  const fuse_ctx* ctx = fuse_req_ctx(req);
  ReplyEntry(req, FsOf(req).Mkdir(parent, name, mode, ctx->uid, ctx->gid));
}

void OnSymlink(fuse_req_t req, const char* target, fuse_ino_t parent,
               const char* name) {
  const fuse_ctx* ctx = fuse_req_ctx(req);
  ReplyEntry(req, FsOf(req).Symlink(parent, name, target, ctx->uid, ctx->gid));
}

void OnLink(fuse_req_t req, fuse_ino_t ino, fuse_ino_t new_parent,
            const char* new_name) {
  ReplyEntry(req, FsOf(req).Link(ino, new_parent, new_name));
}

void OnUnlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
  ReplyStatus(req, FsOf(req).Unlink(parent, name));
}

void OnRmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
  ReplyStatus(req, FsOf(req).Rmdir(parent, name));
}

void OnRename(fuse_req_t req, fuse_ino_t parent, const char* name,
              fuse_ino_t new_parent, const char* new_name, unsigned int flags) {
  unsigned fs_flags = 0;
  if (flags & RENAME_NOREPLACE) fs_flags |= kRenameNoReplace;
  if (flags & RENAME_EXCHANGE) fs_flags |= kRenameExchange;
  if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) {
    fuse_reply_err(req, EINVAL);  // RENAME_WHITEOUT: overlayfs only
    return;
  }
  ReplyStatus(req,
              FsOf(req).Rename(parent, name, new_parent, new_name, fs_flags));
}

// ---- files ----

bool Writable(const fuse_file_info* fi) {
  return (fi->flags & O_ACCMODE) != O_RDONLY;
}

void OnOpen(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  auto& state = StateOf(req);
  fi->keep_cache = 1;  // exclusive lease: nobody else changes the file
  const bool writable = Writable(fi);
  if (writable) state.BeginWrite(ino);
  if (fuse_reply_open(req, fi) != 0 && writable) state.EndWrite(ino);
}

void OnCreate(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode,
              fuse_file_info* fi) {
  const fuse_ctx* ctx = fuse_req_ctx(req);
  Result<InodeAttr> attr = FsOf(req).Mknod(
      parent, name, S_IFREG | (mode & 07777), 0, ctx->uid, ctx->gid);
  if (!attr.ok()) return ReplyStatus(req, attr.status());
  auto& state = StateOf(req);
  fuse_entry_param e = ToEntry(state, *attr);
  fi->keep_cache = 1;
  const bool writable = Writable(fi);
  state.Remember(attr->ino);
  if (writable) state.BeginWrite(attr->ino);
  if (fuse_reply_create(req, &e, fi) != 0) {
    if (writable) state.EndWrite(attr->ino);
    state.Drop(attr->ino, 1);
  }
}

void StorePages(const FuseState& state, fuse_ino_t ino, uint64_t offset,
                std::string_view bytes) {
  if (bytes.empty()) return;
  fuse_bufvec buf = FUSE_BUFVEC_INIT(bytes.size());
  buf.buf[0].mem = const_cast<char*>(bytes.data());
  const int rc = fuse_lowlevel_notify_store(
      state.session, ino, static_cast<off_t>(offset), &buf, {});
  // ENOENT: the kernel has dropped the inode meanwhile; nothing to fill.
  if (rc != 0 && rc != -ENOENT) {
    spdlog::debug("block fill of inode {} at {}: {}", ino, offset,
                  std::strerror(-rc));
  }
}

// Answers a read smaller than a block from one read of its whole block,
// then puts the block's other pages into the kernel's page cache
// (fuse_ops.h: block fill). False, having answered nothing, if the read
// spans blocks or the file has a writer.
bool ReadAndFillBlock(fuse_req_t req, FuseState& state, fuse_ino_t ino,
                      uint64_t off, size_t size) {
  static const uint64_t kPage = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  const uint64_t block = state.block_size;
  const uint64_t first = off - off % block;
  if (size == 0 || size >= block || off + size > first + block) return false;
  if (!state.BeginFill(ino)) return false;
  Result<std::string> bytes = state.fs->Read(ino, first, block);
  if (!bytes.ok()) {
    state.EndFill(ino);
    ReplyStatus(req, bytes.status());
    return true;
  }
  const std::string_view all(*bytes);
  const std::string_view asked =
      all.substr(std::min<uint64_t>(off - first, all.size()), size);
  fuse_reply_buf(req, asked.data(), asked.size());
  // Only after the reply: the kernel keeps the pages it asked for locked
  // until then, so a store touching them would wait.
  const uint64_t head_end = off - off % kPage;
  const uint64_t tail_begin = (off + size + kPage - 1) / kPage * kPage;
  StorePages(state, ino, first, all.substr(0, head_end - first));
  if (tail_begin - first < all.size())
    StorePages(state, ino, tail_begin, all.substr(tail_begin - first));
  state.EndFill(ino);
  return true;
}

void OnRead(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
            fuse_file_info* fi) {
  auto& state = StateOf(req);
  if (state.block_fill && !(fi->flags & O_DIRECT) &&
      ReadAndFillBlock(req, state, ino, static_cast<uint64_t>(off), size)) {
    return;
  }
  Result<std::vector<DataSlice>> slices =
      state.fs->ReadSlices(ino, static_cast<uint64_t>(off), size);
  if (!slices.ok()) return ReplyStatus(req, slices.status());
  // The reply gathers straight from the cached blocks: no copy into a reply
  // buffer (docs/performance.md). Holes and short blocks read from zeros.
  static const std::string kZeros(64u << 10, '\0');
  std::vector<iovec> iov;
  iov.reserve(slices->size() * 2);
  for (const DataSlice& slice : *slices) {
    if (!slice.bytes.empty()) {
      iov.push_back(
          {const_cast<char*>(slice.bytes.data()), slice.bytes.size()});
    }
    for (size_t left = slice.zeros; left > 0;) {
      const size_t n = std::min(left, kZeros.size());
      iov.push_back({const_cast<char*>(kZeros.data()), n});
      left -= n;
    }
  }
  fuse_reply_iov(req, iov.data(), static_cast<int>(iov.size()));
}

void OnWrite(fuse_req_t req, fuse_ino_t ino, const char* buf, size_t size,
             off_t off, fuse_file_info*) {
  Result<size_t> written = FsOf(req).Write(ino, static_cast<uint64_t>(off),
                                           std::string_view(buf, size));
  if (!written.ok()) return ReplyStatus(req, written.status());
  fuse_reply_write(req, *written);
}

void OnRelease(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  if (Writable(fi)) StateOf(req).EndWrite(ino);
  fuse_reply_err(req, 0);
}

void OnFsync(fuse_req_t req, fuse_ino_t, int, fuse_file_info*) {
  ReplyStatus(req, FsOf(req).Sync());
}

void OnFallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset,
                 off_t length, fuse_file_info*) {
  ReplyStatus(req, FsOf(req).Fallocate(ino, mode, static_cast<uint64_t>(offset),
                                       static_cast<uint64_t>(length)));
}

// ---- directories ----

void OnOpendir(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  fuse_reply_open(req, fi);
}

// Offsets: 1 and 2 follow "." and ".."; larger ones are the Filesystem's
// stable positions (always > 2), so a listing resumes correctly even when
// entries come and go between calls.
void ReadDirCommon(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                   bool plus) {
  auto& state = StateOf(req);
  std::string buf(size, '\0');
  size_t used = 0;
  std::vector<uint64_t> referenced;
  // Adds one entry; false when the buffer is full.
  auto add = [&](const char* name, const fuse_entry_param& e, off_t next) {
    char* at = buf.data() + used;
    const size_t room = size - used;
    const size_t need =
        plus ? fuse_add_direntry_plus(req, at, room, name, &e, next)
             : fuse_add_direntry(req, at, room, name, &e.attr, next);
    if (need > room) return false;
    used += need;
    return true;
  };
  fuse_entry_param dot{};
  dot.attr.st_ino = ino;  // informational: the kernel resolves ".." itself
  dot.attr.st_mode = S_IFDIR;
  bool full = false;
  if (off < 1) full = !add(".", dot, 1);
  if (!full && off < 2) full = !add("..", dot, 2);
  const uint64_t from = off <= 2 ? 0 : static_cast<uint64_t>(off);
  if (!full) {
    Result<std::vector<DirEntry>> entries = state.fs->ReadDir(
        ino, from, size / (plus ? kDirentPlusSize : kDirentSize) + 1);
    if (!entries.ok()) return ReplyStatus(req, entries.status());
    for (const DirEntry& entry : *entries) {
      fuse_entry_param e = ToEntry(state, entry.attr);
      if (!add(entry.name.c_str(), e, static_cast<off_t>(entry.next_offset)))
        break;
      if (plus) referenced.push_back(entry.attr.ino);
    }
  }
  for (uint64_t child : referenced) state.Remember(child);
  if (fuse_reply_buf(req, buf.data(), used) != 0) {
    for (uint64_t child : referenced) state.Drop(child, 1);
  }
}

void OnReaddir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
               fuse_file_info*) {
  ReadDirCommon(req, ino, size, off, false);
}

void OnReaddirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                   fuse_file_info*) {
  ReadDirCommon(req, ino, size, off, true);
}

void OnReleasedir(fuse_req_t req, fuse_ino_t, fuse_file_info*) {
  fuse_reply_err(req, 0);
}

void OnFsyncdir(fuse_req_t req, fuse_ino_t, int, fuse_file_info*) {
  ReplyStatus(req, FsOf(req).Sync());
}

void OnStatfs(fuse_req_t req, fuse_ino_t) {
  Result<FsStats> stats = FsOf(req).StatFs();
  if (!stats.ok()) return ReplyStatus(req, stats.status());
  struct statvfs st {};
  st.f_bsize = stats->block_size;
  st.f_frsize = stats->block_size;
  st.f_blocks = stats->total_blocks;
  st.f_bfree = stats->free_blocks;
  st.f_bavail = stats->free_blocks;
  st.f_files = stats->files;
  st.f_ffree = stats->free_blocks;  // inodes cost space like everything else
  st.f_namemax = kMaxNameSize;
  fuse_reply_statfs(req, &st);
}

// ---- extended attributes ----

void OnSetxattr(fuse_req_t req, fuse_ino_t ino, const char* name,
                const char* value, size_t size, int flags) {
  ReplyStatus(
      req, FsOf(req).SetXattr(ino, name, std::string_view(value, size), flags));
}

// size 0 asks for the length; a non-zero size too small is ERANGE.
void ReplyXattrBytes(fuse_req_t req, const std::string& bytes, size_t size) {
  if (size == 0) {
    fuse_reply_xattr(req, bytes.size());
  } else if (bytes.size() > size) {
    fuse_reply_err(req, ERANGE);
  } else {
    fuse_reply_buf(req, bytes.data(), bytes.size());
  }
}

void OnGetxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  Result<std::string> value = FsOf(req).GetXattr(ino, name);
  if (!value.ok()) return ReplyStatus(req, value.status());
  ReplyXattrBytes(req, *value, size);
}

void OnListxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  Result<std::vector<std::string>> names = FsOf(req).ListXattr(ino);
  if (!names.ok()) return ReplyStatus(req, names.status());
  std::string packed;
  for (const std::string& name : *names) {
    packed += name;
    packed.push_back('\0');
  }
  ReplyXattrBytes(req, packed, size);
}

void OnRemovexattr(fuse_req_t req, fuse_ino_t ino, const char* name) {
  ReplyStatus(req, FsOf(req).RemoveXattr(ino, name));
}

// libfuse hands custom I/O the session's userdata, our FuseState.
const fuse_custom_io kUringIo = {
    .writev = [](int fd, iovec* iov, int count, void* userdata) -> ssize_t {
      return static_cast<FuseState*>(userdata)->uring->Writev(fd, iov, count);
    },
    .read = [](int fd, void* buf, size_t len, void* userdata) -> ssize_t {
      return static_cast<FuseState*>(userdata)->uring->Read(fd, buf, len);
    },
    .splice_receive = nullptr,
    .splice_send = nullptr,
};

fuse_lowlevel_ops MakeOps(bool xattrs) {
  fuse_lowlevel_ops ops{};
  ops.init = OnInit;
  ops.destroy = OnDestroy;
  ops.lookup = OnLookup;
  ops.forget = OnForget;
  ops.forget_multi = OnForgetMulti;
  ops.getattr = OnGetattr;
  ops.access = OnAccess;
  ops.setattr = OnSetattr;
  ops.readlink = OnReadlink;
  ops.mknod = OnMknod;
  ops.mkdir = OnMkdir;
  ops.unlink = OnUnlink;
  ops.rmdir = OnRmdir;
  ops.symlink = OnSymlink;
  ops.rename = OnRename;
  ops.link = OnLink;
  ops.open = OnOpen;
  ops.read = OnRead;
  ops.write = OnWrite;
  // No flush: close(2) has nothing to do here (buffered writes reach the
  // host at the next commit, fsync forces one). libfuse answers ENOSYS, the
  // kernel stops sending FLUSH after the first, and it still writes dirty
  // pages back at close. Saves a round trip per close.
  ops.release = OnRelease;
  ops.fsync = OnFsync;
  ops.opendir = OnOpendir;
  ops.readdir = OnReaddir;
  ops.readdirplus = OnReaddirplus;
  ops.releasedir = OnReleasedir;
  ops.fsyncdir = OnFsyncdir;
  ops.statfs = OnStatfs;
  if (xattrs) {
    ops.setxattr = OnSetxattr;
    ops.getxattr = OnGetxattr;
    ops.listxattr = OnListxattr;
    ops.removexattr = OnRemovexattr;
  }
  ops.create = OnCreate;
  ops.fallocate = OnFallocate;
  return ops;
}

}  // namespace

std::string FuseOptionString(const FuseMountOptions& options,
                             bool mounted_by_root) {
  bool others_may_enter = false;
  std::string extras;
  for (const std::string& extra : options.extra_options) {
    if (extra.empty()) continue;
    extras += "," + extra;
    std::string_view rest = extra;
    while (!rest.empty()) {
      const std::string_view option = rest.substr(0, rest.find(','));
      others_may_enter |= option == "allow_other" || option == "allow_root";
      rest.remove_prefix(std::min(rest.size(), option.size() + 1));
    }
  }
  const bool check_modes = !mounted_by_root || others_may_enter;
  return std::string(check_modes ? "default_permissions," : "") +
         "fsname=enclavefs:" + options.volume + ",subtype=enclavefs" + extras;
}

FuseServer::FuseServer(std::unique_ptr<FuseState> state, fuse_session* session)
    : state_(std::move(state)), session_(session) {}

Result<std::unique_ptr<FuseServer>> FuseServer::Mount(
    std::unique_ptr<Filesystem> fs, std::shared_ptr<RemoteBlockStore> store,
    const FuseMountOptions& options) {
  auto state = std::make_unique<FuseState>();
  state->block_size = fs->volume().block_size();
  state->fs = std::move(fs);
  state->store = std::move(store);
  state->timeout = static_cast<double>(options.cache_timeout.count());
  state->block_fill = options.block_fill;

  const std::string option_text = FuseOptionString(options, geteuid() == 0);
  std::vector<std::string> argv_text = {"enclavefs", "-o", option_text};
  std::vector<char*> argv;
  for (std::string& arg : argv_text) argv.push_back(arg.data());
  fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());
  static const fuse_lowlevel_ops kOps = MakeOps(false);
  static const fuse_lowlevel_ops kOpsWithXattrs = MakeOps(true);
  const fuse_lowlevel_ops& ops = options.xattrs ? kOpsWithXattrs : kOps;
  fuse_session* session =
      fuse_session_new(&args, &ops, sizeof(ops), state.get());
  fuse_opt_free_args(&args);
  if (session == nullptr) {
    return Status::InvalidArgument("invalid mount options: " + option_text);
  }
  state->session = session;
  // Resolved before mounting: afterwards a stat of the mountpoint would wait
  // for this not yet running session.
  std::error_code ec;
  const std::string resolved =
      std::filesystem::canonical(options.mountpoint, ec).string();
  if (fuse_session_mount(session, options.mountpoint.c_str()) != 0) {
    fuse_session_destroy(session);
    return Status::IOError("cannot mount at " + options.mountpoint);
  }
  if (Status s = SetWritebackShare(ec ? options.mountpoint : resolved,
                                   options.writeback_share);
      !s.ok()) {
    spdlog::warn("mount: page cache keeps the kernel's 1 % writeback share: {}",
                 s.message());
  }
  std::unique_ptr<FuseUring> uring;
  if (options.io_uring) {
    uring = std::make_unique<FuseUring>(session);
    state->uring = uring.get();
    if (fuse_session_custom_io(session, &kUringIo, fuse_session_fd(session)) !=
        0) {
      state->uring = nullptr;
      uring.reset();
      spdlog::warn(
          "mount: libfuse refused custom I/O, so no FUSE over "
          "io_uring; serving through /dev/fuse");
    }
  }
  auto server =
      std::unique_ptr<FuseServer>(new FuseServer(std::move(state), session));
  server->uring_ = std::move(uring);
  server->max_idle_threads_ = options.max_idle_threads;
  server->max_threads_ = options.max_threads;
  if (fuse_set_signal_handlers(session) != 0) {
    return Status::IOError("cannot install signal handlers");
  }
  return server;
}

FuseServer::~FuseServer() {
  if (session_ == nullptr) return;  // Run() already tore it down
  if (uring_) uring_->Stop();
  fuse_remove_signal_handlers(session_);
  if (mounted_) fuse_session_unmount(session_);
  // Runs the destroy handler (final commit) if the kernel ever sent INIT.
  fuse_session_destroy(session_);
}

Status FuseServer::Run() {
  fuse_loop_config* config = fuse_loop_cfg_create();
  fuse_loop_cfg_set_clone_fd(config, 1);
  fuse_loop_cfg_set_idle_threads(config, max_idle_threads_);
  fuse_loop_cfg_set_max_threads(config, max_threads_);
  const int loop = fuse_session_loop_mt(session_, config);
  fuse_loop_cfg_destroy(config);
  if (uring_) uring_->Stop();
  if (loop > 0) spdlog::info("received {}, unmounting", strsignal(loop));
  fuse_remove_signal_handlers(session_);
  fuse_session_unmount(session_);
  mounted_ = false;
  fuse_session_destroy(session_);  // calls OnDestroy: commit, release lease
  session_ = nullptr;
  if (loop < 0) {
    return Status::IOError(std::string("FUSE session failed: ") +
                           std::strerror(-loop));
  }
  return state_->final_status;
}

}  // namespace enclavefs
