// fsck: verifies a whole EnclaveFS volume and optionally repairs it.
//
// A check walks the committed tree once through Volume::ListUnreferenced
// (every node is loaded, so authenticated), then the directory tree from
// the root through the Filesystem, reading every stored data block of every
// regular file and every symlink target. Anything failing authentication is
// damage, reported per path; host blocks nothing references are counted
// (harmless: a crash between a commit and its cleanup leaves them).
//
// Without repair nothing is committed: the volume on the host is unchanged.
// With repair, every damaged file loses its directory entries and inode,
// the result is committed, and unreferenced blocks are deleted
// (Volume::CollectGarbage). A damaged directory or tree node cannot be
// repaired this way; it is reported and the exit code stays non-zero.
//
// Thread safety: one check at a time per volume; it owns the volume.
#pragma once

#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "blockstore/block_store.h"
#include "enclave-mount/exit_codes.h"
#include "fs/volume.h"

namespace enclavefs {

struct FsckOptions {
  bool repair = false;
  // Called every `progress_every` data blocks with (blocks, files) so far.
  uint64_t progress_every = 4096;
  std::function<void(uint64_t, uint64_t)> progress;
};

struct FsckDamage {
  std::string path;  // "/dir/file"
  uint64_t parent = 0;
  std::string name;
  uint64_t ino = 0;
  std::string what;         // e.g. "1 unreadable data block(s), first ..."
  bool repairable = false;  // a file: its entry and inode can go
  bool removed = false;     // repair removed the entry
};

struct FsckReport {
  uint64_t directories = 0;
  uint64_t files = 0;
  uint64_t symlinks = 0;
  uint64_t others = 0;       // fifos, sockets, devices
  uint64_t data_blocks = 0;  // data blocks read and verified
  std::vector<FsckDamage> damage;
  // Why the tree walk stopped, if a tree node failed verification.
  std::optional<std::string> tree_damage;
  uint64_t unreferenced_blocks = 0;
  uint64_t unreferenced_bytes = 0;  // keys + values, as the host counts
  uint64_t reclaimed_blocks = 0;    // repair only

  // True if damage is left that repair did not (or could not) remove.
  bool damaged() const;
};

// Checks `volume` (freshly opened, nothing uncommitted, its timer off) on
// `store`. Fails only when the check itself cannot proceed (host
// unreachable, root directory unreadable, a repair commit refused); damage
// found is in the report, not an error.
Result<FsckReport> CheckVolume(std::unique_ptr<Volume> volume,
                               std::shared_ptr<BlockStore> store,
                               const FsckOptions& options);

// Human-readable summary: one line per damaged path and per repair action,
// then the totals.
void PrintFsckReport(const FsckReport& report, bool repair, std::FILE* out);

// kOk when clean (unreferenced blocks alone are fine), kFailure when
// damage remains.
ExitCode FsckExitCode(const FsckReport& report);

}  // namespace enclavefs
