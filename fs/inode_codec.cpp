#include "fs/inode_codec.h"

#include <sodium.h>
#include <sys/stat.h>

#include <array>
#include <limits>

#include "fs/crypto.h"

namespace enclavefs {
namespace {

constexpr uint8_t kInodeRecordVersion = 1;
constexpr char kInodeTag = 0x01;
constexpr char kDirentTag = 0x02;
constexpr char kXattrTag = 0x03;
constexpr char kOrphanTag = 0x04;
constexpr char kInodeCountTag = 0x05;
constexpr size_t kDirentNameAt = 1 + 8 + 8;
constexpr int64_t kNanosPerSecond = 1'000'000'000;

uint64_t ReadBe64(std::string_view in, size_t at) {
  uint64_t v = 0;
  for (size_t i = 0; i < 8; ++i)
    v = (v << 8) | static_cast<uint8_t>(in[at + i]);
  return v;
}

std::string TaggedInodeKey(char tag, uint64_t ino) {
  std::string key(1, tag);
  AppendBe64(key, ino);
  return key;
}

void PutVarint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

uint64_t ZigZag(int64_t v) {
  return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
}
int64_t UnZigZag(uint64_t v) {
  return static_cast<int64_t>(v >> 1) ^ -static_cast<int64_t>(v & 1);
}

// Reads the fields of a record in order; any failure sticks.
class VarintReader {
 public:
  explicit VarintReader(std::string_view in) : in_(in) {}

  uint64_t Next(uint64_t max = std::numeric_limits<uint64_t>::max()) {
    uint64_t v = 0;
    for (int shift = 0; ok_; shift += 7) {
      if (pos_ >= in_.size() || shift > 63) {
        ok_ = false;
        break;
      }
      const uint8_t byte = static_cast<uint8_t>(in_[pos_++]);
      v |= static_cast<uint64_t>(byte & 0x7f) << shift;
      if (!(byte & 0x80)) break;
    }
    if (v > max) ok_ = false;
    return ok_ ? v : 0;
  }

  Timespec NextTime() {
    Timespec t;
    t.sec = UnZigZag(Next());
    t.nsec = static_cast<int64_t>(Next(kNanosPerSecond - 1));
    return t;
  }

  std::string NextBytes() {
    const uint64_t n = Next();
    if (!ok_ || n > in_.size() - pos_) {
      ok_ = false;
      return {};
    }
    std::string out(in_.substr(pos_, n));
    pos_ += n;
    return out;
  }

  bool done() const { return ok_ && pos_ == in_.size(); }

