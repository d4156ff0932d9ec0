#include "fs/btree.h"

#include <algorithm>
#include <cstring>

namespace enclavefs {
namespace {

constexpr uint8_t kLeafType = 1;
constexpr uint8_t kInternalType = 2;
constexpr size_t kNodeHeaderSize = 6;  // type u8, level u8, count u32

void AppendLe(std::string& out, uint64_t v, size_t bytes) {
  for (size_t i = 0; i < bytes; ++i)
    out.push_back(static_cast<char>(v >> (8 * i)));
}

// Bounds-checked little-endian reader over an untrusted (if authenticated)
// buffer: every failure becomes Corruption.
class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  bool Int(size_t bytes, uint64_t& v) {
    if (in_.size() < bytes) return false;
    v = 0;
    for (size_t i = 0; i < bytes; ++i) {
      v |= static_cast<uint64_t>(static_cast<uint8_t>(in_[i])) << (8 * i);
    }
    in_.remove_prefix(bytes);
    return true;
  }
  bool Bytes(size_t n, std::string& out) {
    if (in_.size() < n) return false;
    out.assign(in_.substr(0, n));
    in_.remove_prefix(n);
    return true;
  }
  bool Ptr(BlockPtr& ptr) {
    if (in_.size() < kBlockPtrSize) return false;
    ptr = *BlockPtr::Decode(in_.substr(0, kBlockPtrSize));
    in_.remove_prefix(kBlockPtrSize);
    return true;
  }
  bool done() const { return in_.empty(); }

 private:
  std::string_view in_;
};

size_t LeafEntrySize(std::string_view key, std::string_view value) {
  return 2 + key.size() + 4 + value.size();
}
size_t InternalEntrySize(std::string_view key) {
  return 2 + key.size() + kBlockPtrSize;
}

// Index of the child whose subtree may hold `key`.
size_t ChildIndex(const Node& node, std::string_view key) {
  return std::upper_bound(node.keys.begin(), node.keys.end(), key) -
         node.keys.begin();
}

}  // namespace

std::string BlockPtr::Encode() const {
  std::string out = name;
  out.append(reinterpret_cast<const char*>(tag.data()), tag.size());
  return out;
}

Result<BlockPtr> BlockPtr::Decode(std::string_view bytes) {
  if (bytes.size() != kBlockPtrSize) {
    return Status::Corruption("block pointer has a wrong size");
  }
  BlockPtr ptr;
  ptr.name.assign(bytes.substr(0, kNameSize));
  std::memcpy(ptr.tag.data(), bytes.data() + kNameSize, kTagSize);
  return ptr;
}

size_t Node::EncodedSize() const {
  size_t size = kNodeHeaderSize;
  if (leaf()) {
    for (size_t i = 0; i < keys.size(); ++i)
      size += LeafEntrySize(keys[i], values[i]);
  } else {
    size += kBlockPtrSize;
    for (const auto& key : keys) size += InternalEntrySize(key);
  }
  return size;
}

std::string Node::Encode() const {
  std::string out;
  out.reserve(EncodedSize());
  out.push_back(static_cast<char>(leaf() ? kLeafType : kInternalType));
  out.push_back(static_cast<char>(level));
  AppendLe(out, keys.size(), 4);
  if (leaf()) {
    for (size_t i = 0; i < keys.size(); ++i) {
      AppendLe(out, keys[i].size(), 2);
      out += keys[i];
      AppendLe(out, values[i].size(), 4);
      out += values[i];
    }
    return out;
  }
  out += children[0].ptr.Encode();
  for (size_t i = 0; i < keys.size(); ++i) {
    AppendLe(out, keys[i].size(), 2);
    out += keys[i];
    out += children[i + 1].ptr.Encode();
  }
  return out;
}

