// Sealer: authenticated encryption of every block that leaves the enclave.
//
// A sealed block is the AEAD encryption of a u32 length and the plaintext
// padded to the fixed size of its class (data blocks: the volume's block
// size; tree nodes: the node size; the root record: kRootRecordSize), so the
// host sees one size per class. The length lies outside the class, so a
// block's capacity is the whole class: a data block holds exactly one
// volume block, keeping page-aligned file writes within one block. The
// associated data binds the format version, the volume UUID, the
// block's host name and its kind: a block moved to another name, kind or
// volume fails to open. The exact layout is in docs/format.md.
//
// Nonces never repeat for a key: each Sealer derives a fresh session subkey
// from the encryption key and a random 128-bit salt, and counts nonces under
// it; the salt is stored in each block so Open can derive the same subkey.
//
// Block names come from the naming subkey, the session salt and a counter:
// opaque, never reused, revealing no file, inode or offset.
//
// Thread safety: all methods are safe to call concurrently.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "blockstore/status.h"

namespace enclavefs {

enum class BlockKind : uint8_t {
  kRoot = 2,
  kNode = 3,
  kData = 4,
  // A whole value of SealedBlockStore; its class is the next power of two
  // >= 4 KiB that holds it (up to kMaxOpaqueClassSize).
  kOpaque = 5,
};

// Fixed class size of the root record.
inline constexpr size_t kRootRecordSize = 4096;
// Smallest and largest class of kOpaque blocks.
inline constexpr size_t kMinOpaqueClassSize = 4096;
inline constexpr size_t kMaxOpaqueClassSize = 2u << 20;
// Bytes a sealed block adds to its class size: 32-byte prefix, the
// encrypted u32 payload length and the 16-byte tag.
inline constexpr size_t kSealedOverhead = 52;
// The encrypted u32 payload length that precedes the padded class.
inline constexpr size_t kClassLengthPrefix = 4;

enum class CipherId : uint8_t {
  kAes256Gcm = 1,
  kXChaCha20Poly1305 = 2,
};

inline constexpr size_t kTagSize = 16;
using Tag = std::array<uint8_t, kTagSize>;

struct SealedBlock {
  std::string bytes;  // what the host stores
  Tag tag;            // the AEAD tag; parents keep it to detect replays
};

class Sealer {
 public:
  virtual ~Sealer() = default;

  // Largest plaintext a block of `kind` holds: its class size (for kOpaque
  // the largest class).
  virtual size_t Capacity(BlockKind kind) const = 0;

  // A fresh host name for a new block (16 opaque bytes).
  virtual std::string NewBlockName() = 0;

  // Seals `plaintext` (REQUIRES: size <= Capacity(kind)) for host name `name`.
  virtual Result<SealedBlock> Seal(BlockKind kind, std::string_view name,
                                   std::string_view plaintext) = 0;

  // Opens a sealed block read from host name `name`. With `expected_tag`,
  // the block's tag must equal it (this is what detects a replayed or
  // swapped block). Corruption on any mismatch, wrong size or failed
  // authentication; the message names the block kind, never secret data.
  // Decrypts in place and returns the plaintext, a part of `sealed`; on
  // failure `sealed`'s contents are unspecified.
  virtual Result<std::span<char>> OpenInPlace(
      BlockKind kind, std::string_view name, std::span<char> sealed,
      const Tag* expected_tag = nullptr) = 0;

  // OpenInPlace, with the plaintext moved to the front of `sealed`'s own
  // buffer: a caller done with the sealed bytes should move them in.
  Result<std::string> Open(BlockKind kind, std::string_view name,
                           std::string sealed,
                           const Tag* expected_tag = nullptr);
};

}  // namespace enclavefs
