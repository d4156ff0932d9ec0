// BTree: the copy-on-write B+tree that holds all metadata of a volume.
//
// Keys and values are byte strings. Leaves hold sorted (key, value) entries;
// internal nodes hold separator keys and pointers {host name, AEAD tag} to
// their children. A committed node is immutable: changing it copies it into
// memory ("dirty"), and its host name is retired so the commit can delete
// it. Flush() seals every dirty node bottom-up under a fresh name, so a
// parent pointer identifies exactly one ciphertext. Nodes split when their
// encoding outgrows the sealer's node capacity and are merged with (or
// rebalanced against) a sibling when they fall under a quarter of it, so the
// depth stays O(log n). The byte layout of a node is in docs/format.md.
//
// Ownership: the tree owns its dirty nodes; clean nodes come from a
// NodeLoader (the Volume's cache) as shared immutable objects.
// Thread safety: const methods may run concurrently with each other; any
// non-const method needs exclusive access (the Volume's lock provides it).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "blockstore/status.h"
#include "fs/sealer.h"

namespace enclavefs {

inline constexpr size_t kNameSize = 16;
inline constexpr size_t kBlockPtrSize = kNameSize + kTagSize;
inline constexpr size_t kMaxTreeKeySize = 512;

// Where a sealed block lives and which ciphertext it must be.
struct BlockPtr {
  std::string name;  // kNameSize bytes
  Tag tag{};

  std::string Encode() const;  // name || tag, kBlockPtrSize bytes
  // Corruption unless `bytes` is exactly kBlockPtrSize long.
  static Result<BlockPtr> Decode(std::string_view bytes);
};

struct Node;

// One child slot of an internal node (or the tree's root slot).
struct ChildRef {
  BlockPtr ptr;                 // the committed block; stale while dirty
  std::shared_ptr<Node> dirty;  // non-null: changed in memory since commit
};

struct Node {
  uint8_t level = 0;  // 0 for leaves; a parent is one above its children
  std::vector<std::string> keys;
  std::vector<std::string> values;  // leaves only, parallel to keys
  std::vector<ChildRef> children;   // internal only: keys.size() + 1

  bool leaf() const { return level == 0; }
  // Size of the plaintext Encode() produces.
  size_t EncodedSize() const;
  // Uses each child's `ptr`: REQUIRES children flushed first.
  std::string Encode() const;
  // Corruption if the bytes are not a well-formed node.
  static Result<Node> Decode(std::string_view bytes);
};

// Fetches and verifies a committed node. Implementations check the block
// against ptr.tag and that its level equals `level`; a missing, altered,
// replayed or misplaced block is Corruption.
class NodeLoader {
 public:
  virtual ~NodeLoader() = default;
  virtual Result<std::shared_ptr<const Node>> LoadNode(const BlockPtr& ptr,
                                                       uint8_t level) = 0;
};

// Output of Flush(): what a commit must store, and the new root.
struct FlushedTree {
  std::vector<std::pair<std::string, std::string>> puts;  // name -> sealed
  BlockPtr root;
  uint32_t height = 1;
};

class BTree {
 public:
  // `capacity` is the sealer's node capacity in bytes (>= 2048).
  BTree(NodeLoader& loader, size_t capacity, BlockPtr root, uint32_t height);

  // An empty tree (one empty dirty leaf), as created at format time.
  static BTree Empty(NodeLoader& loader, size_t capacity);

  // Largest value Put accepts: a quarter of the node capacity.
  size_t max_value_size() const { return capacity_ / 4; }
  uint32_t height() const { return height_; }
  // Number of dirty nodes (each costs one node block at commit).
  size_t dirty_nodes() const { return dirty_nodes_; }
  // Committed node names superseded since the last commit.
  const std::vector<std::string>& retired() const { return retired_; }

  // nullopt if `key` is absent; Corruption if a node fails verification.
  Result<std::optional<std::string>> Get(std::string_view key) const;

  // Entries with start <= key < end (end "" = unbounded), ascending, at most
  // `limit`. For the page after key K pass start = K + '\0'.
  Result<std::vector<std::pair<std::string, std::string>>> Scan(
      std::string_view start, std::string_view end, size_t limit) const;

