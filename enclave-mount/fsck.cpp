#include "enclave-mount/fsck.h"

#include <sys/stat.h>
#include <unistd.h>

#include <limits>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "blockstore/units.h"
#include "fs/filesystem.h"

namespace enclavefs {
namespace {

constexpr size_t kPage = 1024;

bool IsCorruption(const Status& s) {
  return s.code() == StatusCode::kCorruption;
}

std::string JoinPath(const std::string& dir, const std::string& name) {
  return dir == "/" ? "/" + name : dir + "/" + name;
}

Result<uint64_t> SumBlockBytes(BlockStore& store,
                               const std::vector<std::string>& keys) {
  uint64_t bytes = 0;
  for (size_t i = 0; i < keys.size(); i += kPage) {
    const size_t n = std::min(kPage, keys.size() - i);
    EFS_ASSIGN_OR_RETURN(GetResult got, store.Get(std::span<const std::string>(
                                            keys.data() + i, n)));
    for (size_t j = 0; j < n; ++j) {
      if (got[j]) bytes += keys[i + j].size() + got[j]->size();
    }
  }
  return bytes;
}

// Walks the directory tree, filling a report.
class Checker {
 public:
  Checker(Filesystem& fs, const FsckOptions& options, FsckReport& report)
      : fs_(fs), options_(options), report_(report) {}

  Status Walk() {
    Result<InodeAttr> root = fs_.GetAttr(kRootInode);
    if (!root.ok())
      return root.status().WithContext("root directory unreadable");
    std::vector<std::pair<uint64_t, std::string>> pending = {{kRootInode, "/"}};
    std::unordered_set<uint64_t> seen_dirs = {kRootInode};
    while (!pending.empty()) {
      auto [ino, path] = std::move(pending.back());
      pending.pop_back();
      ++report_.directories;
      uint64_t offset = 0;
      while (true) {
        Result<std::vector<DirEntry>> entries = fs_.ReadDir(ino, offset, kPage);
        if (!entries.ok()) {
          if (!IsCorruption(entries.status())) return entries.status();
          AddDamage(path, 0, "", ino,
                    "directory unreadable: " + entries.status().message(),
                    false);
          break;
        }
        if (entries->empty()) break;
        for (const DirEntry& entry : *entries) {
          const std::string child = JoinPath(path, entry.name);
          const uint32_t mode = entry.attr.mode;
          if (S_ISDIR(mode)) {
            if (seen_dirs.insert(entry.attr.ino).second) {
              pending.emplace_back(entry.attr.ino, child);
            }
          } else if (S_ISREG(mode)) {
            EFS_RETURN_IF_ERROR(VisitFile(ino, entry, child));
          } else if (S_ISLNK(mode)) {
            ++report_.symlinks;
            Result<std::string> target = fs_.Readlink(entry.attr.ino);
            if (!target.ok()) {
              if (!IsCorruption(target.status())) return target.status();
              AddDamage(child, ino, entry.name, entry.attr.ino,
                        "symlink unreadable: " + target.status().message(),
                        true);
            }
          } else {
            ++report_.others;
          }
        }
        offset = entries->back().next_offset;
      }
    }
    return Status::Ok();
  }

 private:
  Status VisitFile(uint64_t parent, const DirEntry& entry,
                   const std::string& path) {
    auto [it, first_visit] = checked_.try_emplace(entry.attr.ino);
    if (first_visit) {
      ++report_.files;
      EFS_ASSIGN_OR_RETURN(it->second, CheckData(entry.attr.ino));
    }
    // Hard links: every path naming a damaged inode is reported.
    if (it->second)
      AddDamage(path, parent, entry.name, entry.attr.ino, *it->second, true);
    return Status::Ok();
  }

  // Reads every stored block of `ino`; returns what was damaged, if any.
  Result<std::optional<std::string>> CheckData(uint64_t ino) {
    Volume& volume = fs_.volume();
    constexpr uint64_t kEnd = std::numeric_limits<uint64_t>::max();
    uint64_t next = 0;
    uint64_t bad = 0;
    std::string first;
    while (true) {
      Result<std::vector<uint64_t>> indices =
          volume.ListData(ino, next, kEnd, kPage);
      if (!indices.ok()) {
        if (!IsCorruption(indices.status())) return indices.status();
        return std::optional<std::string>("block list unreadable: " +
                                          indices.status().message());
      }
      if (indices->empty()) break;
      for (uint64_t index : *indices) {
        Result<std::optional<std::string>> data = volume.ReadData(ino, index);
        if (!data.ok()) {
          if (!IsCorruption(data.status())) return data.status();
          if (bad++ == 0) {
            first = "block " + std::to_string(index) + ": " +
                    data.status().message();
          }
        }
        CountBlock();
      }
      if (indices->back() == kEnd) break;
      next = indices->back() + 1;
    }
    if (bad == 0) return std::optional<std::string>();
    return std::optional<std::string>(
        std::to_string(bad) + " unreadable data block(s), first " + first);
  }

