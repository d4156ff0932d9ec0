#include "fs/btree.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <map>
#include <random>

#include "fs/volume_keys.h"

namespace enclavefs {
namespace {

// Committed nodes in a map, opened through the real Sealer: the smallest
// NodeLoader that exercises the tree's copy-on-write life cycle.
class MapLoader : public NodeLoader {
 public:
  explicit MapLoader(Sealer& sealer) : sealer_(sealer) {}

  Result<std::shared_ptr<const Node>> LoadNode(const BlockPtr& ptr,
                                               uint8_t level) override {
    ++loads;
    auto it = blocks.find(ptr.name);
    if (it == blocks.end()) return Status::Corruption("missing node");
    EFS_ASSIGN_OR_RETURN(
        std::string plain,
        sealer_.Open(BlockKind::kNode, ptr.name, it->second, &ptr.tag));
    EFS_ASSIGN_OR_RETURN(Node node, Node::Decode(plain));
    if (node.level != level) return Status::Corruption("wrong level");
    return std::make_shared<const Node>(std::move(node));
  }

  std::map<std::string, std::string> blocks;
  size_t loads = 0;

 private:
  Sealer& sealer_;
};

using Entries = std::vector<std::pair<std::string, std::string>>;

class BTreeTest : public ::testing::Test {
 protected:
  explicit BTreeTest(uint32_t node_size = 4096) {
    FormatParams params;
    params.node_size = node_size;
    params.cost = PwhashCost::ForTests();
    auto created = CreateVolumeHeader(params, KeySource::Passphrase("pw"));
    EXPECT_TRUE(created.ok()) << created.status().ToString();
    keys_ = std::move(created->second);
    sealer_ = keys_->NewSealer();
    loader_ = std::make_unique<MapLoader>(*sealer_);
    tree_ = std::make_unique<BTree>(
        BTree::Empty(*loader_, sealer_->Capacity(BlockKind::kNode)));
  }

  // Stores the dirty nodes and deletes the retired ones, like a commit.
  FlushedTree Commit() {
    auto flushed = tree_->Flush(*sealer_);
    EXPECT_TRUE(flushed.ok()) << flushed.status().ToString();
    for (const auto& name : tree_->retired()) {
      EXPECT_EQ(loader_->blocks.erase(name), 1u) << "retired an unknown node";
    }
    for (auto& [name, bytes] : flushed->puts) loader_->blocks[name] = bytes;
    tree_->MarkClean([](const BlockPtr&, std::shared_ptr<const Node>) {});
    return std::move(flushed).value();
  }

  // A fresh tree over the committed state only.
  void Reload(const FlushedTree& flushed) {
    tree_ =
        std::make_unique<BTree>(*loader_, sealer_->Capacity(BlockKind::kNode),
                                flushed.root, flushed.height);
  }

  Entries ScanAll() {
    auto got = tree_->Scan("", "", SIZE_MAX);
    EXPECT_TRUE(got.ok()) << got.status().ToString();
    return got.ok() ? *got : Entries();
  }

  static std::string Key(int i) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "key%08d", i);
    return buf;
  }

  std::unique_ptr<VolumeKeys> keys_;
  std::unique_ptr<Sealer> sealer_;
  std::unique_ptr<MapLoader> loader_;
  std::unique_ptr<BTree> tree_;
};

TEST_F(
    BTreeTest,
    givenManyInserts_whenCommittedAndReloaded_thenTreeSplitAndEveryKeyIsFound) {
  for (int i = 0; i < 20000; ++i) {
    ASSERT_TRUE(tree_->Put(Key(i), "value" + std::to_string(i)).ok());
  }
  FlushedTree flushed = Commit();
  EXPECT_GE(flushed.height, 3u);
  EXPECT_GT(loader_->blocks.size(), 100u);
  Reload(flushed);
  for (int i = 0; i < 20000; ++i) {
    auto got = tree_->Get(Key(i));
    ASSERT_TRUE(got.ok());
    ASSERT_EQ(got->value_or("<absent>"), "value" + std::to_string(i));
  }
  auto missing = tree_->Get("key-not-there");
  ASSERT_TRUE(missing.ok());
  EXPECT_FALSE(missing->has_value());
}

