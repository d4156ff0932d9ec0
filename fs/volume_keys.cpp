#include "fs/volume_keys.h"

#include <sodium.h>

#include <algorithm>
#include <bit>
#include <cstring>

#include "fs/crypto.h"

namespace enclavefs {
namespace {

// ---- Layout (docs/format.md). ----
constexpr std::string_view kMagic = "EFSVOLHD";
constexpr size_t kVersionOffset = 8;
constexpr size_t kUuidOffset = 12;
constexpr size_t kCipherOffset = 28;
constexpr size_t kBlockSizeOffset = 32;
constexpr size_t kNodeSizeOffset = 36;
constexpr size_t kFixedFieldsSize = 40;  // magic..node size: AD of every slot
constexpr size_t kSlotCountOffset = 40;
constexpr size_t kPrologueSize = 48;
constexpr size_t kSlotSize = 112;
constexpr size_t kSlotParamsSize = 40;  // index..salt: AD of this slot
constexpr size_t kSlotOpsOffset = 8;
constexpr size_t kSlotMemOffset = 16;
constexpr size_t kSlotSaltOffset = 24;
constexpr size_t kSlotNonceOffset = 40;
constexpr size_t kSlotNonceSize = 24;
constexpr size_t kSlotWrappedOffset = 64;  // 32-byte key, then 16-byte tag
constexpr size_t kMacSize = crypto_auth_hmacsha256_BYTES;

constexpr uint64_t kMaxOpslimit = 64;
constexpr size_t kMaxMemlimit = size_t{1} << 30;
constexpr uint32_t kMinBlockSize = 4096;
constexpr uint32_t kMaxBlockSize = 1u << 20;

constexpr std::string_view kWrongKey = "wrong key, or not an EnclaveFS volume";

enum class SlotType : uint8_t {
  kPassphrase = 1,
  kKeyFile = 2,
  kKeyCommand = 3
};

std::string_view SlotTypeName(SlotType t) {
  switch (t) {
    case SlotType::kPassphrase:
      return "passphrase";
    case SlotType::kKeyFile:
      return "key-file";
    case SlotType::kKeyCommand:
      return "key-command";
  }
  return "unknown";
}

SlotType SlotTypeOf(KeySource::Kind kind) {
  switch (kind) {
    case KeySource::Kind::kKeyFile:
      return SlotType::kKeyFile;
    case KeySource::Kind::kKeyCommand:
      return SlotType::kKeyCommand;
    case KeySource::Kind::kPassphrase:
      break;
  }
  return SlotType::kPassphrase;
}

// A header split into its fields. `fixed` keeps the exact 40 fixed bytes so
// they are re-emitted unchanged and serve as AD.
struct ParsedHeader {
  std::string fixed;
  uint32_t version = 0;
  VolumeUuid uuid{};
  CipherId cipher{};
  uint32_t block_size = 0;
  uint32_t node_size = 0;
  std::vector<std::string> slots;  // raw kSlotSize-byte records, by index
};

const uint8_t* U8(std::string_view s) {
  return reinterpret_cast<const uint8_t*>(s.data());
}

bool ValidBlockSize(uint64_t size) {
  return std::has_single_bit(size) && size >= kMinBlockSize &&
         size <= kMaxBlockSize;
}

bool ValidCost(uint64_t ops, uint64_t mem) {
  return ops >= crypto_pwhash_OPSLIMIT_MIN && ops <= kMaxOpslimit &&
         mem >= crypto_pwhash_MEMLIMIT_MIN && mem <= kMaxMemlimit;
}

// Strictly validates one slot record (index, type, reserved, cost).
bool ValidSlot(std::string_view slot) {
  const uint8_t* p = U8(slot);
  if (p[0] >= kMaxKeySlots || p[1] < 1 || p[1] > 3) return false;
  for (size_t i = 2; i < kSlotOpsOffset; ++i) {
    if (p[i] != 0) return false;
  }
  uint64_t ops = LoadLe(p + kSlotOpsOffset, 8);
  uint64_t mem = LoadLe(p + kSlotMemOffset, 8);
  if (static_cast<SlotType>(p[1]) == SlotType::kPassphrase) {
    return ValidCost(ops, mem);
  }
  return ops == 0 && mem == 0;
}

// Parses without a key. Version is checked right after the magic so a newer
// header is reported as such instead of as a wrong key.
Result<ParsedHeader> ParseHeader(std::string_view bytes) {
  if (bytes.size() < kPrologueSize ||
      bytes.substr(0, kMagic.size()) != kMagic) {
    return Status::PermissionDenied(std::string(kWrongKey));
  }
  const uint8_t* p = U8(bytes);
  ParsedHeader h;
  h.version = static_cast<uint32_t>(LoadLe(p + kVersionOffset, 4));
  if (h.version != kFormatVersion) {
    return Status::InvalidArgument("incompatible format version " +
                                   std::to_string(h.version) +
                                   " (this build reads 1)");
  }
  h.fixed.assign(bytes.substr(0, kFixedFieldsSize));
  std::memcpy(h.uuid.data(), p + kUuidOffset, h.uuid.size());
  h.cipher = static_cast<CipherId>(p[kCipherOffset]);
  h.block_size = static_cast<uint32_t>(LoadLe(p + kBlockSizeOffset, 4));
  h.node_size = static_cast<uint32_t>(LoadLe(p + kNodeSizeOffset, 4));
  const size_t count = p[kSlotCountOffset];
  bool ok = IsKnownCipher(p[kCipherOffset]) && ValidBlockSize(h.block_size) &&
            ValidBlockSize(h.node_size) && count >= 1 &&
            count <= kMaxKeySlots &&
            bytes.size() == kPrologueSize + count * kSlotSize + kMacSize;
  for (size_t i = kCipherOffset + 1; ok && i < kBlockSizeOffset; ++i) {
    ok = p[i] == 0;
  }
  for (size_t i = kSlotCountOffset + 1; ok && i < kPrologueSize; ++i) {
    ok = p[i] == 0;
  }
  for (size_t i = 0; ok && i < count; ++i) {
    std::string_view slot =
        bytes.substr(kPrologueSize + i * kSlotSize, kSlotSize);
    // Indices strictly ascending: unique, and one canonical encoding.
    ok = ValidSlot(slot) &&
         (h.slots.empty() || U8(slot)[0] > U8(h.slots.back())[0]);
    h.slots.emplace_back(slot);
  }
  if (!ok) return Status::PermissionDenied(std::string(kWrongKey));
  return h;
}

// Header bytes before the MAC.
std::string Encode(const ParsedHeader& h) {
  std::string out = h.fixed;
  out.push_back(static_cast<char>(h.slots.size()));
  out.append(kPrologueSize - kFixedFieldsSize - 1, '\0');
  for (const std::string& slot : h.slots) out += slot;
  return out;
}

std::array<uint8_t, kMacSize> HeaderMac(std::string_view body,
                                        const SecureKey& mac_key) {
  std::array<uint8_t, kMacSize> mac;
  crypto_auth_hmacsha256(mac.data(), U8(body), body.size(), mac_key.data());
  return mac;
}

Status VerifyMac(std::string_view bytes, const SecureKey& mac_key) {
  std::string_view body = bytes.substr(0, bytes.size() - kMacSize);
  if (crypto_auth_hmacsha256_verify(U8(bytes) + body.size(), U8(body),
                                    body.size(), mac_key.data()) != 0) {
    return Status::Corruption("volume header failed authentication");
  }
  return Status::Ok();
}

std::string Seal(const ParsedHeader& h, const VolumeKeys& keys) {
  std::string out = Encode(h);
  auto mac = HeaderMac(out, keys.header_mac_key());
  out.append(AsChars(mac));
  return out;
}

// Key-encryption key of `slot` from the already loaded secret.
Result<SecureKey> SlotKek(std::string_view slot, const SecureBytes& secret) {
  const uint8_t* p = U8(slot);
  std::span<const uint8_t> salt(p + kSlotSaltOffset, kSaltSize);
  if (static_cast<SlotType>(p[1]) != SlotType::kPassphrase) {
    return HkdfSha256(secret.span(), salt, "enclavefs key slot v1", kKeySize);
  }
  SecureKey kek(kKeySize);
  if (crypto_pwhash(
          kek.data(), kek.size(), reinterpret_cast<const char*>(secret.data()),
          secret.size(), salt.data(), LoadLe(p + kSlotOpsOffset, 8),
          LoadLe(p + kSlotMemOffset, 8), crypto_pwhash_ALG_ARGON2ID13) != 0) {
    return Status::ResourceExhausted("not enough memory for Argon2id");
  }
  return kek;
}

std::string SlotAd(const ParsedHeader& h, std::string_view slot) {
  return h.fixed + std::string(slot.substr(0, kSlotParamsSize));
}

Result<std::unique_ptr<Aead>> SlotAead(std::string_view slot,
                                       const SecureBytes& secret) {
  EFS_ASSIGN_OR_RETURN(SecureKey kek, SlotKek(slot, secret));
  return Aead::Create(CipherId::kXChaCha20Poly1305, kek.span());
}

// The secret of `source`: the passphrase bytes or the loaded 32-byte key.
Result<SecureBytes> LoadSecret(const KeySource& source) {
  if (source.kind == KeySource::Kind::kPassphrase) {
    if (source.value.empty()) {
      return Status::InvalidArgument("the passphrase is empty");
    }
    return SecureBytes::CopyOf(AsBytes(source.value));
  }
  return LoadRawKey(source);
}

Result<std::string> MakeSlot(const ParsedHeader& h, int index,
                             const KeySource& source, PwhashCost cost,
                             const SecureKey& volume_key) {
  const SlotType type = SlotTypeOf(source.kind);
  if (type == SlotType::kPassphrase &&
      !ValidCost(cost.opslimit, cost.memlimit)) {
    return Status::InvalidArgument("Argon2id cost out of range");
  }
  EFS_ASSIGN_OR_RETURN(SecureBytes secret, LoadSecret(source));
  std::string slot(kSlotSize, '\0');
  auto* p = reinterpret_cast<uint8_t*>(slot.data());
  p[0] = static_cast<uint8_t>(index);
  p[1] = static_cast<uint8_t>(type);
  if (type == SlotType::kPassphrase) {
    StoreLe(p + kSlotOpsOffset, cost.opslimit, 8);
    StoreLe(p + kSlotMemOffset, cost.memlimit, 8);
  }
  RandomBytes({p + kSlotSaltOffset, kSaltSize});
  RandomBytes({p + kSlotNonceOffset, kSlotNonceSize});
  EFS_ASSIGN_OR_RETURN(std::unique_ptr<Aead> aead, SlotAead(slot, secret));
  const std::string ad = SlotAd(h, slot);
  EFS_RETURN_IF_ERROR(
      aead->Encrypt({p + kSlotNonceOffset, kSlotNonceSize}, AsBytes(ad),
                    volume_key.span(), p + kSlotWrappedOffset,
                    std::span<uint8_t, kTagSize>(
                        p + kSlotWrappedOffset + kKeySize, kTagSize)));
  return slot;
}

// Returns the volume key if `secret` opens `slot`.
std::optional<SecureKey> Unwrap(const ParsedHeader& h, std::string_view slot,
                                const SecureBytes& secret) {
  Result<std::unique_ptr<Aead>> aead = SlotAead(slot, secret);
  if (!aead.ok()) return std::nullopt;
  const uint8_t* p = U8(slot);
  const std::string ad = SlotAd(h, slot);
  SecureKey key(kKeySize);
  Status s = (*aead)->Decrypt({p + kSlotNonceOffset, kSlotNonceSize},
                              AsBytes(ad), {p + kSlotWrappedOffset, kKeySize},
                              std::span<const uint8_t, kTagSize>(
                                  p + kSlotWrappedOffset + kKeySize, kTagSize),
                              key.data());
  if (!s.ok()) return std::nullopt;
  return key;
}

Result<std::unique_ptr<VolumeKeys>> DeriveKeys(const ParsedHeader& h,
                                               SecureKey volume_key) {
  auto derive = [&](std::string_view info) {
    return HkdfSha256(volume_key.span(), h.uuid, info, kKeySize);
  };
  auto sealing = std::make_shared<SealingContext>();
  sealing->cipher = h.cipher;
  sealing->uuid = h.uuid;
  sealing->block_size = h.block_size;
  sealing->node_size = h.node_size;
  EFS_ASSIGN_OR_RETURN(sealing->encryption_key,
                       derive("enclavefs block encryption v1"));
  EFS_ASSIGN_OR_RETURN(sealing->naming_key,
                       derive("enclavefs block naming v1"));
  EFS_ASSIGN_OR_RETURN(SecureKey mac_key, derive("enclavefs header mac v1"));
  EFS_ASSIGN_OR_RETURN(SecureKey token,
                       derive("enclavefs host access token v1"));
  return std::make_unique<VolumeKeys>(std::move(sealing), std::move(volume_key),
                                      std::move(mac_key),
                                      std::string(AsChars(token.span())));
}

// Parses `bytes` and checks that they are the header of `keys`' volume.
Result<ParsedHeader> ParseOwnHeader(std::string_view bytes,
                                    const VolumeKeys& keys) {
  EFS_ASSIGN_OR_RETURN(ParsedHeader h, ParseHeader(bytes));
  if (h.uuid != keys.uuid()) {
    return Status::InvalidArgument("the header belongs to another volume");
  }
  EFS_RETURN_IF_ERROR(VerifyMac(bytes, keys.header_mac_key()));
  return h;
}

std::vector<std::string>::iterator FindSlot(ParsedHeader& h, int index) {
  return std::find_if(h.slots.begin(), h.slots.end(),
                      [&](const auto& s) { return U8(s)[0] == index; });
}

std::string FormatUuid(const VolumeUuid& uuid) {
  std::string hex = HexEncode(uuid);
  for (size_t pos : {20, 16, 12, 8}) hex.insert(pos, "-");
  return hex;
}

}  // namespace

PwhashCost PwhashCost::Default() { return {3, size_t{64} << 20}; }

PwhashCost PwhashCost::ForTests() {
  return {crypto_pwhash_OPSLIMIT_MIN, crypto_pwhash_MEMLIMIT_MIN};
}

VolumeKeys::VolumeKeys(std::shared_ptr<const SealingContext> sealing,
                       SecureKey volume_key, SecureKey header_mac_key,
                       std::string access_token)
    : sealing_(std::move(sealing)),
      volume_key_(std::move(volume_key)),
      header_mac_key_(std::move(header_mac_key)),
      access_token_(std::move(access_token)) {}

std::unique_ptr<Sealer> VolumeKeys::NewSealer() const {
  return std::make_unique<SealerImpl>(sealing_);
}

Result<std::pair<std::string, std::unique_ptr<VolumeKeys>>> CreateVolumeHeader(
    const FormatParams& params, const KeySource& source) {
  if (!IsKnownCipher(static_cast<uint8_t>(params.cipher))) {
    return Status::InvalidArgument("unknown cipher");
  }
  if (!ValidBlockSize(params.block_size) || !ValidBlockSize(params.node_size)) {
    return Status::InvalidArgument(
        "block and node sizes must be powers of two from 4 KiB to 1 MiB");
  }
  std::string fixed(kFixedFieldsSize, '\0');
  auto* p = reinterpret_cast<uint8_t*>(fixed.data());
  std::memcpy(p, kMagic.data(), kMagic.size());
  StoreLe(p + kVersionOffset, kFormatVersion, 4);
  RandomBytes({p + kUuidOffset, 16});
  p[kUuidOffset + 6] = (p[kUuidOffset + 6] & 0x0f) | 0x40;  // RFC 4122 v4
  p[kUuidOffset + 8] = (p[kUuidOffset + 8] & 0x3f) | 0x80;
  p[kCipherOffset] = static_cast<uint8_t>(params.cipher);
  StoreLe(p + kBlockSizeOffset, params.block_size, 4);
  StoreLe(p + kNodeSizeOffset, params.node_size, 4);
  ParsedHeader h;
  h.fixed = fixed;
  h.version = kFormatVersion;
  std::memcpy(h.uuid.data(), p + kUuidOffset, h.uuid.size());
  h.cipher = params.cipher;
  h.block_size = params.block_size;
  h.node_size = params.node_size;

  SecureKey volume_key(kKeySize);
  RandomBytes(volume_key.span());
  EFS_ASSIGN_OR_RETURN(std::string slot,
                       MakeSlot(h, 0, source, params.cost, volume_key));
  h.slots.push_back(std::move(slot));
  EFS_ASSIGN_OR_RETURN(std::unique_ptr<VolumeKeys> keys,
                       DeriveKeys(h, std::move(volume_key)));
  std::string header = Seal(h, *keys);
  return std::make_pair(std::move(header), std::move(keys));
}

Result<std::unique_ptr<VolumeKeys>> UnlockVolumeHeader(
    std::string_view header, const KeySource& source) {
  EFS_ASSIGN_OR_RETURN(ParsedHeader h, ParseHeader(header));
  EFS_ASSIGN_OR_RETURN(SecureBytes secret, LoadSecret(source));
  const bool passphrase = source.kind == KeySource::Kind::kPassphrase;
  for (const std::string& slot : h.slots) {
    bool passphrase_slot =
        static_cast<SlotType>(U8(slot)[1]) == SlotType::kPassphrase;
    if (passphrase_slot != passphrase) continue;
    std::optional<SecureKey> volume_key = Unwrap(h, slot, secret);
    if (!volume_key) continue;
    EFS_ASSIGN_OR_RETURN(std::unique_ptr<VolumeKeys> keys,
                         DeriveKeys(h, std::move(*volume_key)));
    EFS_RETURN_IF_ERROR(VerifyMac(header, keys->header_mac_key()));
    return keys;
  }
  return Status::PermissionDenied(std::string(kWrongKey));
}

Result<std::string> AddKeySlot(std::string_view header, const VolumeKeys& keys,
                               const KeySource& source, PwhashCost cost) {
  EFS_ASSIGN_OR_RETURN(ParsedHeader h, ParseOwnHeader(header, keys));
  int index = 0;
  while (index < kMaxKeySlots && FindSlot(h, index) != h.slots.end()) ++index;
  if (index == kMaxKeySlots) {
    return Status::ResourceExhausted("all 8 key slots are in use");
  }
  EFS_ASSIGN_OR_RETURN(std::string slot,
                       MakeSlot(h, index, source, cost, keys.volume_key()));
  // Keep slots sorted by index: insert before the first higher index.
  auto pos = std::find_if(h.slots.begin(), h.slots.end(),
                          [&](const auto& s) { return U8(s)[0] > index; });
  h.slots.insert(pos, std::move(slot));
  return Seal(h, keys);
}

Result<std::string> RemoveKeySlot(std::string_view header,
                                  const VolumeKeys& keys, int index) {
  EFS_ASSIGN_OR_RETURN(ParsedHeader h, ParseOwnHeader(header, keys));
  auto it = FindSlot(h, index);
  if (it == h.slots.end()) {
    return Status::NotFound("no key slot " + std::to_string(index));
  }
  if (h.slots.size() == 1) {
    return Status::InvalidArgument("refusing to remove the last key slot");
  }
  h.slots.erase(it);
  return Seal(h, keys);
}

Result<std::string> ChangePassphrase(std::string_view header,
                                     const VolumeKeys& keys, int old_index,
                                     const KeySource& new_source,
                                     PwhashCost cost) {
  EFS_ASSIGN_OR_RETURN(ParsedHeader h, ParseOwnHeader(header, keys));
  auto it = FindSlot(h, old_index);
  if (it == h.slots.end()) {
    return Status::NotFound("no key slot " + std::to_string(old_index));
  }
  EFS_ASSIGN_OR_RETURN(
      *it, MakeSlot(h, old_index, new_source, cost, keys.volume_key()));
  return Seal(h, keys);
}

Result<std::vector<SlotInfo>> ListKeySlots(std::string_view header) {
  EFS_ASSIGN_OR_RETURN(ParsedHeader h, ParseHeader(header));
  std::vector<SlotInfo> out;
  for (const std::string& slot : h.slots) {
    const uint8_t* p = U8(slot);
    out.push_back({p[0], std::string(SlotTypeName(static_cast<SlotType>(p[1]))),
                   LoadLe(p + kSlotOpsOffset, 8),
                   static_cast<size_t>(LoadLe(p + kSlotMemOffset, 8))});
  }
  return out;
}

Result<HeaderInfo> DescribeHeader(std::string_view header) {
  EFS_ASSIGN_OR_RETURN(ParsedHeader h, ParseHeader(header));
  EFS_ASSIGN_OR_RETURN(std::vector<SlotInfo> slots, ListKeySlots(header));
  return HeaderInfo{h.version,          std::string(CipherName(h.cipher)),
                    h.block_size,       h.node_size,
                    FormatUuid(h.uuid), std::move(slots)};
}

}  // namespace enclavefs
