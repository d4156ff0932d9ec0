// NodeCache: a byte-bounded LRU of verified, decrypted clean blocks.
//
// Holds tree nodes and data-block plaintexts by host name. An entry is only
// ever inserted after the block was opened and checked against its parent's
// tag; the tag is kept and re-checked on lookup, so a cached entry can only
// answer for the exact pointer it was verified under. Blocks are immutable
// (names are never reused), so entries never go stale; dirty (uncommitted)
// state is held by the tree and the Volume, not here, which pins it.
//
// Ownership: entries are shared_ptrs, so a reader keeps an evicted entry
// alive as long as it needs it. Thread safety: all methods are safe to call
// concurrently (one internal mutex).
#pragma once

#include <cstddef>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "fs/btree.h"

namespace enclavefs {

// A data block's plaintext: `bytes`, kept alive and unchanged by `owner`
// (the buffer it was decrypted in, which may hold the other blocks fetched
// in the same Get, up to one reply frame).
struct BlockData {
  std::shared_ptr<const void> owner;
  std::string_view bytes;
};

class NodeCache {
 public:
  // `capacity_bytes` bounds the sum of entry charges (0 disables caching).
  explicit NodeCache(size_t capacity_bytes);

  // The entry cached for ptr.name if its tag equals ptr.tag, else nullptr.
  std::shared_ptr<const Node> GetNode(const BlockPtr& ptr);
  std::optional<BlockData> GetData(const BlockPtr& ptr);

  // Inserts (or refreshes) an entry charged `charge` bytes (data: its
  // plaintext and name), evicting least recently used entries to stay within
  // capacity. A data entry's buffer may be larger than its charge (block
  // padding, siblings from one reply frame); blocks fetched together are
  // inserted together, so they usually leave together too.
  void PutNode(const BlockPtr& ptr, std::shared_ptr<const Node> node,
               size_t charge);
  void PutData(const BlockPtr& ptr, BlockData data);

  // Drops the entry for `name` if present (the block was deleted).
  void Erase(const std::string& name);

  bool Contains(const BlockPtr& ptr);
  size_t used_bytes() const;

 private:
  struct Entry {
    std::string name;
    Tag tag;
    std::shared_ptr<const Node> node;
    BlockData data;
    size_t charge;
  };
  using List = std::list<Entry>;

  // Returns the entry for ptr (moved to the front), or nullptr.
  const Entry* Lookup(const BlockPtr& ptr);  // REQUIRES mu_ held
  void Insert(Entry entry);

  const size_t capacity_;
  mutable std::mutex mu_;
  List lru_;  // front = most recently used; GUARDED_BY(mu_)
  std::unordered_map<std::string, List::iterator> index_;  // GUARDED_BY(mu_)
  size_t used_ = 0;                                        // GUARDED_BY(mu_)
};

}  // namespace enclavefs