TEST_F(BTreeTest,
       givenFullTree_whenEverythingDeleted_thenItShrinksToOneEmptyLeaf) {
  for (int i = 0; i < 5000; ++i)
    ASSERT_TRUE(tree_->Put(Key(i), std::string(40, 'v')).ok());
  Commit();
  const uint32_t full_height = tree_->height();
  for (int i = 0; i < 5000; ++i) {
    auto deleted = tree_->Delete(Key((i * 7919) % 5000));
    ASSERT_TRUE(deleted.ok());
    ASSERT_TRUE(*deleted);
  }
  FlushedTree flushed = Commit();
  EXPECT_GT(full_height, 2u);
  EXPECT_EQ(flushed.height, 1u);
  EXPECT_EQ(loader_->blocks.size(), 1u);
  Reload(flushed);
  EXPECT_TRUE(ScanAll().empty());
}

TEST_F(BTreeTest,
       givenDeletesLeavingFewEntries_whenCommitted_thenDepthMatchesTheSize) {
  for (int i = 0; i < 20000; ++i) ASSERT_TRUE(tree_->Put(Key(i), "x").ok());
  Commit();
  for (int i = 0; i < 20000; ++i) {
    if (i % 1000 != 0) {
      ASSERT_TRUE(tree_->Delete(Key(i)).ok());
    }
  }
  FlushedTree flushed = Commit();
  // 20 tiny entries fit in one leaf: merges must have collapsed the tree.
  EXPECT_EQ(flushed.height, 1u);
  EXPECT_EQ(loader_->blocks.size(), 1u);
  EXPECT_EQ(ScanAll().size(), 20u);
}

TEST_F(BTreeTest,
       givenRandomPutsAndDeletes_whenComparedWithStdMap_thenContentsAgree) {
  for (uint32_t seed : {1u, 2u, 3u}) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937 rng(seed);
    std::map<std::string, std::string> model;
    tree_ = std::make_unique<BTree>(
        BTree::Empty(*loader_, sealer_->Capacity(BlockKind::kNode)));
    loader_->blocks.clear();
    for (int op = 0; op < 6000; ++op) {
      const std::string key = Key(static_cast<int>(rng() % 3000));
      if (rng() % 3 == 0) {
        auto deleted = tree_->Delete(key);
        ASSERT_TRUE(deleted.ok());
        ASSERT_EQ(*deleted, model.erase(key) == 1);
      } else {
        std::string value(rng() % 300, static_cast<char>('a' + rng() % 26));
        ASSERT_TRUE(tree_->Put(key, value).ok());
        model[key] = value;
      }
      if (op % 1000 == 999) Commit();
    }
    FlushedTree flushed = Commit();
    Reload(flushed);
    EXPECT_EQ(ScanAll(), Entries(model.begin(), model.end()));
    for (const auto& [key, value] : model) {
      auto got = tree_->Get(key);
      ASSERT_TRUE(got.ok());
      ASSERT_EQ(got->value_or("<absent>"), value);
    }
  }
}

TEST_F(
    BTreeTest,
    givenHundredThousandEntriesInOneDirectory_whenPaging_thenEveryPageIsCheap) {
  const std::string dir = "d/0000000042/";
  for (int i = 0; i < 100000; ++i) {
    ASSERT_TRUE(tree_->Put(dir + Key(i), "ino").ok());
    if (i % 10 == 0) {
      ASSERT_TRUE(tree_->Put("d/0000000041/" + Key(i), "x").ok());
    }
  }
  Reload(Commit());
  const std::string end = "d/0000000042~";
  std::string start = dir;
  size_t seen = 0, pages = 0, max_loads = 0;
  while (true) {
    loader_->loads = 0;
    auto page = tree_->Scan(start, end, 1000);
    ASSERT_TRUE(page.ok());
    max_loads = std::max(max_loads, loader_->loads);
    if (page->empty()) break;
    for (const auto& [key, value] : *page) {
      ASSERT_EQ(key, dir + Key(static_cast<int>(seen)));
      ++seen;
    }
    ++pages;
    start = page->back().first + '\0';  // "next after key"
  }
  EXPECT_EQ(seen, 100000u);
  EXPECT_EQ(pages, 100u);
  // A page touches only the leaves holding it (each at least a quarter
  // full, entries are 30 bytes) plus the internal nodes above them, never
  // the whole directory (~1,500 leaves).
  const size_t leaves_per_page =
      1000 * 30 / (sealer_->Capacity(BlockKind::kNode) / 4) + 2;
  EXPECT_LE(max_loads, leaves_per_page + 2 * tree_->height());
}

