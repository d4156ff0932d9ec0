// Inode codec: the records the POSIX layer keeps in the Volume's tree, their
// keys and their byte encodings (layouts in docs/design.md, "POSIX layer").
//
// Keys (first byte below 0x80, the caller's half of the Volume key space):
//   0x01 | ino u64 BE                        inode record
//   0x02 | parent u64 BE | hash u64 BE | name  directory entry
//   0x03 | ino u64 BE | name                 extended attribute value
//   0x04 | ino u64 BE                        orphan marker (unlinked, in use)
//   0x05                                     live inode count (u64 LE)
//
// Pure functions on values; safe to call from any thread. Decoders treat
// their input as hostile-until-proven-otherwise: anything malformed is
// Corruption, never a crash.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "blockstore/status.h"
#include "fs/filesystem.h"

namespace enclavefs {

// The lowest ReadDir position a name hash maps to: 0 means "start", and 1
// and 2 are left to the FUSE layer for "." and "..".
inline constexpr uint64_t kFirstDirOffset = 3;

// One inode as stored. InodeAttr::blocks is data_blocks * block size in
// 512-byte units, rounded up.
struct InodeRecord {
  uint64_t ino = 0;  // from the key, not encoded
  uint32_t mode = 0;
  uint32_t nlink = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint64_t rdev = 0;
  uint64_t size = 0;
  uint64_t data_blocks = 0;  // stored data blocks (holes excluded)
  uint64_t parent = 0;       // directories only: the containing directory
  Timespec atime, mtime, ctime;
  std::string symlink_target;  // symlinks only

  // Version 1: a version byte, then LEB128 varints in field order (times as
  // zigzag seconds + nanoseconds), then a length-prefixed symlink target.
  std::string Encode() const;
  // Corruption for an unknown version, truncation, trailing bytes or an
  // out-of-range field.
  static Result<InodeRecord> Decode(uint64_t ino, std::string_view bytes);

  bool is_dir() const;
  bool is_regular() const;
  bool is_symlink() const;
  InodeAttr ToAttr(uint32_t block_size) const;
};

// What a directory entry names: the child and its file type bits.
struct DirentValue {
  uint64_t ino = 0;
  uint32_t type = 0;  // S_IFMT bits of the child's mode

  std::string Encode() const;  // ino u64 BE | type u32 BE
  // Corruption unless exactly 12 bytes.
  static Result<DirentValue> Decode(std::string_view bytes);
};

// 63-bit BLAKE2b hash of a name, in [kFirstDirOffset, 2^63): the stable
// ReadDir position of every entry with that name.
uint64_t NameHash(std::string_view name);

std::string InodeKey(uint64_t ino);
std::string DirPrefix(uint64_t parent);
std::string DirHashPrefix(uint64_t parent, uint64_t hash);
std::string DirentKey(uint64_t parent, std::string_view name);
// The name and hash inside a directory entry key; Corruption if too short.
Result<std::string> DirentName(std::string_view key);
Result<uint64_t> DirentHash(std::string_view key);
std::string XattrPrefix(uint64_t ino);
std::string XattrKey(uint64_t ino, std::string_view name);
std::string OrphanKey(uint64_t ino);
// The inode number inside an inode, orphan or xattr key; 0 if too short.
uint64_t KeyInode(std::string_view key);
std::string InodeCountKey();

// The smallest key greater than every key starting with `prefix` ("" if
// there is none). REQUIRES: prefix has a byte below 0xFF.
std::string PrefixEnd(std::string_view prefix);

std::string EncodeU64Le(uint64_t v);
// Corruption unless exactly 8 bytes.
Result<uint64_t> DecodeU64Le(std::string_view bytes);

}  // namespace enclavefs
