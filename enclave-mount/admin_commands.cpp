// format, info, key add/remove/list, passwd and fsck: the subcommands that
// open a volume, do one thing and release it.
#include <unistd.h>

#include <cstdio>
#include <limits>
#include <set>

#include "blockstore/units.h"
#include "enclave-mount/commands.h"
#include "enclave-mount/fsck.h"
#include "fs/crypto.h"
#include "fs/filesystem.h"

namespace enclavefs {
namespace {

constexpr uint64_t kFsckProgressEvery = 4096;  // data blocks per progress line

KeyPrompt CurrentKeyPrompt() {
  return {PromptIfTerminal(Prompt::kOnce), "Passphrase", ""};
}
KeyPrompt NewKeyPrompt() {
  return {PromptIfTerminal(Prompt::kConfirm), "New passphrase", "new-"};
}

// Options of a one-shot open: no commit timer, nothing committed unless
// the command says so.
VolumeOptions OneShotOptions() {
  VolumeOptions options;
  options.commit_interval = std::chrono::milliseconds(0);
  return options;
}

// Resolves the current key and opens the leased volume.
Outcome Unlock(const CliOptions& o, LeasedVolume* volume) {
  KeySource source;
  Outcome resolved = ResolveKeySource(o.key, CurrentKeyPrompt(), &source);
  if (!resolved.ok()) return resolved;
  return OpenLeased(o.target, source, /*takeover=*/false, volume);
}

// Releases the lease; a failure only costs the host a lease timeout.
void Release(RemoteBlockStore& store) {
  Status closed = store.Close();
  if (!closed.ok())
    std::fprintf(stderr, "enclavefs: warning: %s\n", closed.message().c_str());
}

std::string DescribeSlot(const SlotInfo& slot) {
  std::string text = "slot " + std::to_string(slot.index) + ": " + slot.type;
  if (slot.type == "passphrase") {
    text += " (argon2id ops " + std::to_string(slot.opslimit) + ", memory " +
            HumanSize(slot.memlimit) + ")";
  }
  return text;
}

// Rewrites the header under the lease with `make(volume, &message)`, which
// returns the new header bytes and says what it did; prints that message.
// `new_key` is resolved first so both prompts come before any host work.
template <typename Make>
int RewriteSlots(const CliOptions& o, bool needs_new_key, Make make) {
  KeySource current;
  Outcome resolved = ResolveKeySource(o.key, CurrentKeyPrompt(), &current);
  KeySource new_key;
  if (resolved.ok() && needs_new_key) {
    resolved = ResolveKeySource(o.new_key, NewKeyPrompt(), &new_key);
  }
  if (!resolved.ok()) return Report(resolved);
  LeasedVolume volume;
  Outcome done = OpenLeased(o.target, current, /*takeover=*/false, &volume);
  if (!done.ok()) return Report(done);
  std::string message;
  Result<std::string> rewritten = make(volume, new_key, &message);
  done = rewritten.ok() ? RewriteHeader(volume, *rewritten)
                        : FailureAt(Step::kOther, rewritten.status());
  Release(*volume.store);
  if (!done.ok()) return Report(done);
  std::printf("%s\n", message.c_str());
  return 0;
}

// passwd without --slot: the only slot, or the only passphrase slot.
Result<int> DefaultPasswdSlot(const std::string& header) {
  EFS_ASSIGN_OR_RETURN(std::vector<SlotInfo> slots, ListKeySlots(header));
  std::vector<int> passphrase_slots;
  for (const SlotInfo& slot : slots) {
    if (slot.type == "passphrase") passphrase_slots.push_back(slot.index);
  }
  if (slots.size() == 1) return slots[0].index;
  if (passphrase_slots.size() == 1) return passphrase_slots[0];
  return Status::InvalidArgument(
      "the volume has several key slots: choose one with --slot");
}

}  // namespace

int RunFormat(const CliOptions& o) {
  FormatParams params;
  Result<CipherId> cipher = ParseCipherName(o.cipher);
  if (!cipher.ok())
    return Report(Outcome::Fail(ExitCode::kUsage, cipher.status().message()));
  params.cipher = *cipher;
  Result<uint64_t> block_size = ParseSize(o.block_size);
  if (!block_size.ok() || *block_size > std::numeric_limits<uint32_t>::max()) {
    return Report(Outcome::Fail(ExitCode::kUsage,
                                "invalid --block-size " + o.block_size));
  }
  params.block_size = static_cast<uint32_t>(*block_size);

  std::string existing;
  Outcome fetched = FetchHeader(o.target, &existing);
  if (fetched.ok()) {
    return Report(
        Outcome::Fail(ExitCode::kAlreadyFormatted,
                      "volume " + o.target.volume + " is already formatted"));
  }
  if (fetched.code != ExitCode::kNotFormatted) return Report(fetched);

  KeySource source;
  Outcome resolved = ResolveKeySource(
      o.key, {PromptIfTerminal(Prompt::kConfirm), "New passphrase", ""},
      &source);
  if (!resolved.ok()) return Report(resolved);
  auto created = CreateVolumeHeader(params, source);
  if (!created.ok()) return Report(FailureAt(Step::kUnlock, created.status()));
  auto& [header, keys] = *created;
  Result<HeaderInfo> info = DescribeHeader(header);
  if (!info.ok()) return Report(FailureAt(Step::kOther, info.status()));

  // The first OPEN with a token binds it to the volume on the host.
  LeasedVolume leased;
  Outcome lease = Lease(o.target, *keys, false, &leased.store);
  if (!lease.ok()) return Report(lease);
  Status formatted = Volume::Format(*leased.store, header, *keys);
  if (!formatted.ok()) {
    Release(*leased.store);
    return Report(FailureAt(Step::kOther, formatted));
  }
  leased.header = header;
  leased.keys = std::move(keys);
  std::unique_ptr<Volume> volume;
  Outcome opened = OpenVolume(leased, OneShotOptions(), &volume);
  Status done = opened.ok() ? Status::Ok() : Status::IOError(opened.message);
  if (opened.ok()) {
    // Creates (and commits) the root directory, owned by the caller.
    auto fs =
        Filesystem::Open(std::move(volume), leased.store, getuid(), getgid());
    done = fs.ok() ? (*fs)->Sync() : fs.status();
  }
  Release(*leased.store);
  if (!done.ok()) return Report(FailureAt(Step::kOther, done));
  std::printf("formatted volume %s\nuuid: %s\ncipher: %s\nblock size: %u\n",
              o.target.volume.c_str(), info->uuid.c_str(), info->cipher.c_str(),
              info->block_size);
  return 0;
}

int RunInfo(const CliOptions& o) {
  LeasedVolume leased;
  Outcome opened = Unlock(o, &leased);
  if (!opened.ok()) return Report(opened);
  Result<HeaderInfo> info = DescribeHeader(leased.header);
  Result<StoreStats> stats = leased.store->Stat();
  std::unique_ptr<Volume> volume;
  Outcome volume_opened = OpenVolume(leased, OneShotOptions(), &volume);
  if (!volume_opened.ok()) {
    Release(*leased.store);
    return Report(volume_opened);
  }
  const uint64_t generation = volume->generation();
  const std::string root_hash = volume->root_hash();
  volume.reset();
  Release(*leased.store);
  if (!info.ok()) return Report(FailureAt(Step::kOther, info.status()));
  if (!stats.ok()) return Report(FailureAt(Step::kOther, stats.status()));

  std::printf(
      "volume: %s\nformat version: %u\ncipher: %s\nblock size: %u\nnode size: "
      "%u\n"
      "uuid: %s\ngeneration: %llu\nroot hash: %s\n",
      o.target.volume.c_str(), info->format_version, info->cipher.c_str(),
      info->block_size, info->node_size, info->uuid.c_str(),
      static_cast<unsigned long long>(generation), root_hash.c_str());
  std::printf("used: %s in %llu blocks\nquota: %s\n",
              HumanSize(stats->used_bytes).c_str(),
              static_cast<unsigned long long>(stats->block_count),
              stats->quota_bytes == 0 ? "unlimited"
                                      : HumanSize(stats->quota_bytes).c_str());
  for (const SlotInfo& slot : info->slots)
    std::printf("key %s\n", DescribeSlot(slot).c_str());
  return 0;
}

int RunKeyList(const CliOptions& o) {
  std::string header;
  Outcome fetched = FetchHeader(o.target, &header);
  if (!fetched.ok()) return Report(fetched);
  Result<std::vector<SlotInfo>> slots = ListKeySlots(header);
  if (!slots.ok()) return Report(FailureAt(Step::kUnlock, slots.status()));
  for (const SlotInfo& slot : *slots)
    std::printf("%s\n", DescribeSlot(slot).c_str());
  return 0;
}

int RunKeyAdd(const CliOptions& o) {
  return RewriteSlots(
      o, true,
      [](LeasedVolume& v, const KeySource& new_key,
         std::string* message) -> Result<std::string> {
        EFS_ASSIGN_OR_RETURN(
            std::string header,
            AddKeySlot(v.header, *v.keys, new_key, PwhashCost::Default()));
        EFS_ASSIGN_OR_RETURN(std::vector<SlotInfo> before,
                             ListKeySlots(v.header));
        EFS_ASSIGN_OR_RETURN(std::vector<SlotInfo> after, ListKeySlots(header));
        std::set<int> old_slots;
        for (const SlotInfo& slot : before) old_slots.insert(slot.index);
        for (const SlotInfo& slot : after) {
          if (!old_slots.count(slot.index))
            *message = "added key " + DescribeSlot(slot);
        }
        return header;
      });
}

int RunKeyRemove(const CliOptions& o) {
  return RewriteSlots(o, false,
                      [&](LeasedVolume& v, const KeySource&,
                          std::string* message) -> Result<std::string> {
                        *message =
                            "removed key slot " + std::to_string(*o.slot);
                        return RemoveKeySlot(v.header, *v.keys, *o.slot);
                      });
}

int RunPasswd(const CliOptions& o) {
  return RewriteSlots(o, true,
                      [&](LeasedVolume& v, const KeySource& new_key,
                          std::string* message) -> Result<std::string> {
                        Result<int> slot = o.slot ? Result<int>(*o.slot)
                                                  : DefaultPasswdSlot(v.header);
                        if (!slot.ok()) return slot.status();
                        *message =
                            "replaced the key of slot " + std::to_string(*slot);
                        return ChangePassphrase(v.header, *v.keys, *slot,
                                                new_key, PwhashCost::Default());
                      });
}

int RunFsck(const CliOptions& o) {
  LeasedVolume leased;
  Outcome opened = Unlock(o, &leased);
  if (!opened.ok()) return Report(opened);
  std::unique_ptr<Volume> volume;
  Outcome volume_opened = OpenVolume(leased, OneShotOptions(), &volume);
  if (!volume_opened.ok()) {
    Release(*leased.store);
    return Report(volume_opened);
  }
  FsckOptions options;
  options.repair = o.repair;
  options.progress_every = kFsckProgressEvery;
  options.progress = [](uint64_t blocks, uint64_t files) {
    std::fprintf(stderr, "fsck: %llu data blocks checked in %llu files\n",
                 static_cast<unsigned long long>(blocks),
                 static_cast<unsigned long long>(files));
  };
  Result<FsckReport> report =
      CheckVolume(std::move(volume), leased.store, options);
  Release(*leased.store);
  if (!report.ok()) return Report(FailureAt(Step::kOther, report.status()));
  PrintFsckReport(*report, o.repair, stdout);
  return static_cast<int>(FsckExitCode(*report));
}

}  // namespace enclavefs