 private:
  std::string_view in_;
  size_t pos_ = 0;
  bool ok_ = true;
};

}  // namespace

std::string InodeRecord::Encode() const {
  std::string out(1, static_cast<char>(kInodeRecordVersion));
  for (uint64_t v : {uint64_t{mode}, uint64_t{nlink}, uint64_t{uid},
                     uint64_t{gid}, rdev, size, data_blocks, parent}) {
    PutVarint(out, v);
  }
  for (const Timespec& t : {atime, mtime, ctime}) {
    PutVarint(out, ZigZag(t.sec));
    PutVarint(out, static_cast<uint64_t>(t.nsec));
  }
  PutVarint(out, symlink_target.size());
  out += symlink_target;
  return out;
}

Result<InodeRecord> InodeRecord::Decode(uint64_t ino, std::string_view bytes) {
  if (bytes.empty() || static_cast<uint8_t>(bytes[0]) != kInodeRecordVersion) {
    return Status::Corruption("inode " + std::to_string(ino) +
                              ": unknown record version");
  }
  constexpr uint64_t kMax32 = std::numeric_limits<uint32_t>::max();
  VarintReader r(bytes.substr(1));
  InodeRecord rec;
  rec.ino = ino;
  rec.mode = static_cast<uint32_t>(r.Next(kMax32));
  rec.nlink = static_cast<uint32_t>(r.Next(kMax32));
  rec.uid = static_cast<uint32_t>(r.Next(kMax32));
  rec.gid = static_cast<uint32_t>(r.Next(kMax32));
  rec.rdev = r.Next();
  rec.size = r.Next();
  rec.data_blocks = r.Next();
  rec.parent = r.Next();
  rec.atime = r.NextTime();
  rec.mtime = r.NextTime();
  rec.ctime = r.NextTime();
  rec.symlink_target = r.NextBytes();
  if (!r.done()) {
    return Status::Corruption("inode " + std::to_string(ino) +
                              ": malformed record");
  }
  return rec;
}

bool InodeRecord::is_dir() const { return S_ISDIR(mode); }
bool InodeRecord::is_regular() const { return S_ISREG(mode); }
bool InodeRecord::is_symlink() const { return S_ISLNK(mode); }

InodeAttr InodeRecord::ToAttr(uint32_t block_size) const {
  InodeAttr a;
  a.ino = ino;
  a.mode = mode;
  a.nlink = nlink;
  a.uid = uid;
  a.gid = gid;
  a.rdev = rdev;
  a.size = size;
  a.blocks = (data_blocks * block_size + 511) / 512;
  a.atime = atime;
  a.mtime = mtime;
  a.ctime = ctime;
  return a;
}

std::string DirentValue::Encode() const {
  std::string out;
  AppendBe64(out, ino);
  for (int i = 3; i >= 0; --i)
    out.push_back(static_cast<char>(type >> (8 * i)));
  return out;
}

Result<DirentValue> DirentValue::Decode(std::string_view bytes) {
  if (bytes.size() != 12)
    return Status::Corruption("malformed directory entry");
  DirentValue v;
  v.ino = ReadBe64(bytes, 0);
  for (size_t i = 8; i < 12; ++i) {
    v.type = (v.type << 8) | static_cast<uint8_t>(bytes[i]);
  }
  return v;
}

uint64_t NameHash(std::string_view name) {
  std::array<uint8_t, 8> digest{};
  crypto_generichash(digest.data(), digest.size(),
                     reinterpret_cast<const uint8_t*>(name.data()), name.size(),
                     nullptr, 0);
  uint64_t v = 0;
  for (uint8_t b : digest) v = (v << 8) | b;
  constexpr uint64_t kSpan = (uint64_t{1} << 63) - kFirstDirOffset;
  return kFirstDirOffset + v % kSpan;
}

std::string InodeKey(uint64_t ino) { return TaggedInodeKey(kInodeTag, ino); }

std::string DirPrefix(uint64_t parent) {
  return TaggedInodeKey(kDirentTag, parent);
}

std::string DirHashPrefix(uint64_t parent, uint64_t hash) {
  std::string key = DirPrefix(parent);
  AppendBe64(key, hash);
  return key;
}

std::string DirentKey(uint64_t parent, std::string_view name) {
  std::string key = DirHashPrefix(parent, NameHash(name));
  key += name;
  return key;
}

Result<std::string> DirentName(std::string_view key) {
  if (key.size() <= kDirentNameAt)
    return Status::Corruption("short dirent key");
  return std::string(key.substr(kDirentNameAt));
}

Result<uint64_t> DirentHash(std::string_view key) {
  if (key.size() <= kDirentNameAt)
    return Status::Corruption("short dirent key");
  return ReadBe64(key, 9);
}

std::string XattrPrefix(uint64_t ino) { return TaggedInodeKey(kXattrTag, ino); }

std::string XattrKey(uint64_t ino, std::string_view name) {
  std::string key = XattrPrefix(ino);
  key += name;
  return key;
}

std::string OrphanKey(uint64_t ino) { return TaggedInodeKey(kOrphanTag, ino); }

uint64_t KeyInode(std::string_view key) {
  return key.size() < 9 ? 0 : ReadBe64(key, 1);
}

std::string InodeCountKey() { return std::string(1, kInodeCountTag); }

std::string PrefixEnd(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty() && static_cast<uint8_t>(end.back()) == 0xff)
    end.pop_back();
  if (!end.empty()) end.back() = static_cast<char>(end.back() + 1);
  return end;
}

std::string EncodeU64Le(uint64_t v) {
  std::string out;
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>(v >> (8 * i)));
  return out;
}

Result<uint64_t> DecodeU64Le(std::string_view bytes) {
  if (bytes.size() != 8) return Status::Corruption("malformed counter");
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(bytes[i]);
  return v;
}

}  // namespace enclavefs