  void CountBlock() {
    ++report_.data_blocks;
    if (options_.progress && options_.progress_every > 0 &&
        report_.data_blocks % options_.progress_every == 0) {
      options_.progress(report_.data_blocks, report_.files);
    }
  }

  void AddDamage(std::string path, uint64_t parent, std::string name,
                 uint64_t ino, std::string what, bool repairable) {
    FsckDamage damage;
    damage.path = std::move(path);
    damage.parent = parent;
    damage.name = std::move(name);
    damage.ino = ino;
    damage.what = std::move(what);
    damage.repairable = repairable;
    report_.damage.push_back(std::move(damage));
  }

  Filesystem& fs_;
  const FsckOptions& options_;
  FsckReport& report_;
  // Inode -> damage description (nullopt: intact), so hard links are read once.
  std::unordered_map<uint64_t, std::optional<std::string>> checked_;
};

// Removes every repairable damaged entry, commits, reclaims garbage.
Status Repair(Filesystem& fs, FsckReport& report) {
  for (FsckDamage& damage : report.damage) {
    if (!damage.repairable) continue;
    Status s = fs.Unlink(damage.parent, damage.name);
    // Frees the inode once its last damaged name is gone.
    if (s.ok()) s = fs.Forget(damage.ino);
    if (s.ok()) {
      damage.removed = true;
    } else {
      damage.what += " (removal failed: " + s.message() + ")";
    }
  }
  EFS_RETURN_IF_ERROR(fs.Sync());
  // A damaged tree would make the reachability walk fail: keep everything.
  if (report.tree_damage) return Status::Ok();
  EFS_ASSIGN_OR_RETURN(GcReport gc, fs.volume().CollectGarbage());
  report.reclaimed_blocks = gc.deleted_blocks;
  return Status::Ok();
}

}  // namespace

bool FsckReport::damaged() const {
  if (tree_damage) return true;
  for (const FsckDamage& d : damage) {
    if (!d.removed) return true;
  }
  return false;
}

Result<FsckReport> CheckVolume(std::unique_ptr<Volume> volume,
                               std::shared_ptr<BlockStore> store,
                               const FsckOptions& options) {
  FsckReport report;
  // Before the Filesystem opens: it may free orphans, leaving changes
  // uncommitted, and the walk needs a clean tree.
  Result<std::vector<std::string>> unreferenced = volume->ListUnreferenced();
  if (unreferenced.ok()) {
    report.unreferenced_blocks = unreferenced->size();
    EFS_ASSIGN_OR_RETURN(report.unreferenced_bytes,
                         SumBlockBytes(*store, *unreferenced));
  } else if (IsCorruption(unreferenced.status())) {
    report.tree_damage = unreferenced.status().message();
  } else {
    return unreferenced.status();
  }

  EFS_ASSIGN_OR_RETURN(
      std::unique_ptr<Filesystem> fs,
      Filesystem::Open(std::move(volume), store, getuid(), getgid()));
  Checker checker(*fs, options, report);
  EFS_RETURN_IF_ERROR(checker.Walk());
  if (options.repair) EFS_RETURN_IF_ERROR(Repair(*fs, report));
  return report;
}

void PrintFsckReport(const FsckReport& report, bool repair, std::FILE* out) {
  if (report.tree_damage) {
    std::fprintf(out, "DAMAGED tree: %s\n", report.tree_damage->c_str());
  }
  for (const FsckDamage& d : report.damage) {
    std::fprintf(out, "DAMAGED %s (inode %llu): %s\n", d.path.c_str(),
                 static_cast<unsigned long long>(d.ino), d.what.c_str());
    if (d.removed) std::fprintf(out, "removed %s\n", d.path.c_str());
  }
  std::fprintf(
      out,
      "checked %llu directories, %llu files, %llu symlinks, %llu other, "
      "%llu data blocks\n",
      static_cast<unsigned long long>(report.directories),
      static_cast<unsigned long long>(report.files),
      static_cast<unsigned long long>(report.symlinks),
      static_cast<unsigned long long>(report.others),
      static_cast<unsigned long long>(report.data_blocks));
  if (report.unreferenced_blocks > 0) {
    std::fprintf(out, "%llu unreferenced host blocks (%s)%s\n",
                 static_cast<unsigned long long>(report.unreferenced_blocks),
                 HumanSize(report.unreferenced_bytes).c_str(),
                 repair ? "" : ": harmless; --repair reclaims them");
  }
  if (repair) {
    std::fprintf(out, "reclaimed %llu unreferenced host blocks\n",
                 static_cast<unsigned long long>(report.reclaimed_blocks));
  }
  std::fprintf(out, "%s\n",
               report.damaged() ? "volume is DAMAGED" : "volume is clean");
}

ExitCode FsckExitCode(const FsckReport& report) {
  return report.damaged() ? ExitCode::kFailure : ExitCode::kOk;
}

}  // namespace enclavefs
