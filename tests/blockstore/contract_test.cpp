// Runs the BlockStore contract suite against the in-process stores.
#include <limits>
#include <type_traits>

#include "blockstore/in_memory_block_store.h"
#include "blockstore/rocksdb_volumes.h"
#include "tests/blockstore/block_store_contract.h"

namespace enclavefs {
namespace {

struct InMemoryFactory {
  std::unique_ptr<BlockStore> Make(uint64_t quota_bytes) {
    return std::make_unique<InMemoryBlockStore>(quota_bytes);
  }
};

// Each Make creates a new volume in one database living in a temp dir.
template <bool kDirectReads>
struct RocksDbFactory {
  std::unique_ptr<BlockStore> Make(uint64_t quota_bytes) {
    if (!volumes) {
      auto opened =
          RocksDbVolumes::Open(dir.path(), {.direct_reads = kDirectReads});
      if (!opened.ok()) {
        ADD_FAILURE() << opened.status().ToString();
        return nullptr;
      }
      volumes = std::move(opened).value();
    }
    const std::string name = "vol" + std::to_string(++count);
    // Volumes need a quota; "unlimited" is the largest one.
    Status s = volumes->CreateVolume(
        name,
        quota_bytes != 0 ? quota_bytes : std::numeric_limits<uint64_t>::max());
    if (!s.ok()) {
      ADD_FAILURE() << s.ToString();
      return nullptr;
    }
    auto store = volumes->OpenVolume(name);
    if (!store.ok()) {
      ADD_FAILURE() << store.status().ToString();
      return nullptr;
    }
    return std::move(store).value();
  }

  contract::TempDir dir;
  std::unique_ptr<RocksDbVolumes> volumes;
  int count = 0;
};

using RocksDbBuffered = RocksDbFactory<false>;
using RocksDbDirect = RocksDbFactory<true>;

struct FactoryName {
  template <typename Factory>
  static std::string GetName(int) {
    if (std::is_same_v<Factory, InMemoryFactory>) return "InMemory";
    return std::is_same_v<Factory, RocksDbDirect> ? "RocksDbDirectReads"
                                                  : "RocksDb";
  }
};

using Factories =
    ::testing::Types<InMemoryFactory, RocksDbBuffered, RocksDbDirect>;
INSTANTIATE_TYPED_TEST_SUITE_P(Local, BlockStoreContractTest, Factories,
                               FactoryName);

}  // namespace
}  // namespace enclavefs
