#include "fs/root_record.h"

#include <sodium.h>

#include <array>
#include <cstring>

#include "fs/crypto.h"

namespace enclavefs {
namespace {

constexpr char kRootMagic[4] = {'E', 'F', 'S', 'R'};
constexpr size_t kRootRecordBytes = 4 + 4 + 16 + 8 + kBlockPtrSize + 4 + 8 * 3;

void AppendLe(std::string& out, uint64_t v, size_t bytes) {
  for (size_t i = 0; i < bytes; ++i)
    out.push_back(static_cast<char>(v >> (8 * i)));
}

uint64_t ReadLe(std::string_view in, size_t at, size_t bytes) {
  uint64_t v = 0;
  for (size_t i = 0; i < bytes; ++i) {
    v |= static_cast<uint64_t>(static_cast<uint8_t>(in[at + i])) << (8 * i);
  }
  return v;
}

}  // namespace

std::string RootHash(std::string_view sealed_root) {
  std::array<uint8_t, 32> hash{};
  crypto_generichash(hash.data(), hash.size(),
                     reinterpret_cast<const uint8_t*>(sealed_root.data()),
                     sealed_root.size(), nullptr, 0);
  return HexEncode(hash);
}

std::string RootRecord::Encode() const {
  std::string out(kRootMagic, sizeof(kRootMagic));
  AppendLe(out, version, 4);
  out.append(reinterpret_cast<const char*>(uuid.data()), uuid.size());
  AppendLe(out, generation, 8);
  out += tree_root.Encode();
  AppendLe(out, tree_height, 4);
  AppendLe(out, next_id, 8);
  AppendLe(out, node_blocks, 8);
  AppendLe(out, data_blocks, 8);
  return out;
}

Result<RootRecord> RootRecord::Decode(std::string_view in) {
  if (in.size() != kRootRecordBytes ||
      std::memcmp(in.data(), kRootMagic, sizeof(kRootMagic)) != 0) {
    return Status::Corruption("malformed root record");
  }
  RootRecord r;
  r.version = static_cast<uint32_t>(ReadLe(in, 4, 4));
  if (r.version != kRootRecordVersion) {
    return Status::Corruption("unsupported root record version " +
                              std::to_string(r.version));
  }
  std::memcpy(r.uuid.data(), in.data() + 8, r.uuid.size());
  r.generation = ReadLe(in, 24, 8);
  EFS_ASSIGN_OR_RETURN(r.tree_root,
                       BlockPtr::Decode(in.substr(32, kBlockPtrSize)));
  size_t at = 32 + kBlockPtrSize;
  r.tree_height = static_cast<uint32_t>(ReadLe(in, at, 4));
  r.next_id = ReadLe(in, at + 4, 8);
  r.node_blocks = ReadLe(in, at + 12, 8);
  r.data_blocks = ReadLe(in, at + 20, 8);
  if (r.tree_height < 1 || r.tree_height > 64) {
    return Status::Corruption("root record has an impossible tree height");
  }
  return r;
}

}  // namespace enclavefs
