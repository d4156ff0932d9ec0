// Test helpers shared by the Volume tests: a formatted volume on a
// TamperingBlockStore with cheap key derivation, and reopening it.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <string>

#include "fs/volume.h"
#include "fs/volume_keys.h"
#include "tests/fs/tampering_block_store.h"

namespace enclavefs::testing {

// A directory from mkdtemp, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/efs-h4b-XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

inline KeySource TestKeySource() {
  return KeySource::Passphrase("correct horse");
}

// Small blocks keep tests fast; nodes stay a different size class from data
// blocks so tests can tell them apart by their sealed size.
inline FormatParams SmallParams(uint32_t node_size = 8192) {
  FormatParams params;
  params.block_size = 4096;
  params.node_size = node_size;
  params.cost = PwhashCost::ForTests();
  return params;
}

// Timer off: tests decide when commits happen.
inline VolumeOptions ManualOptions() {
  VolumeOptions options;
  options.commit_interval = std::chrono::milliseconds(0);
  return options;
}

class VolumeEnv {
 public:
  explicit VolumeEnv(FormatParams params = SmallParams(),
                     uint64_t quota_bytes = 0)
      : store_(std::make_shared<TamperingBlockStore>(quota_bytes)) {
    auto created = CreateVolumeHeader(params, TestKeySource());
    EXPECT_TRUE(created.ok()) << created.status().ToString();
    header_ = created->first;
    node_size_ = params.node_size;
    Status formatted = Volume::Format(*store_, header_, *created->second);
    EXPECT_TRUE(formatted.ok()) << formatted.ToString();
  }

  std::unique_ptr<VolumeKeys> Keys() const {
    auto keys = UnlockVolumeHeader(header_, TestKeySource());
    EXPECT_TRUE(keys.ok()) << keys.status().ToString();
    return std::move(keys).value();
  }

  Result<std::unique_ptr<Volume>> Open(
      VolumeOptions options = ManualOptions()) {
    return Volume::Open(store_, Keys(), std::move(options));
  }

  // Opens and asserts success.
  std::unique_ptr<Volume> MustOpen(VolumeOptions options = ManualOptions()) {
    auto volume = Open(std::move(options));
    EXPECT_TRUE(volume.ok()) << volume.status().ToString();
    return volume.ok() ? std::move(volume).value() : nullptr;
  }

  // Host keys of tree nodes / data blocks, told apart by sealed size.
  std::vector<std::string> NodeKeys() const {
    return store_->KeysWhere(
        [this](const std::string& k, const std::string& v) {
          return k.size() == kNameSize && v.size() >= node_size_;
        });
  }
  std::vector<std::string> DataKeys() const {
    return store_->KeysWhere(
        [this](const std::string& k, const std::string& v) {
          return k.size() == kNameSize && v.size() < node_size_;
        });
  }

  TamperingBlockStore& store() { return *store_; }
  std::shared_ptr<TamperingBlockStore> shared_store() { return store_; }
  const std::string& header() const { return header_; }

 private:
  std::shared_ptr<TamperingBlockStore> store_;
  std::string header_;
  size_t node_size_ = 0;
};

}  // namespace enclavefs::testing