Result<Node> Node::Decode(std::string_view bytes) {
  const Status bad = Status::Corruption("malformed tree node");
  Reader in(bytes);
  uint64_t type = 0, level = 0, count = 0;
  if (!in.Int(1, type) || !in.Int(1, level) || !in.Int(4, count)) return bad;
  if ((type != kLeafType && type != kInternalType) ||
      (type == kLeafType) != (level == 0) || count > bytes.size()) {
    return bad;
  }
  Node node;
  node.level = static_cast<uint8_t>(level);
  node.keys.resize(count);
  if (node.leaf()) {
    node.values.resize(count);
  } else {
    node.children.resize(count + 1);
    if (!in.Ptr(node.children[0].ptr)) return bad;
  }
  for (size_t i = 0; i < count; ++i) {
    uint64_t key_size = 0;
    if (!in.Int(2, key_size) || !in.Bytes(key_size, node.keys[i])) return bad;
    if (i > 0 && node.keys[i - 1] >= node.keys[i]) return bad;
    if (node.leaf()) {
      uint64_t value_size = 0;
      if (!in.Int(4, value_size) || !in.Bytes(value_size, node.values[i])) {
        return bad;
      }
    } else if (!in.Ptr(node.children[i + 1].ptr)) {
      return bad;
    }
  }
  if (!in.done()) return bad;
  return node;
}

BTree::BTree(NodeLoader& loader, size_t capacity, BlockPtr root,
             uint32_t height)
    : loader_(loader), capacity_(capacity), height_(height) {
  root_.ptr = std::move(root);
}

BTree BTree::Empty(NodeLoader& loader, size_t capacity) {
  BTree tree(loader, capacity, BlockPtr{}, 1);
  tree.root_.dirty = tree.NewDirty(0);
  return tree;
}

std::shared_ptr<Node> BTree::NewDirty(uint8_t level) {
  auto node = std::make_shared<Node>();
  node->level = level;
  ++dirty_nodes_;
  return node;
}

Result<const Node*> BTree::Resolve(const ChildRef& ref, uint8_t level,
                                   std::shared_ptr<const Node>* hold) const {
  if (ref.dirty) return ref.dirty.get();
  EFS_ASSIGN_OR_RETURN(*hold, loader_.LoadNode(ref.ptr, level));
  return hold->get();
}

Result<Node*> BTree::Mutable(ChildRef& ref, uint8_t level) {
  if (ref.dirty) return ref.dirty.get();
  EFS_ASSIGN_OR_RETURN(std::shared_ptr<const Node> clean,
                       loader_.LoadNode(ref.ptr, level));
  ref.dirty = std::make_shared<Node>(*clean);
  ++dirty_nodes_;
  retired_.push_back(ref.ptr.name);
  return ref.dirty.get();
}

Result<std::optional<std::string>> BTree::Get(std::string_view key) const {
  uint8_t level = static_cast<uint8_t>(height_ - 1);
  std::shared_ptr<const Node> hold;
  EFS_ASSIGN_OR_RETURN(const Node* node, Resolve(root_, level, &hold));
  while (!node->leaf()) {
    // `hold` keeps the parent alive while its child is resolved.
    std::shared_ptr<const Node> next;
    EFS_ASSIGN_OR_RETURN(
        node, Resolve(node->children[ChildIndex(*node, key)], --level, &next));
    hold = std::move(next);
  }
  auto it = std::lower_bound(node->keys.begin(), node->keys.end(), key);
  if (it == node->keys.end() || *it != key) return std::optional<std::string>();
  return std::optional<std::string>(node->values[it - node->keys.begin()]);
}

Result<std::vector<std::pair<std::string, std::string>>> BTree::Scan(
    std::string_view start, std::string_view end, size_t limit) const {
  std::vector<std::pair<std::string, std::string>> out;
  if (limit == 0 || (!end.empty() && end <= start)) return out;
  EFS_RETURN_IF_ERROR(ScanRec(root_, static_cast<uint8_t>(height_ - 1), start,
                              end, limit, out));
  return out;
}

Status BTree::ScanRec(
    const ChildRef& ref, uint8_t level, std::string_view start,
    std::string_view end, size_t limit,
    std::vector<std::pair<std::string, std::string>>& out) const {
  std::shared_ptr<const Node> hold;
  EFS_ASSIGN_OR_RETURN(const Node* node, Resolve(ref, level, &hold));
  if (node->leaf()) {
    auto it = std::lower_bound(node->keys.begin(), node->keys.end(), start);
    for (; it != node->keys.end() && out.size() < limit; ++it) {
      if (!end.empty() && *it >= end) break;
      out.emplace_back(*it, node->values[it - node->keys.begin()]);
    }
    return Status::Ok();
  }
  // Child i holds keys in [keys[i-1], keys[i]): stop once a child starts at
  // or after `end`.
  for (size_t i = ChildIndex(*node, start); i < node->children.size(); ++i) {
    if (out.size() >= limit) break;
    if (i > 0 && !end.empty() && node->keys[i - 1] >= end) break;
    EFS_RETURN_IF_ERROR(
        ScanRec(node->children[i], level - 1, start, end, limit, out));
  }
  return Status::Ok();
}

