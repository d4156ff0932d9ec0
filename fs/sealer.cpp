#include <sodium.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <utility>

#include "fs/sealer_impl.h"

namespace enclavefs {
namespace {

// Byte 0 of every sealed block: high nibble 0xE marks EnclaveFS, low nibble
// is the format version.
constexpr uint8_t kMagicVersionByte = 0xE0 | kFormatVersion;
constexpr size_t kPrefixSize = 32;  // magic..counter, before the ciphertext
static_assert(kSealedOverhead == kPrefixSize + kClassLengthPrefix + kTagSize);
constexpr size_t kSaltOffset = 8;
constexpr size_t kCounterOffset = 24;
constexpr std::string_view kSessionInfo = "enclavefs seal v1";
constexpr size_t kNameSize = 16;
constexpr size_t kNamePrefixSize = 8;  // then a u64 BE counter

std::string_view KindName(BlockKind kind) {
  switch (kind) {
    case BlockKind::kRoot:
      return "root";
    case BlockKind::kNode:
      return "node";
    case BlockKind::kData:
      return "data";
    case BlockKind::kOpaque:
      return "opaque";
  }
  return "unknown";
}

Status BlockCorruption(BlockKind kind, std::string_view name,
                       std::string_view what) {
  return Status::Corruption(std::string(KindName(kind)) + " block " +
                            HexEncode(AsBytes(name)) + ": " +
                            std::string(what));
}

// Nonce = counter (LE) followed by zeros up to the cipher's nonce size.
void MakeNonce(uint64_t counter, std::span<uint8_t> nonce) {
  std::memset(nonce.data(), 0, nonce.size());
  StoreLe(nonce.data(), counter, 8);
}

}  // namespace

SealerImpl::SealerImpl(std::shared_ptr<const SealingContext> context)
    : context_(std::move(context)), next_counter_(0) {
  RandomBytes(salt_);
}

SealerImpl::SealerImpl(std::shared_ptr<const SealingContext> context,
                       const Salt& salt, uint64_t first_counter)
    : context_(std::move(context)), salt_(salt), next_counter_(first_counter) {}

size_t SealerImpl::ClassSize(BlockKind kind, size_t plaintext_size) const {
  switch (kind) {
    case BlockKind::kRoot:
      return kRootRecordSize;
    case BlockKind::kNode:
      return context_->node_size;
    case BlockKind::kData:
      return context_->block_size;
    case BlockKind::kOpaque:
      return std::max(kMinOpaqueClassSize, std::bit_ceil(plaintext_size));
  }
  return 0;
}

size_t SealerImpl::Capacity(BlockKind kind) const {
  return kind == BlockKind::kOpaque ? kMaxOpaqueClassSize : ClassSize(kind, 0);
}

SealerImpl::Position SealerImpl::Next() {
  std::lock_guard lock(mu_);
  if (next_counter_ >= kMaxCountersPerSalt) {
    RandomBytes(salt_);
    next_counter_ = 0;
  }
  return {salt_, next_counter_++};
}

Result<std::shared_ptr<const Aead>> SealerImpl::SubkeyFor(const Salt& salt) {
  {
    std::lock_guard lock(mu_);
    auto it = cache_.find(salt);
    if (it != cache_.end()) return it->second;
  }
  EFS_ASSIGN_OR_RETURN(SecureKey subkey,
                       HkdfSha256(context_->encryption_key.span(), salt,
                                  kSessionInfo, kKeySize));
  EFS_ASSIGN_OR_RETURN(std::shared_ptr<const Aead> aead,
                       Aead::Create(context_->cipher, subkey.span()));
  std::lock_guard lock(mu_);
  auto [it, inserted] = cache_.emplace(salt, aead);
  if (inserted) {
    cache_order_.push_back(salt);
    if (cache_order_.size() > kMaxCachedSubkeys) {
      cache_.erase(cache_order_.front());
      cache_order_.pop_front();
    }
  }
  return it->second;
}

std::string SealerImpl::AssociatedData(BlockKind kind,
                                       std::string_view name) const {
  std::string ad = "EFS";
  ad.push_back(static_cast<char>(kFormatVersion));
  ad.push_back(static_cast<char>(kind));
  ad.append(AsChars(context_->uuid));
  uint8_t len[2];
  StoreLe(len, name.size(), 2);
  ad.append(AsChars(len));
  ad.append(name);
  return ad;
}

std::string SealerImpl::NewBlockName() {
  Position pos = Next();
  // Session prefix, then the counter big-endian: names sort in creation
  // order, so the host's RocksDB lays out a file written in one go as one
  // run in its blob files and a cold sequential read becomes sequential I/O.
  // The host sees the same order in the blocks' clear (salt, counter) and
  // in their arrival, so this reveals nothing new (docs/format.md).
  std::string name(kNameSize, '\0');
  auto* out = reinterpret_cast<uint8_t*>(name.data());
  // BLAKE2b's shortest output is 16 bytes: hash, then keep the prefix.
  crypto_generichash(out, kNameSize, pos.salt.data(), pos.salt.size(),
                     context_->naming_key.data(), context_->naming_key.size());
  StoreBe(out + kNamePrefixSize, pos.counter, kNameSize - kNamePrefixSize);
  return name;
}

Result<SealedBlock> SealerImpl::Seal(BlockKind kind, std::string_view name,
                                     std::string_view plaintext) {
  const size_t class_size = ClassSize(kind, plaintext.size());
  if (class_size == 0 || name.size() > 0xffff) {
    return Status::InvalidArgument(
        "cannot seal: unknown block kind or name "
        "too long");
  }
  if (plaintext.size() > Capacity(kind)) {
    return Status::InvalidArgument(
        "cannot seal " + std::to_string(plaintext.size()) + " bytes into a " +
        std::string(KindName(kind)) + " block (capacity " +
        std::to_string(Capacity(kind)) + ")");
  }
  const Position pos = Next();
  EFS_ASSIGN_OR_RETURN(std::shared_ptr<const Aead> aead, SubkeyFor(pos.salt));

  const size_t body_size = kClassLengthPrefix + class_size;
  uint8_t head[kPrefixSize + kClassLengthPrefix] = {};
  head[0] = kMagicVersionByte;
  head[1] = static_cast<uint8_t>(kind);
  head[2] = static_cast<uint8_t>(context_->cipher);
  std::memcpy(head + kSaltOffset, pos.salt.data(), kSaltSize);
  StoreLe(head + kCounterOffset, pos.counter, 8);
  StoreLe(head + kPrefixSize, plaintext.size(), kClassLengthPrefix);
  // Appended piece by piece: only the padding and the tag's place are
  // zero-filled, not the whole block before the plaintext is copied in.
  SealedBlock out;
  out.bytes.reserve(kSealedOverhead + class_size);
  out.bytes.append(AsChars(head));
  out.bytes.append(plaintext);
  out.bytes.append(class_size - plaintext.size() + kTagSize, '\0');
  uint8_t* body = reinterpret_cast<uint8_t*>(out.bytes.data()) + kPrefixSize;

  uint8_t nonce[24];
  std::span<uint8_t> nonce_span(nonce, aead->nonce_size());
  MakeNonce(pos.counter, nonce_span);
  const std::string ad = AssociatedData(kind, name);
  EFS_RETURN_IF_ERROR(
      aead->Encrypt(nonce_span, AsBytes(ad), {body, body_size}, body, out.tag));
  std::memcpy(body + body_size, out.tag.data(), kTagSize);
  return out;
}

Result<std::string> Sealer::Open(BlockKind kind, std::string_view name,
                                 std::string sealed, const Tag* expected_tag) {
  EFS_ASSIGN_OR_RETURN(std::span<char> plain,
                       OpenInPlace(kind, name, sealed, expected_tag));
  sealed.erase(0, plain.data() - sealed.data());
  sealed.resize(plain.size());
  return sealed;
}

Result<std::span<char>> SealerImpl::OpenInPlace(BlockKind kind,
                                                std::string_view name,
                                                std::span<char> sealed,
                                                const Tag* expected_tag) {
  size_t class_size = 0;
  if (sealed.size() > kSealedOverhead) {
    class_size = sealed.size() - kSealedOverhead;
    bool fits = kind == BlockKind::kOpaque
                    ? std::has_single_bit(class_size) &&
                          class_size >= kMinOpaqueClassSize &&
                          class_size <= kMaxOpaqueClassSize
                    : class_size == ClassSize(kind, 0);
    if (!fits) class_size = 0;
  }
  if (class_size == 0) {
    return BlockCorruption(
        kind, name, "wrong sealed size " + std::to_string(sealed.size()));
  }
  const size_t body_size = kClassLengthPrefix + class_size;
  const auto* p = reinterpret_cast<const uint8_t*>(sealed.data());
  if (p[0] != kMagicVersionByte) {
    return BlockCorruption(kind, name, "not a version 1 sealed block");
  }
  if (p[1] != static_cast<uint8_t>(kind)) {
    return BlockCorruption(kind, name,
                           "sealed as kind " + std::to_string(p[1]));
  }
  if (p[2] != static_cast<uint8_t>(context_->cipher)) {
    return BlockCorruption(kind, name, "sealed with another cipher");
  }
  for (size_t i = 3; i < kSaltOffset; ++i) {
    if (p[i] != 0) return BlockCorruption(kind, name, "reserved bytes set");
  }
  const uint8_t* tag = p + kPrefixSize + body_size;
  if (expected_tag != nullptr &&
      sodium_memcmp(tag, expected_tag->data(), kTagSize) != 0) {
    return BlockCorruption(kind, name,
                           "tag differs from the one its parent recorded");
  }
  Salt salt;
  std::memcpy(salt.data(), p + kSaltOffset, kSaltSize);
  EFS_ASSIGN_OR_RETURN(std::shared_ptr<const Aead> aead, SubkeyFor(salt));
  uint8_t nonce[24];
  std::span<uint8_t> nonce_span(nonce, aead->nonce_size());
  MakeNonce(LoadLe(p + kCounterOffset, 8), nonce_span);

  auto* body = reinterpret_cast<uint8_t*>(sealed.data()) + kPrefixSize;
  const std::string ad = AssociatedData(kind, name);
  Status s =
      aead->Decrypt(nonce_span, AsBytes(ad), {body, body_size},
                    std::span<const uint8_t, kTagSize>(tag, kTagSize), body);
  if (!s.ok()) return BlockCorruption(kind, name, "failed authentication");
  const size_t len = LoadLe(body, kClassLengthPrefix);
  if (len > class_size) {
    return BlockCorruption(kind, name, "bad payload length");
  }
  return sealed.subspan(kPrefixSize + kClassLengthPrefix, len);
}

}  // namespace enclavefs
