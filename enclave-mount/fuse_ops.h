// FuseServer: serves one Filesystem through the libfuse low-level API.
//
// Model: libfuse's example/passthrough_hp.cc. One FuseServer owns the
// Filesystem, the lease on the host (the RemoteBlockStore) and the FUSE
// session; every request is answered exactly once. The kernel's lookup
// count of each inode is tracked here: replies carrying a fuse_entry_param
// (lookup, mknod, mkdir, symlink, link, create, readdirplus) add one, forget
// and forget_multi subtract, and when an inode's count reaches 0 the
// Filesystem is told (Filesystem::Forget), which frees it if it has no links
// left -- the only way an unlinked but still open file is ever freed.
//
// Caching: entries and attributes are cached by the kernel for an hour and
// file pages are kept across opens (keep_cache). That is safe only because
// the volume is leased exclusively to this one mount: nobody else can change
// it behind the kernel's back.
//
// Block fill: the daemon fetches, authenticates and caches whole blocks, so
// after answering a read smaller than a block it also pushes the rest of
// that block into the kernel's page cache (fuse_lowlevel_notify_store), and
// later reads of it never reach the daemon. The kernel copies such data over
// pages even when they are dirty, so a fill runs only while no writable
// handle of the file is open and no truncate runs; opening for write waits
// for running fills. With every writable handle released the kernel holds
// no dirty page of the file (it writes them back before RELEASE).
//
// Thread safety: Run() drives a multi-threaded session loop; the handlers
// are safe to run concurrently. Mount() and Run() are called from one thread.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "blockstore/remote_block_store.h"
#include "blockstore/status.h"
#include "fs/filesystem.h"

struct fuse_session;  // libfuse

namespace enclavefs {

struct FuseMountOptions {
  std::string mountpoint;
  std::string volume;                      // shown as fsname=enclavefs:VOLUME
  std::vector<std::string> extra_options;  // user -o options, e.g. allow_other
  // false: the xattr handlers are not registered, so the kernel answers
  // ENOTSUP itself. With them, the kernel asks for security.capability on
  // every write(2) (libfuse 3.14 cannot negotiate HANDLE_KILLPRIV_V2).
  bool xattrs = false;
  // Percent of the kernel's dirty page limit this mount's page cache may
  // hold (enclave-mount/writeback.h); the kernel's default is 1.
  unsigned writeback_share = 50;
  // true: after answering a read smaller than a block, the rest of that
  // block goes into the kernel's page cache too (fuse_ops.cpp,
  // ReadAndFillBlock).
  bool block_fill = true;
  // true: serve requests over io_uring when the kernel offers it
  // (enclave-mount/fuse_uring.h); /dev/fuse otherwise.
  bool io_uring = true;
  std::chrono::seconds cache_timeout{3600};
  unsigned max_idle_threads = 10;
  unsigned max_threads = 16;
};

// The -o option string handed to libfuse: default_permissions, fsname,
// subtype, then the user's options in order. default_permissions (the
// kernel checks modes and owners) is left out only for a mount by root
// without allow_other or allow_root, where it can change nothing but the
// cost: the kernel then lets only root's processes in, root passes every
// mode check except exec, and the kernel checks exec of a regular file
// without it too. With it, every create and unlink costs the parent a
// GETATTR round trip (docs/performance.md). -o default_permissions asks
// for it anyway (for uid 0 processes without CAP_DAC_OVERRIDE).
std::string FuseOptionString(const FuseMountOptions& options,
                             bool mounted_by_root);

struct FuseState;  // the handlers' shared state, defined in fuse_ops.cpp
class FuseUring;

class FuseServer {
 public:
  // Creates the session and mounts it. InvalidArgument if libfuse rejects
  // the options, IOError if the mount itself fails (libfuse logs why). On
  // failure nothing is committed and the lease is dropped with `store`.
  static Result<std::unique_ptr<FuseServer>> Mount(
      std::unique_ptr<Filesystem> fs, std::shared_ptr<RemoteBlockStore> store,
      const FuseMountOptions& options);
  ~FuseServer();
  FuseServer(const FuseServer&) = delete;
  FuseServer& operator=(const FuseServer&) = delete;

  // Serves requests until the filesystem is unmounted or SIGTERM, SIGINT or
  // SIGHUP arrives; then unmounts, commits durably (the destroy handler:
  // Filesystem::Sync) and releases the lease (RemoteBlockStore::Close).
  // Returns the final commit's status; IOError if the session loop failed.
  Status Run();

 private:
  FuseServer(std::unique_ptr<FuseState> state, ::fuse_session* session);

  std::unique_ptr<FuseState> state_;
  ::fuse_session* session_;           // owned; null once Run() returned
  std::unique_ptr<FuseUring> uring_;  // null with --no-io-uring
  bool mounted_ = true;
  unsigned max_idle_threads_ = 10;
  unsigned max_threads_ = 16;
};

}  // namespace enclavefs