Status BTree::Put(std::string_view key, std::string_view value) {
  if (key.empty() || key.size() > kMaxTreeKeySize) {
    return Status::InvalidArgument("tree key must be 1.." +
                                   std::to_string(kMaxTreeKeySize) + " bytes");
  }
  if (value.size() > max_value_size()) {
    return Status::InvalidArgument("value of " + std::to_string(value.size()) +
                                   " bytes exceeds the limit of " +
                                   std::to_string(max_value_size()));
  }
  EFS_ASSIGN_OR_RETURN(Node * root,
                       Mutable(root_, static_cast<uint8_t>(height_ - 1)));
  EFS_RETURN_IF_ERROR(PutRec(*root, key, value));
  if (root->EncodedSize() > capacity_) {
    auto [separator, right] = Split(*root);
    auto new_root = NewDirty(static_cast<uint8_t>(height_));
    new_root->keys.push_back(std::move(separator));
    new_root->children.push_back(std::move(root_));
    new_root->children.push_back(ChildRef{BlockPtr{}, std::move(right)});
    root_ = ChildRef{BlockPtr{}, std::move(new_root)};
    ++height_;
  }
  return Status::Ok();
}

Status BTree::PutRec(Node& node, std::string_view key, std::string_view value) {
  if (node.leaf()) {
    auto it = std::lower_bound(node.keys.begin(), node.keys.end(), key);
    const size_t pos = it - node.keys.begin();
    if (it != node.keys.end() && *it == key) {
      node.values[pos].assign(value);
    } else {
      node.keys.emplace(it, key);
      node.values.emplace(node.values.begin() + pos, value);
    }
    return Status::Ok();
  }
  const size_t index = ChildIndex(node, key);
  EFS_ASSIGN_OR_RETURN(
      Node * child,
      Mutable(node.children[index], static_cast<uint8_t>(node.level - 1)));
  EFS_RETURN_IF_ERROR(PutRec(*child, key, value));
  SplitChildIfFull(node, index);
  return Status::Ok();
}

void BTree::SplitChildIfFull(Node& parent, size_t index) {
  Node& child = *parent.children[index].dirty;
  if (child.EncodedSize() <= capacity_) return;
  auto [separator, right] = Split(child);
  parent.keys.insert(parent.keys.begin() + index, std::move(separator));
  parent.children.insert(parent.children.begin() + index + 1,
                         ChildRef{BlockPtr{}, std::move(right)});
}

std::pair<std::string, std::shared_ptr<Node>> BTree::Split(Node& node) {
  // Picks the split point that best balances the two halves by bytes, so
  // each half fits even when one entry is as large as allowed.
  const size_t n = node.keys.size();
  std::vector<size_t> sizes(n);
  size_t total = 0;
  for (size_t i = 0; i < n; ++i) {
    sizes[i] = node.leaf() ? LeafEntrySize(node.keys[i], node.values[i])
                           : InternalEntrySize(node.keys[i]);
    total += sizes[i];
  }
  size_t mid = 1, left = sizes[0];
  while (mid + 1 < n && left + sizes[mid] / 2 < total / 2) left += sizes[mid++];
  // For an internal node keys[mid] moves up, so both sides keep a key.
  if (!node.leaf()) mid = std::clamp<size_t>(mid, 1, n - 2);
  auto right = NewDirty(node.level);
  if (node.leaf()) {
    right->keys.assign(node.keys.begin() + mid, node.keys.end());
    right->values.assign(node.values.begin() + mid, node.values.end());
    node.keys.resize(mid);
    node.values.resize(mid);
    return {right->keys.front(), std::move(right)};
  }
  std::string separator = std::move(node.keys[mid]);
  right->keys.assign(node.keys.begin() + mid + 1, node.keys.end());
  right->children.assign(node.children.begin() + mid + 1, node.children.end());
  node.keys.resize(mid);
  node.children.resize(mid + 1);
  return {std::move(separator), std::move(right)};
}

