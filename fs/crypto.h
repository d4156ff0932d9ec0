// Cryptographic primitives of the enclave: random bytes, HKDF-SHA256 and the
// Aead interface with its two ciphers (AES-256-GCM via OpenSSL EVP;
// XChaCha20-Poly1305 as libsodium's HChaCha20 subkey, then OpenSSL EVP).
//
// Everything here is stateless apart from the key an Aead holds (in secure
// memory). Thread safety: all functions and const Aead methods are safe to
// call concurrently.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "blockstore/status.h"
#include "fs/sealer.h"
#include "fs/secure_buffer.h"

namespace enclavefs {

inline constexpr size_t kKeySize = 32;  // every symmetric key is 256 bits

// Fills `out` from the OS CSPRNG (libsodium randombytes). Never fails.
void RandomBytes(std::span<uint8_t> out);

// Every cipher this build implements.
inline constexpr std::array kCiphers = {CipherId::kAes256Gcm,
                                        CipherId::kXChaCha20Poly1305};

// "aes-256-gcm" / "xchacha20-poly1305"; "unknown" for other values.
std::string_view CipherName(CipherId cipher);
// Inverse of CipherName. InvalidArgument for an unknown name.
Result<CipherId> ParseCipherName(std::string_view name);
// True for the CipherId values this build implements.
bool IsKnownCipher(uint8_t raw);

// HKDF-SHA256 (RFC 5869) through OpenSSL's EVP_KDF. Returns `out_len` bytes
// (1..8160) in secure memory; Internal failures of OpenSSL surface as
// IOError naming the step, never the inputs.
Result<SecureBytes> HkdfSha256(std::span<const uint8_t> ikm,
                               std::span<const uint8_t> salt,
                               std::string_view info, size_t out_len);

// Little-endian integer fields of the on-disk formats (docs/format.md):
// writes / reads the low `n` (<= 8) bytes of `v`.
inline void StoreLe(uint8_t* p, uint64_t v, size_t n) {
  for (size_t i = 0; i < n; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
inline uint64_t LoadLe(const uint8_t* p, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) v |= static_cast<uint64_t>(p[i]) << (8 * i);
  return v;
}
// Big-endian, where byte order must follow numeric order (tree keys, block
// names): the low `n` (<= 8) bytes of `v`, most significant first.
inline void StoreBe(uint8_t* p, uint64_t v, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    p[n - 1 - i] = static_cast<uint8_t>(v >> (8 * i));
  }
}
inline void AppendBe64(std::string& out, uint64_t v) {
  uint8_t bytes[8];
  StoreBe(bytes, v, 8);
  out.append(reinterpret_cast<const char*>(bytes), sizeof(bytes));
}

// Lower-case hex of `bytes`, for names and ids in messages (never secrets).
std::string HexEncode(std::span<const uint8_t> bytes);

// Authenticated encryption with associated data, detached 16-byte tag.
class Aead {
 public:
  virtual ~Aead() = default;

  // Makes an Aead for `cipher` holding a copy of `key` (kKeySize bytes).
  // InvalidArgument for an unknown cipher or a wrong key size.
  static Result<std::unique_ptr<Aead>> Create(CipherId cipher,
                                              std::span<const uint8_t> key);

  virtual CipherId cipher() const = 0;
  // 12 for AES-256-GCM, 24 for XChaCha20-Poly1305.
  virtual size_t nonce_size() const = 0;

  // Encrypts `in` into `out` (in.size() bytes; `out` may equal in.data())
  // and writes the tag. REQUIRES: nonce.size() == nonce_size(). Fails only on
  // an OpenSSL internal error (IOError).
  virtual Status Encrypt(std::span<const uint8_t> nonce,
                         std::span<const uint8_t> ad,
                         std::span<const uint8_t> in, uint8_t* out,
                         std::span<uint8_t, kTagSize> tag) const = 0;

  // Decrypts `in` into `out` (`out` may equal in.data()) if the tag
  // verifies; Corruption "authentication failed" otherwise (the content of
  // `out` is then unspecified).
  virtual Status Decrypt(std::span<const uint8_t> nonce,
                         std::span<const uint8_t> ad,
                         std::span<const uint8_t> in,
                         std::span<const uint8_t, kTagSize> tag,
                         uint8_t* out) const = 0;
};

}  // namespace enclavefs
