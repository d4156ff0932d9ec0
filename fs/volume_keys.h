// The volume header and its key slots, and VolumeKeys: the unlocked key
// hierarchy of one volume.
//
// The header (layout: docs/format.md, "Format version 1") is public: the
// host serves it to anyone. It holds the volume parameters, up to 8 key
// slots that each wrap the random 256-bit volume key under a key-encryption
// key (Argon2id of a passphrase, or HKDF of a 32-byte key from a file or a
// command), and a MAC keyed by a subkey of the volume key. The volume key
// exists nowhere else. Changing slots rewrites only the header.
//
// Functions here are pure (header bytes in, header bytes out) and safe to
// call from any thread. VolumeKeys is immutable and thread-safe; it holds
// its keys in secure memory and may outlive the Sealers it made (they share
// the sealing keys).
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "blockstore/status.h"
#include "fs/key_source.h"
#include "fs/sealer.h"
#include "fs/sealer_impl.h"
#include "fs/secure_buffer.h"

namespace enclavefs {

inline constexpr int kMaxKeySlots = 8;

// Argon2id cost of a passphrase slot (libsodium crypto_pwhash units).
struct PwhashCost {
  uint64_t opslimit = 3;
  size_t memlimit = 64u << 20;

  static PwhashCost Default();   // ops 3, 64 MiB
  static PwhashCost ForTests();  // libsodium's minimum: fast, insecure
};

struct FormatParams {
  CipherId cipher = CipherId::kAes256Gcm;
  uint32_t block_size = 64 * 1024;  // power of two, 4 KiB..1 MiB
  uint32_t node_size = 16 * 1024;   // power of two, 4 KiB..1 MiB
  PwhashCost cost = PwhashCost::Default();
};

struct SlotInfo {
  int index = 0;
  std::string type;       // "passphrase", "key-file", "key-command"
  uint64_t opslimit = 0;  // passphrase slots only
  size_t memlimit = 0;    // passphrase slots only
};

// What anyone can read from a header without a key.
struct HeaderInfo {
  uint32_t format_version = 0;
  std::string cipher;  // CipherName()
  uint32_t block_size = 0;
  uint32_t node_size = 0;
  std::string uuid;  // 8-4-4-4-12 lower-case hex
  std::vector<SlotInfo> slots;
};

class VolumeKeys {
 public:
  // Built by CreateVolumeHeader / UnlockVolumeHeader; derives the purpose
  // subkeys from `volume_key`. Public only so those functions can call it.
  VolumeKeys(std::shared_ptr<const SealingContext> sealing,
             SecureKey volume_key, SecureKey header_mac_key,
             std::string access_token);

  const VolumeUuid& uuid() const { return sealing_->uuid; }
  CipherId cipher() const { return sealing_->cipher; }
  uint32_t block_size() const { return sealing_->block_size; }
  uint32_t node_size() const { return sealing_->node_size; }
  uint32_t format_version() const { return kFormatVersion; }
  // Bytes of the largest block this volume stores: its largest class (data
  // block, tree node or root record), sealed.
  size_t largest_sealed_block() const {
    return std::max<size_t>({block_size(), node_size(), kRootRecordSize}) +
           kSealedOverhead;
  }
  // 32 bytes: the secret presented to the host, which keeps only its hash.
  const std::string& access_token() const { return access_token_; }

  // A fresh sealing session (new random salt). Never fails.
  std::unique_ptr<Sealer> NewSealer() const;

  // Internal to the header code: the wrapped secret and the header MAC key.
  const SecureKey& volume_key() const { return volume_key_; }
  const SecureKey& header_mac_key() const { return header_mac_key_; }

 private:
  std::shared_ptr<const SealingContext> sealing_;
  SecureKey volume_key_;
  SecureKey header_mac_key_;
  std::string access_token_;
};

// Formats a new volume: random UUID and volume key, one slot (index 0) for
// `source` (passphrase slots use params.cost). Returns the header bytes and
// the unlocked keys. InvalidArgument for bad params or an unusable source.
Result<std::pair<std::string, std::unique_ptr<VolumeKeys>>> CreateVolumeHeader(
    const FormatParams& params, const KeySource& source);

// Unlocks `header` with `source`, trying every slot of a matching type
// (passphrase slots for a passphrase; key-file and key-command slots for a
// raw key). Fails with InvalidArgument "incompatible format version N (this
// build reads 1)" before trying any key, PermissionDenied "wrong key, or not
// an EnclaveFS volume" if no slot opens or the bytes are not a header,
// Corruption "volume header failed authentication" if a slot opened but the
// header MAC does not verify, or the key source's own error.
Result<std::unique_ptr<VolumeKeys>> UnlockVolumeHeader(std::string_view header,
                                                       const KeySource& source);

// Returns new header bytes with a slot for `source` at the lowest free
// index. The header must authenticate under `keys` (Corruption otherwise);
// ResourceExhausted when all kMaxKeySlots slots are in use.
Result<std::string> AddKeySlot(std::string_view header, const VolumeKeys& keys,
                               const KeySource& source, PwhashCost cost);

// Returns new header bytes without slot `index`. NotFound for an unused
// index; InvalidArgument "refusing to remove the last key slot".
Result<std::string> RemoveKeySlot(std::string_view header,
                                  const VolumeKeys& keys, int index);

// Replaces slot `old_index` by a slot for `new_source` at the same index,
// in one header rewrite. NotFound for an unused index.
Result<std::string> ChangePassphrase(std::string_view header,
                                     const VolumeKeys& keys, int old_index,
                                     const KeySource& new_source,
                                     PwhashCost cost);

// Slots of a header, without a key. Same parse errors as UnlockVolumeHeader.
Result<std::vector<SlotInfo>> ListKeySlots(std::string_view header);
Result<HeaderInfo> DescribeHeader(std::string_view header);

}  // namespace enclavefs