Result<bool> BTree::Delete(std::string_view key) {
  // A read-only probe first: deleting an absent key must not copy nodes.
  EFS_ASSIGN_OR_RETURN(std::optional<std::string> existing, Get(key));
  if (!existing) return false;
  EFS_ASSIGN_OR_RETURN(Node * root,
                       Mutable(root_, static_cast<uint8_t>(height_ - 1)));
  EFS_RETURN_IF_ERROR(DeleteRec(*root, key));
  // Collapse roots left with a single child (such a root is always dirty:
  // only a merge empties an internal node).
  while (root_.dirty && !root_.dirty->leaf() && root_.dirty->keys.empty()) {
    ChildRef only = std::move(root_.dirty->children[0]);
    --dirty_nodes_;
    root_ = std::move(only);
    --height_;
  }
  return true;
}

Status BTree::DeleteRec(Node& node, std::string_view key) {
  if (node.leaf()) {
    auto it = std::lower_bound(node.keys.begin(), node.keys.end(), key);
    const size_t pos = it - node.keys.begin();
    node.keys.erase(it);
    node.values.erase(node.values.begin() + pos);
    return Status::Ok();
  }
  const size_t index = ChildIndex(node, key);
  EFS_ASSIGN_OR_RETURN(
      Node * child,
      Mutable(node.children[index], static_cast<uint8_t>(node.level - 1)));
  EFS_RETURN_IF_ERROR(DeleteRec(*child, key));
  if (Underfull(*child) && node.children.size() > 1) {
    return Rebalance(node, index);
  }
  return Status::Ok();
}

bool BTree::Underfull(const Node& node) const {
  return node.keys.empty() || node.EncodedSize() < capacity_ / 4;
}

Status BTree::Rebalance(Node& parent, size_t index) {
  // Merge the child with a neighbour; if the result overflows, split it
  // again, which redistributes the entries evenly.
  const size_t left_index =
      index + 1 < parent.children.size() ? index : index - 1;
  const uint8_t level = static_cast<uint8_t>(parent.level - 1);
  EFS_ASSIGN_OR_RETURN(Node * left,
                       Mutable(parent.children[left_index], level));
  EFS_ASSIGN_OR_RETURN(Node * right,
                       Mutable(parent.children[left_index + 1], level));
  if (left->leaf()) {
    std::move(right->keys.begin(), right->keys.end(),
              std::back_inserter(left->keys));
    std::move(right->values.begin(), right->values.end(),
              std::back_inserter(left->values));
  } else {
    left->keys.push_back(std::move(parent.keys[left_index]));
    std::move(right->keys.begin(), right->keys.end(),
              std::back_inserter(left->keys));
    std::move(right->children.begin(), right->children.end(),
              std::back_inserter(left->children));
  }
  parent.keys.erase(parent.keys.begin() + left_index);
  parent.children.erase(parent.children.begin() + left_index + 1);
  --dirty_nodes_;
  SplitChildIfFull(parent, left_index);
  return Status::Ok();
}

Result<FlushedTree> BTree::Flush(Sealer& sealer) {
  FlushedTree out;
  EFS_ASSIGN_OR_RETURN(out.root, FlushRec(root_, sealer, out));
  out.height = height_;
  return out;
}

Result<BlockPtr> BTree::FlushRec(ChildRef& ref, Sealer& sealer,
                                 FlushedTree& out) {
  if (!ref.dirty) return ref.ptr;
  for (auto& child : ref.dirty->children) {
    EFS_RETURN_IF_ERROR(FlushRec(child, sealer, out).status());
  }
  std::string name = sealer.NewBlockName();
  EFS_ASSIGN_OR_RETURN(SealedBlock sealed, sealer.Seal(BlockKind::kNode, name,
                                                       ref.dirty->Encode()));
  ref.ptr = BlockPtr{name, sealed.tag};
  out.puts.emplace_back(std::move(name), std::move(sealed.bytes));
  return ref.ptr;
}

}  // namespace enclavefs
