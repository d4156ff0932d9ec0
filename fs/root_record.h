// RootRecord: the decoded root record of a volume, the one mutable block on
// the host (key "root"). It names the tree root and carries the generation
// that orders commits. Plain value type, safe to copy between threads.
// Layout: docs/format.md, "Root record and tree nodes".
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "blockstore/status.h"
#include "fs/btree.h"
#include "fs/sealer_impl.h"

namespace enclavefs {

inline constexpr std::string_view kRootKey = "root";
inline constexpr uint32_t kRootRecordVersion = 1;

// The decoded root record (layout in docs/format.md).
struct RootRecord {
  uint32_t version = kRootRecordVersion;
  VolumeUuid uuid{};
  uint64_t generation = 0;
  BlockPtr tree_root;
  uint32_t tree_height = 1;
  uint64_t next_id = 1;
  uint64_t node_blocks = 0;
  uint64_t data_blocks = 0;

  std::string Encode() const;
  // Corruption if malformed or of an unknown version.
  static Result<RootRecord> Decode(std::string_view bytes);
};

// BLAKE2b-256 of the sealed root record bytes, lowercase hex: the "root
// hash" reported at open and kept by anchors.
std::string RootHash(std::string_view sealed_root);

}  // namespace enclavefs