  // Inserts or replaces. InvalidArgument for an empty key, a key over
  // kMaxTreeKeySize or a value over max_value_size().
  Status Put(std::string_view key, std::string_view value);

  // Removes `key`; returns whether it existed.
  Result<bool> Delete(std::string_view key);

  // Seals every dirty node under a fresh name. Leaves the tree unchanged
  // except for recording the new pointers, so a failed commit can simply
  // flush again later.
  Result<FlushedTree> Flush(Sealer& sealer);

  // After the flushed state was committed: dirty nodes become clean
  // (handed to `on_clean` by name so the caller can cache them) and the
  // retired list is cleared.
  template <typename F>
  void MarkClean(F&& on_clean);

  // Calls visit(level, ptr) for every committed node and visit_entry(key,
  // value) for every entry. REQUIRES: no dirty nodes.
  template <typename FNode, typename FEntry>
  Status Walk(FNode&& visit, FEntry&& visit_entry) const;

 private:
  Result<const Node*> Resolve(const ChildRef& ref, uint8_t level,
                              std::shared_ptr<const Node>* hold) const;
  // Copy-on-write: makes `ref` dirty (retiring its committed name).
  Result<Node*> Mutable(ChildRef& ref, uint8_t level);
  Status PutRec(Node& node, std::string_view key, std::string_view value);
  Status DeleteRec(Node& node, std::string_view key);
  Status Rebalance(Node& parent, size_t index);
  // Splits `node` if it is over capacity; inserts the new right sibling
  // into `parent` after slot `index`.
  void SplitChildIfFull(Node& parent, size_t index);
  std::pair<std::string, std::shared_ptr<Node>> Split(Node& node);
  bool Underfull(const Node& node) const;
  Status ScanRec(const ChildRef& ref, uint8_t level, std::string_view start,
                 std::string_view end, size_t limit,
                 std::vector<std::pair<std::string, std::string>>& out) const;
  Result<BlockPtr> FlushRec(ChildRef& ref, Sealer& sealer, FlushedTree& out);
  template <typename F>
  void MarkCleanRec(ChildRef& ref, F& on_clean);
  template <typename FNode, typename FEntry>
  Status WalkRec(const ChildRef& ref, uint8_t level, FNode& visit,
                 FEntry& visit_entry) const;
  std::shared_ptr<Node> NewDirty(uint8_t level);

  NodeLoader& loader_;
  size_t capacity_;
  ChildRef root_;
  uint32_t height_;
  size_t dirty_nodes_ = 0;
  std::vector<std::string> retired_;
};

// ---- template definitions ----

template <typename F>
void BTree::MarkClean(F&& on_clean) {
  MarkCleanRec(root_, on_clean);
  dirty_nodes_ = 0;
  retired_.clear();
}

template <typename F>
void BTree::MarkCleanRec(ChildRef& ref, F& on_clean) {
  if (!ref.dirty) return;
  for (auto& child : ref.dirty->children) MarkCleanRec(child, on_clean);
  on_clean(ref.ptr, std::shared_ptr<const Node>(std::move(ref.dirty)));
  ref.dirty.reset();
}

template <typename FNode, typename FEntry>
Status BTree::Walk(FNode&& visit, FEntry&& visit_entry) const {
  return WalkRec(root_, static_cast<uint8_t>(height_ - 1), visit, visit_entry);
}

template <typename FNode, typename FEntry>
Status BTree::WalkRec(const ChildRef& ref, uint8_t level, FNode& visit,
                      FEntry& visit_entry) const {
  if (ref.dirty) return Status::InvalidArgument("tree has dirty nodes");
  visit(level, ref.ptr);
  std::shared_ptr<const Node> hold;
  EFS_ASSIGN_OR_RETURN(const Node* node, Resolve(ref, level, &hold));
  if (node->leaf()) {
    for (size_t i = 0; i < node->keys.size(); ++i) {
      visit_entry(node->keys[i], node->values[i]);
    }
    return Status::Ok();
  }
  for (const auto& child : node->children) {
    EFS_RETURN_IF_ERROR(WalkRec(child, level - 1, visit, visit_entry));
  }
  return Status::Ok();
}

}  // namespace enclavefs
