#include "fs/volume.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <functional>
#include <future>
#include <latch>
#include <numeric>
#include <thread>

#include "tests/fs/volume_test_env.h"

namespace enclavefs::testing {
namespace {

// Defaults to a full block of SmallParams(): blocks hold the whole size.
std::string Block(char fill, size_t size = 4096) {
  return std::string(size, fill);
}

std::optional<std::string> MustRead(Volume& volume, uint64_t file,
                                    uint64_t index) {
  auto got = volume.ReadData(file, index);
  EXPECT_TRUE(got.ok()) << got.status().ToString();
  return got.ok() ? *got : std::nullopt;
}

std::optional<std::string> MustGet(Volume& volume, std::string_view key) {
  auto got = volume.Get(key);
  EXPECT_TRUE(got.ok()) << got.status().ToString();
  return got.ok() ? *got : std::nullopt;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST(VolumeTest,
     givenFreshStore_whenFormattedAndOpened_thenVolumeIsEmptyAtGenerationOne) {
  VolumeEnv env;
  auto volume = env.MustOpen();
  ASSERT_NE(volume, nullptr);
  EXPECT_EQ(volume->generation(), 1u);
  EXPECT_EQ(volume->root_hash().size(), 64u);
  EXPECT_EQ(MustGet(*volume, "anything"), std::nullopt);
  EXPECT_EQ(MustRead(*volume, 1, 0), std::nullopt);
  auto all = volume->Scan("", "", 100);
  ASSERT_TRUE(all.ok());
  EXPECT_TRUE(all->empty());
}

TEST(
    VolumeTest,
    givenFormattedVolume_whenFormattedAgain_thenAlreadyExistsAndNothingChanges) {
  VolumeEnv env;
  auto before = env.store().Snapshot();
  auto created = CreateVolumeHeader(SmallParams(), TestKeySource());
  ASSERT_TRUE(created.ok());
  Status again = Volume::Format(env.store(), created->first, *created->second);
  EXPECT_EQ(again.code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(again.message(), "volume is already formatted");
  EXPECT_EQ(env.store().Snapshot(), before);
}

TEST(VolumeTest, givenEmptyStore_whenOpened_thenNotFound) {
  auto store = std::make_shared<TamperingBlockStore>();
  VolumeEnv env;
  auto volume = Volume::Open(store, env.Keys(), ManualOptions());
  EXPECT_EQ(volume.status().code(), StatusCode::kNotFound);
}

TEST(
    VolumeTest,
    givenCommittedChanges_whenReopened_thenTheyAreThereAndUncommittedOnesAreNot) {
  VolumeEnv env;
  {
    auto volume = env.MustOpen();
    ASSERT_TRUE(volume->Put("a", "1").ok());
    ASSERT_TRUE(volume->Put("b", "2").ok());
    ASSERT_TRUE(volume->WriteData(7, 0, "hello").ok());
    ASSERT_TRUE(volume->Commit(true).ok());
    EXPECT_EQ(volume->generation(), 2u);
    ASSERT_TRUE(volume->Put("c", "3").ok());
    ASSERT_TRUE(volume->Delete("a").ok());
    ASSERT_TRUE(volume->WriteData(7, 1, "lost").ok());
    EXPECT_EQ(MustGet(*volume, "c"), "3");
  }  // dropped without commit: a crash
  auto volume = env.MustOpen();
  EXPECT_EQ(volume->generation(), 2u);
  EXPECT_EQ(MustGet(*volume, "a"), "1");
  EXPECT_EQ(MustGet(*volume, "b"), "2");
  EXPECT_EQ(MustGet(*volume, "c"), std::nullopt);
  EXPECT_EQ(MustRead(*volume, 7, 0), "hello");
  EXPECT_EQ(MustRead(*volume, 7, 1), std::nullopt);
}

TEST(VolumeTest, givenNothingChanged_whenCommitted_thenGenerationStays) {
  VolumeEnv env;
  auto volume = env.MustOpen();
  ASSERT_TRUE(volume->Commit(true).ok());
  EXPECT_EQ(volume->generation(), 1u);
}

TEST(VolumeTest,
     givenReservedOrOversizedInput_whenWritten_thenInvalidArgument) {
  VolumeEnv env;
  auto volume = env.MustOpen();
  EXPECT_EQ(volume->Put(std::string(1, '\xe0') + "x", "v").code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(volume->Put("", "v").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(volume->Put(std::string(513, 'k'), "v").code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(
      volume->Put("k", std::string(volume->max_value_size() + 1, 'v')).code(),
      StatusCode::kInvalidArgument);
  EXPECT_EQ(
      volume->WriteData(1, 0, Block('x', volume->block_size() + 1)).code(),
      StatusCode::kInvalidArgument);
  EXPECT_EQ(volume->Get(std::string(1, '\x80')).status().code(),
            StatusCode::kInvalidArgument);
}

TEST(VolumeTest, givenScanRange_whenPaged_thenOnlyCallerKeysInOrder) {
  VolumeEnv env;
  auto volume = env.MustOpen();
  for (char c = 'a'; c <= 'z'; ++c)
    ASSERT_TRUE(volume->Put(std::string("d/") + c, "v").ok());
  ASSERT_TRUE(volume->Put("e", "outside").ok());
  ASSERT_TRUE(volume->WriteData(1, 0, "extent keys must not show up").ok());
  std::string start = "d/";
  std::string seen;
  while (true) {
    auto page = volume->Scan(start, "d0", 5);
    ASSERT_TRUE(page.ok());
    if (page->empty()) break;
    for (const auto& [key, value] : *page) seen += key.substr(2);
    start = page->back().first + '\0';
  }
  EXPECT_EQ(seen, "abcdefghijklmnopqrstuvwxyz");
  auto everything = volume->Scan("", "", 1000);
  ASSERT_TRUE(everything.ok());
  EXPECT_EQ(everything->size(), 27u);
}

TEST(VolumeTest,
     givenPatches_whenCommittedAndReopened_thenBytesMergeIntoBlock) {
  VolumeEnv env;
  auto volume = env.MustOpen();
  ASSERT_TRUE(volume->WriteData(3, 0, Block('a')).ok());
  ASSERT_TRUE(volume->Commit(false).ok());
  // A committed block, a pending one, and a hole all take patches.
  ASSERT_TRUE(volume->PatchData(3, 0, 10, "xyz").ok());
  const size_t dirty_after_first_patch = volume->dirty_bytes();
  // A pending block takes further patches in place: no new dirty state.
  ASSERT_TRUE(volume->PatchData(3, 0, 4090, "end!!!").ok());
  EXPECT_EQ(volume->dirty_bytes(), dirty_after_first_patch);
  ASSERT_TRUE(volume->PatchData(3, 1, 5, "gap").ok());
  ASSERT_TRUE(volume->PatchData(3, 1, 0, "at").ok());
  ASSERT_TRUE(volume->Commit(false).ok());
  volume = env.MustOpen();
  std::string expected = Block('a');
  expected.replace(10, 3, "xyz");
  expected.replace(4090, 6, "end!!!");
  EXPECT_EQ(MustRead(*volume, 3, 0), expected);
  EXPECT_EQ(MustRead(*volume, 3, 1), std::string("at\0\0\0gap", 8));
  EXPECT_EQ(env.DataKeys().size(), 2u);  // the superseded block was deleted
}

// Polls `done` for up to 10 s: a bound for background work, not a timing
// assertion.
bool Eventually(const std::function<bool()>& done) {
  for (int i = 0; i < 1000 && !done(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return done();
}

// Write-behind at four 4 KiB blocks: storing starts once more than four
// blocks are pending and goes down to two.
VolumeOptions SmallWriteBehind() {
  VolumeOptions options = ManualOptions();
  options.write_behind_bytes = 4 * 4096;
  return options;
}

// Writes blocks 0..19 of file 7 (block i filled by fill(i)), then waits until
// the uploader has stored all but at most four: writes that stop at or under
// the threshold wake no upload, so up to four may stay pending.
void WriteTwentyBlocksAndAwaitUpload(
    VolumeEnv& env, Volume& volume, const std::function<char(uint64_t)>& fill) {
  for (uint64_t i = 0; i < 20; ++i) {
    ASSERT_TRUE(volume.WriteData(7, i, Block(fill(i))).ok());
  }
  ASSERT_TRUE(Eventually([&] { return env.DataKeys().size() >= 16; }));
}

TEST(VolumeTest,
     givenWriteBehind_whenPendingDataPassesIt_thenBlocksReachHostBeforeCommit) {
  VolumeEnv env;
  auto volume = env.MustOpen(SmallWriteBehind());
  const uint64_t generation = volume->generation();
  // Stored without a commit.
  WriteTwentyBlocksAndAwaitUpload(
      env, *volume, [](uint64_t i) { return static_cast<char>('a' + i); });
  EXPECT_EQ(volume->generation(), generation);
  for (uint64_t i = 0; i < 20; ++i) {
    EXPECT_EQ(MustRead(*volume, 7, i), Block(static_cast<char>('a' + i)));
  }
  ASSERT_TRUE(volume->Commit(false).ok());
  volume = env.MustOpen(ManualOptions());
  for (uint64_t i = 0; i < 20; ++i) {
    EXPECT_EQ(MustRead(*volume, 7, i), Block(static_cast<char>('a' + i)));
  }
  EXPECT_EQ(env.DataKeys().size(), 20u);
}

TEST(VolumeTest,
     givenUploadedBlocksRewritten_whenCommitted_thenHostHoldsOnlyLiveBlocks) {
  VolumeEnv env;
  auto volume = env.MustOpen(SmallWriteBehind());
  WriteTwentyBlocksAndAwaitUpload(env, *volume, [](uint64_t) { return 'x'; });
  for (uint64_t i = 0; i < 20; ++i) {
    ASSERT_TRUE(volume->PatchData(7, i, 100, "new").ok());
  }
  ASSERT_TRUE(volume->DeleteData(7, 15).ok());
  ASSERT_TRUE(volume->Commit(true).ok());
  std::string expected = Block('x');
  expected.replace(100, 3, "new");
  volume = env.MustOpen(ManualOptions());
  for (uint64_t i = 0; i < 15; ++i)
    EXPECT_EQ(MustRead(*volume, 7, i), expected);
  EXPECT_EQ(MustRead(*volume, 7, 15), std::nullopt);
  // Superseded copies are deleted by the commit or by the uploader itself.
  EXPECT_TRUE(Eventually([&] { return env.DataKeys().size() == 15; }))
      << env.DataKeys().size();
  auto unreferenced = volume->ListUnreferenced();
  ASSERT_TRUE(unreferenced.ok());
  EXPECT_TRUE(unreferenced->empty());
}

TEST(
    VolumeTest,
    givenUploadedBlocksAndNoCommit_whenReopened_thenOldStateAndGarbageIsCollected) {
  VolumeEnv env;
  {
    auto volume = env.MustOpen(SmallWriteBehind());
    WriteTwentyBlocksAndAwaitUpload(env, *volume, [](uint64_t) { return 'y'; });
  }  // dropped without a commit: a crash
  auto volume = env.MustOpen(ManualOptions());
  EXPECT_EQ(volume->generation(), 1u);
  EXPECT_EQ(MustRead(*volume, 7, 0), std::nullopt);
  auto report = volume->CollectGarbage();
  ASSERT_TRUE(report.ok());
  EXPECT_GE(report->deleted_blocks, 16u);
  EXPECT_TRUE(env.DataKeys().empty());
}

TEST(VolumeTest,
     givenStoredUncachedBlock_whenPatched_thenFetchedOnceAndMerged) {
  VolumeEnv env;
  {
    auto volume = env.MustOpen();
    ASSERT_TRUE(volume->WriteData(3, 0, Block('s')).ok());
    ASSERT_TRUE(volume->Commit(false).ok());
  }
  auto volume = env.MustOpen();                    // cold cache
  ASSERT_TRUE(volume->ListData(3, 0, 1, 1).ok());  // tree nodes only
  env.store().ResetCounters();
  ASSERT_TRUE(volume->PatchData(3, 0, 1, "patched").ok());
  EXPECT_EQ(env.store().get_batch_sizes(), std::vector<size_t>{1});
  std::string expected = Block('s');
  expected.replace(1, 7, "patched");
  EXPECT_EQ(MustRead(*volume, 3, 0), expected);
}

TEST(VolumeTest, givenPatchPastBlockEnd_whenWritten_thenInvalidArgument) {
  VolumeEnv env;
  auto volume = env.MustOpen();
  EXPECT_EQ(volume->PatchData(3, 0, 4095, "ab").code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(volume->PatchData(3, 0, 4097, "").code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(MustRead(*volume, 3, 0), std::nullopt);
}

TEST(VolumeTest, givenShortBlockAndHole_whenSliced_thenZerosFillTheRange) {
  VolumeEnv env;
  auto volume = env.MustOpen();
  ASSERT_TRUE(volume->WriteData(3, 0, "abcdef").ok());
  ASSERT_TRUE(volume->Commit(false).ok());
  Result<DataSlice> stored = volume->SliceData(3, 0, 2, 9);
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->bytes, "cdef");
  EXPECT_EQ(stored->zeros, 3u);
  Result<DataSlice> past = volume->SliceData(3, 0, 7, 9);  // past its bytes
  ASSERT_TRUE(past.ok());
  EXPECT_TRUE(past->bytes.empty());
  EXPECT_EQ(past->zeros, 2u);
  Result<DataSlice> hole = volume->SliceData(3, 7, 0, 3);
  ASSERT_TRUE(hole.ok());
  EXPECT_EQ(hole->owner, nullptr);
  EXPECT_TRUE(hole->bytes.empty());
  EXPECT_EQ(hole->zeros, 3u);
}

TEST(VolumeTest,
     givenSliceOfPendingBlock_whenBlockIsPatched_thenSliceKeepsOldBytes) {
  VolumeEnv env;
  auto volume = env.MustOpen();
  ASSERT_TRUE(volume->WriteData(3, 0, "abcdef").ok());  // pending, not sealed
  Result<DataSlice> slice = volume->SliceData(3, 0, 0, 6);
  ASSERT_TRUE(slice.ok());
  ASSERT_TRUE(volume->PatchData(3, 0, 0, "XY").ok());
  EXPECT_EQ(slice->bytes, "abcdef");
  EXPECT_EQ(MustRead(*volume, 3, 0), std::optional<std::string>("XYcdef"));
}

TEST(VolumeTest, givenSliceOfStoredBlock_whenCached_thenPlaintextIsShared) {
  VolumeEnv env;
  auto volume = env.MustOpen();
  ASSERT_TRUE(volume->WriteData(3, 0, "abcdef").ok());
  ASSERT_TRUE(volume->Commit(false).ok());
  Result<DataSlice> first = volume->SliceData(3, 0, 1, 3);
  Result<DataSlice> second = volume->SliceData(3, 0, 2, 5);
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(first->bytes, "bc");
  EXPECT_EQ(second->bytes, "cde");
  // Both point into the one cached plaintext: nothing was copied.
  EXPECT_EQ(first->owner, second->owner);
  EXPECT_EQ(first->bytes.data() + 1, second->bytes.data());
}

TEST(VolumeTest,
     givenBlocksFromWritesOnly_whenCommitted_thenOnlyPatchedStoredStayCached) {
  VolumeEnv env;
  auto volume = env.MustOpen();
  ASSERT_TRUE(volume->WriteData(7, 0, Block('s')).ok());
  ASSERT_TRUE(volume->Commit(false).ok());
  // Block 0 now patched over its stored bytes; block 1 written whole and
  // patched while pending; block 2 (a small file's only block) patched
  // into a hole twice, nothing loaded from the store.
  ASSERT_TRUE(volume->PatchData(7, 0, 1, "ab").ok());
  ASSERT_TRUE(volume->WriteData(7, 1, Block('w')).ok());
  ASSERT_TRUE(volume->PatchData(7, 1, 1, "xy").ok());
  ASSERT_TRUE(volume->PatchData(7, 2, 0, "part").ok());
  ASSERT_TRUE(volume->PatchData(7, 2, 4, "+tail").ok());
  ASSERT_TRUE(volume->Commit(false).ok());
  env.store().ResetCounters();
  std::string patched = Block('s');
  patched.replace(1, 2, "ab");
  EXPECT_EQ(MustRead(*volume, 7, 0), patched);
  EXPECT_EQ(env.store().get_keys(), 0u) << "a patched stored block was cached";
  std::string written = Block('w');
  written.replace(1, 2, "xy");
  EXPECT_EQ(MustRead(*volume, 7, 1), written);
  EXPECT_EQ(MustRead(*volume, 7, 2), "part+tail");
  EXPECT_EQ(env.store().get_keys(), 2u)
      << "a block made of writes only stayed cached";
}

TEST(VolumeTest, givenDataBlocks_whenOverwrittenAndTruncated_thenReadsFollow) {
  VolumeEnv env;
  auto volume = env.MustOpen();
  for (uint64_t i = 0; i < 10; ++i) {
    ASSERT_TRUE(
        volume->WriteData(3, i, Block(static_cast<char>('a' + i))).ok());
  }
  ASSERT_TRUE(volume->WriteData(4, 0, "other file").ok());
  ASSERT_TRUE(volume->Commit(false).ok());
  ASSERT_TRUE(volume->WriteData(3, 2, "short").ok());
  ASSERT_TRUE(volume->DeleteData(3, 5).ok());
  ASSERT_TRUE(volume->Commit(false).ok());
  volume = env.MustOpen();
  EXPECT_EQ(MustRead(*volume, 3, 0), Block('a'));
  EXPECT_EQ(MustRead(*volume, 3, 2), "short");
  EXPECT_EQ(MustRead(*volume, 3, 4), Block('e'));
  for (uint64_t i = 5; i < 10; ++i)
    EXPECT_EQ(MustRead(*volume, 3, i), std::nullopt);
  EXPECT_EQ(MustRead(*volume, 4, 0), "other file");
  EXPECT_EQ(env.DataKeys().size(), 6u);  // superseded blocks were deleted
  auto listed = volume->ListData(3, 1, 100, 100);
  ASSERT_TRUE(listed.ok());
  EXPECT_EQ(*listed, (std::vector<uint64_t>{1, 2, 3, 4}));
  EXPECT_EQ(volume->block_size(), SmallParams().block_size);
}

TEST(VolumeTest, givenFencedStore_whenCommitFails_thenReadOnlyWithoutRetries) {
  VolumeEnv env;
  auto volume = env.MustOpen();
  ASSERT_TRUE(volume->Put("k", "v").ok());
  env.store().FailCommits(Status::Fenced("the host lost commits in a crash"));
  const size_t before = env.store().commit_calls();
  Status fenced = volume->Commit(true);
  EXPECT_EQ(fenced.code(), StatusCode::kFenced);
  EXPECT_NE(fenced.message().find("read-only"), std::string::npos)
      << fenced.message();
  const size_t tried = env.store().commit_calls();
  EXPECT_GT(tried, before);
  // Read-only from now on, and the store is not asked again.
  EXPECT_EQ(volume->Put("x", "y").code(), StatusCode::kFenced);
  EXPECT_EQ(volume->Commit(true).code(), StatusCode::kFenced);
  EXPECT_EQ(env.store().commit_calls(), tried);
}

// A commit the quota stops part way leaves the batches it stored on the
// host. Deleting their file must free them there, or the room stays taken.
TEST(VolumeTest,
     givenCommitStoppedByQuota_whenItsFileIsDeleted_thenTheRoomComesBack) {
  VolumeEnv env(SmallParams(), 10u << 20);
  VolumeOptions options = ManualOptions();
  options.write_behind_bytes = 0;
  auto volume = env.MustOpen(options);
  // 12 MiB in two upload batches (8 and 4 MiB): one fits, the other not.
  for (uint64_t i = 0; i < 3072; ++i) {
    ASSERT_TRUE(volume->WriteData(7, i, Block('a')).ok());
  }
  EXPECT_EQ(volume->Commit(true).code(), StatusCode::kQuotaExceeded);
  EXPECT_FALSE(env.DataKeys().empty());
  ASSERT_TRUE(volume->DeleteData(7, 0).ok());
  ASSERT_TRUE(volume->Commit(true).ok());
  EXPECT_TRUE(env.DataKeys().empty());
  // The whole quota is free again: 8 MiB of another file fit.
  for (uint64_t i = 0; i < 2048; ++i) {
    ASSERT_TRUE(volume->WriteData(8, i, Block('b')).ok());
  }
  EXPECT_TRUE(volume->Commit(true).ok());
  EXPECT_EQ(env.DataKeys().size(), 2048u);
}

// A volume whose commits land at a 256 KiB dirty limit, without write-behind.
VolumeOptions SmallDirtyLimit() {
  VolumeOptions options = ManualOptions();
  options.write_behind_bytes = 0;
  options.dirty_limit_bytes = 256u << 10;
  return options;
}

// Writes blocks of `file` until a write fails (the dirty-limit commit it ran
// failed); returns that failure, Ok if 1024 blocks all went in.
Status WriteUntilFailure(Volume& volume, uint64_t file) {
  Status written;
  for (uint64_t i = 0; i < 1024 && written.ok(); ++i) {
    written = volume.WriteData(file, i, Block('a'));
  }
  return written;
}

// A full volume refuses more data up front, stops asking the host until
// something is freed, and takes writes again once a commit fits.
TEST(
    VolumeTest,
    givenQuotaReached_whenWritingAndDeleting_thenRoomIsCheckedUntilACommitFits) {
  VolumeEnv env(SmallParams(), 1u << 20);
  auto volume = env.MustOpen(SmallDirtyLimit());
  EXPECT_TRUE(volume->CheckRoom().ok());
  const Status written = WriteUntilFailure(*volume, 1);
  ASSERT_EQ(written.code(), StatusCode::kQuotaExceeded) << written.ToString();
  EXPECT_EQ(volume->CheckRoom().code(), StatusCode::kQuotaExceeded);
  const size_t asked = env.store().commit_calls();
  ASSERT_TRUE(volume->Put("k", "v").ok());
  EXPECT_EQ(env.store().commit_calls(), asked);
  ASSERT_TRUE(volume->DeleteData(1, 0).ok());
  ASSERT_TRUE(volume->Commit(true).ok());
  EXPECT_TRUE(volume->CheckRoom().ok());
  EXPECT_TRUE(env.DataKeys().empty());
  ASSERT_TRUE(volume->WriteData(2, 0, Block('b')).ok());
  EXPECT_TRUE(volume->Commit(true).ok());
}

// A host out of reach stalls commits: the volume stops taking data past its
// limit at once, instead of retrying a commit in every write, and takes it
// again once a commit lands.
TEST(VolumeTest,
     givenUnreachableHost_whenWriting_thenDataStopsUntilACommitLands) {
  VolumeEnv env;
  auto volume = env.MustOpen(SmallDirtyLimit());
  env.store().FailCommits(Status::Unavailable("cannot reach the host"));
  const Status written = WriteUntilFailure(*volume, 1);
  ASSERT_EQ(written.code(), StatusCode::kUnavailable) << written.ToString();
  EXPECT_EQ(volume->CheckRoom().code(), StatusCode::kUnavailable);
  const size_t asked = env.store().commit_calls();
  ASSERT_TRUE(volume->DeleteData(1, 0).ok());
  ASSERT_TRUE(volume->Put("k", "v").ok());
  EXPECT_EQ(env.store().commit_calls(), asked);
  env.store().FailCommits(Status::Ok());
  ASSERT_TRUE(volume->Commit(true).ok());
  EXPECT_TRUE(volume->CheckRoom().ok());
  EXPECT_EQ(MustGet(*volume, "k"), "v");
}

// What happened while a commit was held inside the store: whether the
// commit got that far, and whether a read of "k" meanwhile had to wait.
struct ReadDuringStall {
  bool reached = false;
  bool read_waited = true;
  std::optional<std::string> read;
};

// Sets a store hook that calls the function it is given where the store
// should stall, or removes it when given nullptr.
using StallHook = std::function<void(std::function<void()>)>;

// Runs `commit` on another thread with the hook `install` sets: its stalls
// block until the read of "k" has finished or waited 2 s.
ReadDuringStall ReadWhileStoreStalls(Volume& volume, const StallHook& install,
                                     const std::function<void()>& commit) {
  std::promise<void> reached, release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<bool> first{true};
  install([&] {
    if (first.exchange(false)) reached.set_value();
    released.wait();
  });
  auto committing = std::async(std::launch::async, commit);
  ReadDuringStall out;
  out.reached = reached.get_future().wait_for(std::chrono::seconds(10)) ==
                std::future_status::ready;
  std::future<Result<std::optional<std::string>>> read;
  if (out.reached) {
    read = std::async(std::launch::async, [&] { return volume.Get("k"); });
    out.read_waited =
        read.wait_for(std::chrono::seconds(2)) != std::future_status::ready;
  }
  release.set_value();
  if (read.valid()) {
    auto value = read.get();
    EXPECT_TRUE(value.ok()) << value.status().ToString();
    if (value.ok()) out.read = *value;
  }
  committing.get();
  install(nullptr);
  return out;
}

// The store is unreachable, and each reconnect stalls before it fails.
StallHook StalledReconnects(VolumeEnv& env) {
  return [&env](std::function<void()> stall) {
    if (!stall) return env.store().SetUnreachable(nullptr);
    env.store().SetUnreachable([stall] {
      stall();
      return Status::Unavailable("cannot reconnect to the host");
    });
  };
}

// A commit restores a lost connection before it takes the volume's lock: a
// reconnect can take 30 s, and readers, also of data the volume holds, must
// not wait for it. With nothing to commit it does not ask at all.
TEST(VolumeTest, givenLostConnection_whenCommitting_thenReadsDoNotWait) {
  VolumeEnv env;
  auto volume = env.MustOpen();
  ASSERT_TRUE(volume->Commit(true).ok());
  env.store().SetUnreachable([] { return Status::Unavailable("gone"); });
  EXPECT_TRUE(volume->Commit(true).ok());
  env.store().SetUnreachable(nullptr);
  ASSERT_TRUE(volume->Put("k", "v").ok());
  const size_t commits_before = env.store().commit_calls();

  Status committed;
  const ReadDuringStall seen =
      ReadWhileStoreStalls(*volume, StalledReconnects(env),
                           [&] { committed = volume->Commit(true); });

  ASSERT_TRUE(seen.reached);
  EXPECT_FALSE(seen.read_waited) << "a read waited for the reconnect";
  EXPECT_EQ(seen.read, "v");
  EXPECT_EQ(committed.code(), StatusCode::kUnavailable);
  EXPECT_EQ(env.store().commit_calls(), commits_before);
  ASSERT_TRUE(volume->Commit(true).ok());
  EXPECT_TRUE(volume->CheckRoom().ok());
}

// The same for the dirty-limit commit that the end of an Operation runs.
TEST(VolumeTest,
     givenLostConnection_whenDeferredCommitRuns_thenReadsDoNotWait) {
  VolumeEnv env;
  auto volume = env.MustOpen(SmallDirtyLimit());
  ASSERT_TRUE(volume->Put("k", "v").ok());
  ASSERT_TRUE(volume->Commit(true).ok());
  const size_t commits_before = env.store().commit_calls();

  const ReadDuringStall seen =
      ReadWhileStoreStalls(*volume, StalledReconnects(env), [&] {
        Volume::Operation op = volume->BeginOperation();
        for (uint64_t i = 0; i < 80; ++i) {
          ASSERT_TRUE(volume->WriteData(1, i, Block('a')).ok());
        }
      });

  ASSERT_TRUE(seen.reached);
  EXPECT_FALSE(seen.read_waited) << "a read waited for the reconnect";
  EXPECT_EQ(seen.read, "v");
  EXPECT_EQ(env.store().commit_calls(), commits_before);
  ASSERT_TRUE(volume->Commit(true).ok());
  EXPECT_EQ(MustRead(*volume, 1, 79), Block('a'));
}

// A commit stores its data blocks before it takes the volume's lock, so a
// read does not wait for a slow host to store them.
TEST(VolumeTest, givenCommitStoringData_whenReading_thenReadDoesNotWait) {
  VolumeEnv env;
  auto volume = env.MustOpen();
  ASSERT_TRUE(volume->Put("k", "v").ok());
  ASSERT_TRUE(volume->Commit(true).ok());
  for (uint64_t i = 0; i < 4; ++i) {
    ASSERT_TRUE(volume->WriteData(1, i, Block('d')).ok());
  }
  // Stalls the batches of data blocks, not the root's.
  const StallHook stalled_data = [&](std::function<void()> stall) {
    if (!stall) return env.store().SetBeforeCommit(nullptr);
    env.store().SetBeforeCommit([stall](const CommitBatch& batch) {
      if (std::ranges::none_of(batch.puts, [](const auto& put) {
            return put.first == kRootKey;
          })) {
        stall();
      }
    });
  };
  Status committed;
  const ReadDuringStall seen = ReadWhileStoreStalls(
      *volume, stalled_data, [&] { committed = volume->Commit(true); });

  ASSERT_TRUE(seen.reached);
  EXPECT_FALSE(seen.read_waited) << "a read waited for the data upload";
  EXPECT_EQ(seen.read, "v");
  EXPECT_TRUE(committed.ok()) << committed.ToString();
  EXPECT_EQ(MustRead(*volume, 1, 3), Block('d'));
}

// At a quota reached to the last byte, deleting one file makes room for
// another's buffered data: the commit's new blocks travel with the deletes.
TEST(
    VolumeTest,
    givenVolumeFullToTheLastByte_whenAnotherFileIsDeleted_thenBufferedDataCommits) {
  VolumeEnv env;
  auto volume = env.MustOpen();
  for (uint64_t i = 0; i < 64; ++i) {
    ASSERT_TRUE(volume->WriteData(3, i, Block('a')).ok());
    ASSERT_TRUE(volume->WriteData(4, i, Block('b')).ok());
  }
  ASSERT_TRUE(volume->Commit(true).ok());
  env.store().RefuseGrowth();
  for (uint64_t i = 0; i < 8; ++i) {
    ASSERT_TRUE(volume->WriteData(5, i, Block('c')).ok());
  }
  EXPECT_EQ(volume->Commit(true).code(), StatusCode::kQuotaExceeded);
  ASSERT_TRUE(volume->DeleteData(3, 0).ok());
  EXPECT_TRUE(volume->Commit(true).ok());
  auto reopened = env.MustOpen();
  for (const auto& [file, blocks] :
       std::vector<std::pair<uint64_t, size_t>>{{3, 0}, {4, 64}, {5, 8}}) {
    auto listed = reopened->ListData(file, 0, 64, 64);
    ASSERT_TRUE(listed.ok());
    EXPECT_EQ(listed->size(), blocks) << "file " << file;
  }
  EXPECT_EQ(MustRead(*reopened, 5, 7), Block('c'));
}

TEST(
    VolumeTest,
    givenTwoMountsOfOneStore_whenBothCommit_thenSecondGetsConflictAndNothingIsOverwritten) {
  VolumeEnv env;
  auto first = env.MustOpen();
  auto second = env.MustOpen();
  ASSERT_TRUE(first->Put("k", "first").ok());
  ASSERT_TRUE(second->Put("k", "second").ok());
  ASSERT_TRUE(first->Commit(true).ok());
  auto after_first = env.store().Snapshot();
  Status lost = second->Commit(true);
  EXPECT_EQ(lost.code(), StatusCode::kConflict);
  EXPECT_EQ(env.store().Snapshot(), after_first);
  // The loser is failed for good: no retry on a fresh root.
  EXPECT_EQ(second->Put("x", "y").code(), StatusCode::kConflict);
  EXPECT_EQ(second->Commit(true).code(), StatusCode::kConflict);
  EXPECT_EQ(env.store().Snapshot(), after_first);
  auto reopened = env.MustOpen();
  EXPECT_EQ(MustGet(*reopened, "k"), "first");
}

TEST(
    VolumeTest,
    givenDataAndKeysWrittenThenDeleted_whenCommitted_thenUsageReturnsToBaseline) {
  VolumeEnv env;
  auto volume = env.MustOpen();
  auto baseline = env.store().Stat();
  ASSERT_TRUE(baseline.ok());
  for (int i = 0; i < 500; ++i) {
    ASSERT_TRUE(
        volume->Put("key" + std::to_string(i), std::string(100, 'v')).ok());
  }
  for (uint64_t i = 0; i < 40; ++i)
    ASSERT_TRUE(volume->WriteData(9, i, Block('d')).ok());
  ASSERT_TRUE(volume->Commit(true).ok());
  auto grown = env.store().Stat();
  ASSERT_TRUE(grown.ok());
  EXPECT_GT(grown->block_count, baseline->block_count + 40);
  for (int i = 0; i < 500; ++i)
    ASSERT_TRUE(volume->Delete("key" + std::to_string(i)).ok());
  ASSERT_TRUE(volume->DeleteData(9, 0).ok());
  ASSERT_TRUE(volume->Commit(true).ok());
  auto after = env.store().Stat();
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->block_count, baseline->block_count);
  EXPECT_EQ(after->used_bytes, baseline->used_bytes);
}

TEST(VolumeTest, givenLargeVolume_whenOpened_thenOnlyHeaderAndRootAreRead) {
  VolumeEnv env;
  {
    auto volume = env.MustOpen();
    for (int i = 0; i < 3000; ++i) {
      ASSERT_TRUE(
          volume->Put("key" + std::to_string(i), std::string(50, 'v')).ok());
    }
    for (uint64_t i = 0; i < 50; ++i)
      ASSERT_TRUE(volume->WriteData(1, i, "x").ok());
    ASSERT_TRUE(volume->Commit(true).ok());
  }
  ASSERT_GT(env.NodeKeys().size(), 10u);
  env.store().ResetCounters();
  auto volume = env.MustOpen();
  EXPECT_EQ(env.store().get_calls(), 1u);
  EXPECT_EQ(env.store().get_keys(), 2u);
  // Nodes load on demand: one lookup reads one root-to-leaf path.
  env.store().ResetCounters();
  EXPECT_EQ(MustGet(*volume, "key1234"), std::string(50, 'v'));
  EXPECT_GE(env.store().get_keys(), 2u);
  EXPECT_LE(env.store().get_keys(), 4u);
}

constexpr uint64_t kReadAheadWindow = 8;

std::string FileBlock(uint64_t i) { return Block(static_cast<char>('A' + i)); }

// env's volume holding FileBlock(i) as blocks 0..count-1 of file 5, opened
// again with a read-ahead window of `window` blocks and its tree nodes
// loaded, so that the store's counters (reset) see data blocks only.
std::unique_ptr<Volume> OpenWithSequentialFile(
    VolumeEnv& env, uint64_t count, uint64_t window = kReadAheadWindow) {
  {
    auto volume = env.MustOpen();
    for (uint64_t i = 0; i < count; ++i) {
      EXPECT_TRUE(volume->WriteData(5, i, FileBlock(i)).ok());
    }
    EXPECT_TRUE(volume->Commit(true).ok());
  }
  VolumeOptions options = ManualOptions();
  options.readahead_bytes = window * SmallParams().block_size;
  auto volume = env.MustOpen(options);
  EXPECT_TRUE(volume->ListData(5, 0, count, count).ok());
  env.store().ResetCounters();
  return volume;
}

// Reads blocks of file 5 in `order`, checking each one's bytes.
void ReadInOrder(Volume& volume, const std::vector<uint64_t>& order) {
  for (uint64_t i : order) {
    EXPECT_EQ(MustRead(volume, 5, i), FileBlock(i)) << "block " << i;
  }
}

std::vector<uint64_t> FirstBlocks(uint64_t count) {
  std::vector<uint64_t> blocks(count);
  std::iota(blocks.begin(), blocks.end(), 0);
  return blocks;
}

TEST(VolumeTest,
     givenSequentialReads_whenCacheIsCold_thenReadAheadFetchesBlocksInBatches) {
  VolumeEnv env;
  auto volume = OpenWithSequentialFile(env, 40);
  ReadInOrder(*volume, FirstBlocks(40));
  // Blocks 0 and 1 are fetched one by one; from then on the read-ahead
  // window brings several blocks per Get, each block exactly once.
  const auto batches = env.store().get_batch_sizes();
  size_t keys = 0, largest = 0;
  for (size_t b : batches) keys += b, largest = std::max(largest, b);
  EXPECT_EQ(keys, 40u);
  EXPECT_GT(largest, 1u);
  EXPECT_LE(largest, kReadAheadWindow);
  EXPECT_LT(batches.size(), 40u / 2);
}

TEST(VolumeTest,
     givenWideWindow_whenReadingSequentially_thenEachGetCarries512KiB) {
  VolumeEnv env;
  auto volume = OpenWithSequentialFile(env, 400, 256);
  ReadInOrder(*volume, FirstBlocks(400));
  // Blocks 0 and 1 come one by one; read-ahead then fetches whole 512 KiB
  // batches, and only the file's tail may be shorter.
  auto batches = env.store().get_batch_sizes();
  std::sort(batches.begin(), batches.end());
  const size_t full = (512u << 10) / SmallParams().block_size;
  ASSERT_GE(batches.size(), 4u);
  EXPECT_EQ(batches[0], 1u);
  EXPECT_EQ(batches[1], 1u);
  EXPECT_EQ(batches.back(), full);
  EXPECT_EQ(std::count(batches.begin(), batches.end(), full),
            static_cast<std::ptrdiff_t>(batches.size() - 3));
  EXPECT_EQ(std::accumulate(batches.begin(), batches.end(), size_t{0}), 400u);
}

TEST(VolumeTest,
     givenSequentialReader_whenBlocksAreLeftBehind_thenOnlyThoseAreUncached) {
  VolumeEnv env;
  auto volume = OpenWithSequentialFile(env, 40);
  ReadInOrder(*volume, FirstBlocks(40));
  // Randomly read blocks stay cached.
  ReadInOrder(*volume, {30, 12, 20});
  env.store().ResetCounters();
  ReadInOrder(*volume, {20, 30, 12});
  EXPECT_EQ(env.store().get_keys(), 0u);
  // A block the sequential reader left behind, and not read since, is
  // fetched again.
  EXPECT_EQ(MustRead(*volume, 5, 25), FileBlock(25));
  EXPECT_EQ(env.store().get_keys(), 1u);
}

TEST(
    VolumeTest,
    givenSequentialReadsSlightlyOutOfOrder_whenCacheIsCold_thenReadAheadKeepsUp) {
  VolumeEnv env;
  auto volume = OpenWithSequentialFile(env, 34);
  // After two consecutive blocks, pairs of concurrent READs of the kernel,
  // four blocks each, interleaved with the later one ahead: no block comes
  // right after the block before it.
  std::vector<uint64_t> order = {0, 1};
  for (uint64_t base = 2; base + 8 <= 34; base += 8) {
    for (uint64_t j = 0; j < 4; ++j) {
      order.push_back(base + 4 + j);
      order.push_back(base + j);
    }
  }
  ReadInOrder(*volume, order);
  const auto batches = env.store().get_batch_sizes();
  size_t keys = 0;
  for (size_t b : batches) keys += b;
  EXPECT_EQ(keys, 34u) << "a block was fetched twice";
  EXPECT_LT(batches.size(), 34u / 2) << "read-ahead restarted";
}

TEST(VolumeTest, givenRandomReads_whenCacheIsCold_thenNoReadAhead) {
  VolumeEnv env;
  {
    auto volume = env.MustOpen();
    for (uint64_t i = 0; i < 20; ++i)
      ASSERT_TRUE(volume->WriteData(5, i, "b").ok());
    ASSERT_TRUE(volume->Commit(true).ok());
  }
  auto volume = env.MustOpen();
  for (uint64_t i : {7u, 2u, 15u}) {
    env.store().ResetCounters();
    EXPECT_EQ(MustRead(*volume, 5, i), "b");
    auto batches = env.store().get_batch_sizes();
    ASSERT_FALSE(batches.empty());
    EXPECT_EQ(batches.back(), 1u);
  }
}

TEST(VolumeTest,
     givenDirtyLimit_whenExceeded_thenCommitHappensWithoutAskingAndIsBounded) {
  VolumeEnv env;
  VolumeOptions options = ManualOptions();
  options.dirty_limit_bytes = 64 * 1024;
  auto volume = env.MustOpen(options);
  uint64_t commits_seen = 0, last_gen = volume->generation();
  for (uint64_t i = 0; i < 100; ++i) {
    ASSERT_TRUE(volume->WriteData(1, i, Block('z')).ok());
    EXPECT_LT(volume->dirty_bytes(), options.dirty_limit_bytes);
    if (volume->generation() != last_gen)
      ++commits_seen, last_gen = volume->generation();
  }
  EXPECT_GE(commits_seen, 5u);
  volume.reset();
  volume = env.MustOpen();
  EXPECT_EQ(volume->generation(), last_gen);
  EXPECT_EQ(MustRead(*volume, 1, 0), Block('z'));
}

TEST(VolumeTest,
     givenCommitTimer_whenChangesWait_thenTheyAreCommittedInTheBackground) {
  VolumeEnv env;
  VolumeOptions options = ManualOptions();
  options.commit_interval = std::chrono::milliseconds(20);
  auto volume = env.MustOpen(options);
  ASSERT_TRUE(volume->Put("timer", "ticked").ok());
  for (int i = 0; i < 500 && volume->generation() == 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(volume->generation(), 2u);
  volume.reset();
  EXPECT_EQ(MustGet(*env.MustOpen(), "timer"), "ticked");
}

TEST(VolumeTest, givenNextId_whenCommittedAndReopened_thenCounterContinues) {
  VolumeEnv env;
  auto volume = env.MustOpen();
  EXPECT_EQ(*volume->NextId(), 1u);
  EXPECT_EQ(*volume->NextId(), 2u);
  ASSERT_TRUE(volume->Commit(true).ok());
  EXPECT_EQ(volume->generation(), 2u);
  volume = env.MustOpen();
  EXPECT_EQ(*volume->NextId(), 3u);
}

TEST(
    VolumeTest,
    givenLeakedBlocks_whenCollectingGarbage_thenExactlyTheUnreachableAreDeleted) {
  VolumeEnv env;
  auto volume = env.MustOpen();
  for (uint64_t i = 0; i < 10; ++i)
    ASSERT_TRUE(volume->WriteData(2, i, Block('g')).ok());
  ASSERT_TRUE(volume->Put("meta", "data").ok());
  ASSERT_TRUE(volume->Commit(true).ok());
  auto live = env.store().Snapshot();
  CommitBatch leak;  // e.g. a crash between a commit and its follow-up deletes
  for (int i = 0; i < 7; ++i)
    leak.puts.emplace_back("leaked-block-" + std::to_string(i), "x");
  ASSERT_TRUE(env.store().Commit(leak).ok());
  ASSERT_TRUE(volume->Put("uncommitted", "is committed by gc first").ok());
  auto report = volume->CollectGarbage();
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->deleted_blocks, 7u);
  auto stats = env.store().Stat();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->block_count,
            report->reachable_blocks + 2);  // + header, root
  auto reopened = env.MustOpen();
  for (uint64_t i = 0; i < 10; ++i)
    EXPECT_EQ(MustRead(*reopened, 2, i), Block('g'));
  EXPECT_EQ(MustGet(*reopened, "uncommitted"), "is committed by gc first");
}

class AnchorTest : public ::testing::Test {
 protected:
  VolumeOptions WithAnchor() {
    VolumeOptions options = ManualOptions();
    options.anchor = std::make_shared<AnchorFile>(anchor_path_);
    return options;
  }
  Status CommitPut(Volume& volume, const std::string& key) {
    EFS_RETURN_IF_ERROR(volume.Put(key, "v"));
    return volume.Commit(false);
  }

  TempDir dir_;
  std::string anchor_path_ = dir_.path() + "/anchor";
  VolumeEnv env_;
};

TEST_F(AnchorTest,
       givenAnchorFile_whenCommitting_thenItHoldsGenerationAndRootHash) {
  auto volume = env_.MustOpen(WithAnchor());
  EXPECT_EQ(ReadFile(anchor_path_), "1 " + volume->root_hash() + "\n");
  ASSERT_TRUE(CommitPut(*volume, "a").ok());
  EXPECT_EQ(ReadFile(anchor_path_), "2 " + volume->root_hash() + "\n");
}

TEST_F(AnchorTest,
       givenHostRolledBack_whenOpenedWithAnchor_thenRefusedWithGenerations) {
  auto old_state = env_.store().Snapshot();
  {
    auto volume = env_.MustOpen(WithAnchor());
    ASSERT_TRUE(CommitPut(*volume, "a").ok());
    ASSERT_TRUE(CommitPut(*volume, "b").ok());
  }
  env_.store().RollBack(old_state);
  auto refused = env_.Open(WithAnchor());
  EXPECT_EQ(refused.status().code(), StatusCode::kCorruption);
  EXPECT_EQ(refused.status().message(),
            "volume was rolled back: host root generation 1 is older than the "
            "trusted anchor 3");
  // Without an anchor the old state is indistinguishable from a fresh one.
  auto unanchored = env_.MustOpen();
  EXPECT_EQ(unanchored->generation(), 1u);
}

TEST_F(AnchorTest, givenForkAtSameGeneration_whenOpenedWithAnchor_thenRefused) {
  auto old_state = env_.store().Snapshot();
  {
    auto volume = env_.MustOpen(WithAnchor());
    ASSERT_TRUE(CommitPut(*volume, "a").ok());
  }
  env_.store().RollBack(old_state);
  {
    auto other = env_.MustOpen();  // a different history, also generation 2
    ASSERT_TRUE(CommitPut(*other, "b").ok());
    EXPECT_EQ(other->generation(), 2u);
  }
  auto refused = env_.Open(WithAnchor());
  EXPECT_EQ(refused.status().code(), StatusCode::kCorruption);
  EXPECT_NE(refused.status().message().find("forked"), std::string::npos);
}

TEST_F(AnchorTest,
       givenRootNewerThanAnchor_whenOpened_thenAcceptedAndAnchorAdvanced) {
  { env_.MustOpen(WithAnchor()); }
  {
    auto volume = env_.MustOpen();  // commits without updating the anchor
    ASSERT_TRUE(CommitPut(*volume, "a").ok());
  }
  auto volume = env_.MustOpen(WithAnchor());
  EXPECT_EQ(volume->generation(), 2u);
  EXPECT_EQ(ReadFile(anchor_path_), "2 " + volume->root_hash() + "\n");
}

TEST_F(AnchorTest,
       givenExpectGeneration_whenOpened_thenOnlyThatGenerationIsAccepted) {
  {
    auto volume = env_.MustOpen();
    ASSERT_TRUE(CommitPut(*volume, "a").ok());
  }
  VolumeOptions options = ManualOptions();
  options.expect_generation = 1;
  auto refused = env_.Open(options);
  EXPECT_EQ(refused.status().code(), StatusCode::kCorruption);
  EXPECT_EQ(refused.status().message(), "volume generation is 2, expected 1");
  options.expect_generation = 2;
  EXPECT_TRUE(env_.Open(options).ok());
}

TEST_F(AnchorTest,
       givenAnchorCommand_whenStoringAndLoading_thenItFollowsTheProtocol) {
  const std::string state = dir_.path() + "/state";
  const std::string script = dir_.path() + "/anchor.sh";
  std::ofstream(script) << "case \"$1\" in\n"
                           "  load) cat '"
                        << state
                        << "' 2>/dev/null; exit 0 ;;\n"
                           "  store) echo \"$2 $3\" > '"
                        << state
                        << "' ;;\n"
                           "  *) exit 3 ;;\n"
                           "esac\n";
  AnchorCommand anchor("sh " + script);
  auto empty = anchor.Load();
  ASSERT_TRUE(empty.ok()) << empty.status().ToString();
  EXPECT_FALSE(empty->has_value());
  const std::string hash(64, 'a');
  ASSERT_TRUE(anchor.Store(42, hash).ok());
  auto loaded = anchor.Load();
  ASSERT_TRUE(loaded.ok());
  ASSERT_TRUE(loaded->has_value());
  EXPECT_EQ((*loaded)->generation, 42u);
  EXPECT_EQ((*loaded)->root_hash, hash);
  AnchorCommand failing("sh -c 'exit 1' --");
  EXPECT_EQ(failing.Load().status().code(), StatusCode::kIOError);
  EXPECT_EQ(failing.Store(1, hash).code(), StatusCode::kIOError);
}

TEST(AnchorParseTest, givenMalformedText_whenParsed_thenIOError) {
  EXPECT_TRUE(ParseAnchorText("7 " + std::string(64, 'f') + "\n", "t").ok());
  EXPECT_FALSE(ParseAnchorText("7", "t").ok());
  EXPECT_FALSE(ParseAnchorText("x " + std::string(64, 'f'), "t").ok());
  EXPECT_FALSE(ParseAnchorText("7 " + std::string(63, 'f'), "t").ok());
  EXPECT_FALSE(ParseAnchorText("7 " + std::string(64, 'F'), "t").ok());
}

// ---- operations: groups of writes committed whole ----

TEST(VolumeOperationTest,
     givenActiveOperation_whenWritesPassDirtyLimit_thenCommitWaitsForItsEnd) {
  VolumeEnv env;
  VolumeOptions options = ManualOptions();
  options.dirty_limit_bytes = 16 * 1024;
  auto volume = env.MustOpen(options);
  const uint64_t before = volume->generation();
  {
    Volume::Operation op = volume->BeginOperation();
    for (uint64_t i = 0; i < 10; ++i) {
      ASSERT_TRUE(volume->WriteData(1, i, Block('a')).ok());
    }
    ASSERT_TRUE(volume->Put("k", "v").ok());
    EXPECT_EQ(volume->generation(), before);
    EXPECT_GE(volume->dirty_bytes(), options.dirty_limit_bytes);
  }
  EXPECT_EQ(volume->generation(), before + 1);
  EXPECT_EQ(volume->dirty_bytes(), 0u);
  volume.reset();  // no explicit commit: the deferred one made it durable
  volume = env.MustOpen();
  EXPECT_EQ(MustRead(*volume, 1, 9), Block('a'));
  EXPECT_EQ(MustGet(*volume, "k"), "v");
}

TEST(VolumeOperationTest,
     givenOperationsEndedBelowLimit_whenNoOperationActive_thenNothingCommits) {
  VolumeEnv env;
  VolumeOptions options = ManualOptions();
  options.dirty_limit_bytes = 1u << 20;
  auto volume = env.MustOpen(options);
  const uint64_t before = volume->generation();
  {
    Volume::Operation op = volume->BeginOperation();
    ASSERT_TRUE(volume->Put("k", "v").ok());
  }
  EXPECT_EQ(volume->generation(), before);
  EXPECT_GT(volume->dirty_bytes(), 0u);
}

TEST(VolumeOperationTest,
     givenActiveOperation_whenOtherThreadCommits_thenCommitWaitsForItsEnd) {
  VolumeEnv env;
  auto volume = env.MustOpen();
  const uint64_t before = volume->generation();
  std::latch began(1), release(1);
  std::thread writer([&] {
    Volume::Operation op = volume->BeginOperation();
    EXPECT_TRUE(volume->Put("first", "1").ok());
    began.count_down();
    release.wait();
    EXPECT_TRUE(volume->Put("second", "2").ok());
  });
  began.wait();
  std::atomic<bool> committed{false};
  std::thread committer([&] {
    EXPECT_TRUE(volume->Commit(true).ok());
    committed = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_FALSE(committed);
  EXPECT_EQ(volume->generation(), before);
  release.count_down();
  writer.join();
  committer.join();
  EXPECT_TRUE(committed);
  EXPECT_EQ(volume->generation(), before + 1);
  volume.reset();
  volume = env.MustOpen();
  EXPECT_EQ(MustGet(*volume, "first"), "1");
  EXPECT_EQ(MustGet(*volume, "second"), "2");
}

TEST(VolumeOperationTest,
     givenCommitTimer_whenOperationActive_thenTimerCommitsOnlyAfterItEnds) {
  VolumeEnv env;
  VolumeOptions options = ManualOptions();
  options.commit_interval = std::chrono::milliseconds(10);
  auto volume = env.MustOpen(options);
  const uint64_t before = volume->generation();
  {
    Volume::Operation op = volume->BeginOperation();
    ASSERT_TRUE(volume->Put("k", "v").ok());
    // Twenty timer periods pass with the Operation open.
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    EXPECT_EQ(volume->generation(), before);
  }
  EXPECT_TRUE(Eventually([&] { return volume->generation() == before + 1; }));
  volume.reset();
  volume = env.MustOpen();
  EXPECT_EQ(MustGet(*volume, "k"), "v");
}

}  // namespace
}  // namespace enclavefs::testing