TEST_F(BTreeTest, givenOversizedKeyOrValue_whenPut_thenInvalidArgument) {
  EXPECT_EQ(tree_->Put(std::string(kMaxTreeKeySize + 1, 'k'), "v").code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(tree_->Put("", "v").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(
      tree_->Put("k", std::string(tree_->max_value_size() + 1, 'v')).code(),
      StatusCode::kInvalidArgument);
  EXPECT_TRUE(tree_->Put("k", std::string(tree_->max_value_size(), 'v')).ok());
}

TEST_F(BTreeTest,
       givenLargestKeysAndValues_whenManyInserted_thenEveryNodeStillSeals) {
  std::mt19937 rng(7);
  std::map<std::string, std::string> model;
  for (int i = 0; i < 300; ++i) {
    std::string key = Key(static_cast<int>(rng() % 1000)) +
                      std::string(kMaxTreeKeySize - 11, 'k');
    std::string value(rng() % 2 ? tree_->max_value_size() : 1, 'v');
    ASSERT_TRUE(tree_->Put(key, value).ok());
    model[key] = value;
  }
  Reload(Commit());  // Seal fails if any node outgrew its capacity.
  EXPECT_EQ(ScanAll(), Entries(model.begin(), model.end()));
}

TEST_F(BTreeTest,
       givenCommittedTree_whenOneKeyChanges_thenOnlyItsPathIsRewritten) {
  for (int i = 0; i < 5000; ++i) ASSERT_TRUE(tree_->Put(Key(i), "v").ok());
  Commit();
  auto before = loader_->blocks;
  ASSERT_TRUE(tree_->Put(Key(1234), "w").ok());
  EXPECT_EQ(tree_->dirty_nodes(), tree_->height());
  EXPECT_EQ(tree_->retired().size(), tree_->height());
  FlushedTree flushed = Commit();
  EXPECT_EQ(flushed.puts.size(), tree_->height());
  EXPECT_EQ(loader_->blocks.size(), before.size());
  size_t unchanged = 0;
  for (const auto& [name, bytes] : loader_->blocks)
    unchanged += before.count(name);
  EXPECT_EQ(unchanged, before.size() - tree_->height());
}

TEST(NodeTest, givenMalformedBytes_whenDecoded_thenCorruption) {
  Node leaf;
  leaf.keys = {"a", "b"};
  leaf.values = {"1", "2"};
  std::string bytes = leaf.Encode();
  ASSERT_EQ(bytes.size(), leaf.EncodedSize());
  auto round = Node::Decode(bytes);
  ASSERT_TRUE(round.ok());
  EXPECT_EQ(round->keys, leaf.keys);
  EXPECT_EQ(round->values, leaf.values);
  EXPECT_EQ(Node::Decode(bytes.substr(0, bytes.size() - 1)).status().code(),
            StatusCode::kCorruption);
  EXPECT_EQ(Node::Decode(bytes + "x").status().code(), StatusCode::kCorruption);
  std::swap(leaf.keys[0], leaf.keys[1]);  // unsorted keys
  EXPECT_EQ(Node::Decode(leaf.Encode()).status().code(),
            StatusCode::kCorruption);
}

}  // namespace
}  // namespace enclavefs
