#include "fs/node_cache.h"

namespace enclavefs {

NodeCache::NodeCache(size_t capacity_bytes) : capacity_(capacity_bytes) {}

const NodeCache::Entry* NodeCache::Lookup(const BlockPtr& ptr) {
  auto it = index_.find(ptr.name);
  if (it == index_.end() || it->second->tag != ptr.tag) return nullptr;
  lru_.splice(lru_.begin(), lru_, it->second);
  return &*it->second;
}

std::shared_ptr<const Node> NodeCache::GetNode(const BlockPtr& ptr) {
  std::lock_guard lock(mu_);
  const Entry* entry = Lookup(ptr);
  return entry ? entry->node : nullptr;
}

std::optional<BlockData> NodeCache::GetData(const BlockPtr& ptr) {
  std::lock_guard lock(mu_);
  const Entry* entry = Lookup(ptr);
  if (!entry || !entry->data.owner) return std::nullopt;
  return entry->data;
}

bool NodeCache::Contains(const BlockPtr& ptr) {
  std::lock_guard lock(mu_);
  return Lookup(ptr) != nullptr;
}

void NodeCache::PutNode(const BlockPtr& ptr, std::shared_ptr<const Node> node,
                        size_t charge) {
  Insert(Entry{ptr.name, ptr.tag, std::move(node), BlockData{}, charge});
}

void NodeCache::PutData(const BlockPtr& ptr, BlockData data) {
  const size_t charge = data.bytes.size() + ptr.name.size();
  Insert(Entry{ptr.name, ptr.tag, nullptr, std::move(data), charge});
}

void NodeCache::Insert(Entry entry) {
  if (entry.charge > capacity_) return;
  std::lock_guard lock(mu_);
  if (auto it = index_.find(entry.name); it != index_.end()) {
    used_ -= it->second->charge;
    lru_.erase(it->second);
    index_.erase(it);
  }
  used_ += entry.charge;
  lru_.push_front(std::move(entry));
  index_[lru_.front().name] = lru_.begin();
  while (used_ > capacity_) {
    used_ -= lru_.back().charge;
    index_.erase(lru_.back().name);
    lru_.pop_back();
  }
}

void NodeCache::Erase(const std::string& name) {
  std::lock_guard lock(mu_);
  auto it = index_.find(name);
  if (it == index_.end()) return;
  used_ -= it->second->charge;
  lru_.erase(it->second);
  index_.erase(it);
}

size_t NodeCache::used_bytes() const {
  std::lock_guard lock(mu_);
  return used_;
}

}  // namespace enclavefs
