#include "fs/crypto.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <sodium.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <string>

namespace enclavefs {
namespace {

constexpr size_t kGcmNonceSize = 12;

struct EvpCipherFree {
  void operator()(EVP_CIPHER* c) const { EVP_CIPHER_free(c); }
};
struct EvpCipherCtxFree {
  void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};
struct EvpKdfFree {
  void operator()(EVP_KDF* k) const { EVP_KDF_free(k); }
};
struct EvpKdfCtxFree {
  void operator()(EVP_KDF_CTX* c) const { EVP_KDF_CTX_free(c); }
};
using CipherCtxPtr = std::unique_ptr<EVP_CIPHER_CTX, EvpCipherCtxFree>;

// Explicitly fetched once: OpenSSL 3 re-fetches implicitly on every init when
// given EVP_aes_256_gcm(), which costs a global lock per call.
const EVP_CIPHER* Aes256Gcm() {
  static const std::unique_ptr<EVP_CIPHER, EvpCipherFree> cipher(
      EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr));
  return cipher.get();
}
const EVP_CIPHER* ChaCha20Poly1305() {
  static const std::unique_ptr<EVP_CIPHER, EvpCipherFree> cipher(
      EVP_CIPHER_fetch(nullptr, "ChaCha20-Poly1305", nullptr));
  return cipher.get();
}

const EVP_KDF* HkdfAlgorithm() {
  static const std::unique_ptr<EVP_KDF, EvpKdfFree> kdf(
      EVP_KDF_fetch(nullptr, "HKDF", nullptr));
  return kdf.get();
}

// One context per thread, reused across calls: measured in
// bench/seal_bench.cpp (BM_EvpGcmContext*) to save a malloc/free per block.
EVP_CIPHER_CTX* ThreadCipherCtx() {
  thread_local CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  return ctx.get();
}

// One AEAD pass of an OpenSSL cipher with a 32-byte key, a 12-byte nonce and
// a 16-byte tag (AES-256-GCM, ChaCha20-Poly1305).
Status EvpEncrypt(const EVP_CIPHER* cipher, const uint8_t* key,
                  const uint8_t* nonce, std::span<const uint8_t> ad,
                  std::span<const uint8_t> in, uint8_t* out,
                  std::span<uint8_t, kTagSize> tag) {
  EVP_CIPHER_CTX* ctx = ThreadCipherCtx();
  int len = 0;
  if (ctx == nullptr || cipher == nullptr || ad.size() > INT_MAX ||
      in.size() > INT_MAX ||
      EVP_EncryptInit_ex2(ctx, cipher, key, nonce, nullptr) != 1 ||
      EVP_EncryptUpdate(ctx, nullptr, &len, ad.data(),
                        static_cast<int>(ad.size())) != 1 ||
      EVP_EncryptUpdate(ctx, out, &len, in.data(),
                        static_cast<int>(in.size())) != 1 ||
      EVP_EncryptFinal_ex(ctx, out + len, &len) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, kTagSize, tag.data()) !=
          1) {
    return Status::IOError(std::string(EVP_CIPHER_get0_name(cipher)) +
                           " encryption failed in OpenSSL");
  }
  return Status::Ok();
}

Status EvpDecrypt(const EVP_CIPHER* cipher, const uint8_t* key,
                  const uint8_t* nonce, std::span<const uint8_t> ad,
                  std::span<const uint8_t> in,
                  std::span<const uint8_t, kTagSize> tag, uint8_t* out) {
  EVP_CIPHER_CTX* ctx = ThreadCipherCtx();
  int len = 0;
  // OpenSSL's SET_TAG takes a non-const pointer but only reads it.
  auto* tag_ptr = const_cast<uint8_t*>(tag.data());
  if (ctx == nullptr || cipher == nullptr || ad.size() > INT_MAX ||
      in.size() > INT_MAX ||
      EVP_DecryptInit_ex2(ctx, cipher, key, nonce, nullptr) != 1 ||
      EVP_DecryptUpdate(ctx, nullptr, &len, ad.data(),
                        static_cast<int>(ad.size())) != 1 ||
      EVP_DecryptUpdate(ctx, out, &len, in.data(),
                        static_cast<int>(in.size())) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, kTagSize, tag_ptr) != 1 ||
      EVP_DecryptFinal_ex(ctx, out + len, &len) != 1) {
    return Status::Corruption("authentication failed");
  }
  return Status::Ok();
}

class Aes256GcmAead : public Aead {
 public:
  explicit Aes256GcmAead(SecureBytes key) : key_(std::move(key)) {}

  CipherId cipher() const override { return CipherId::kAes256Gcm; }
  size_t nonce_size() const override { return kGcmNonceSize; }

  Status Encrypt(std::span<const uint8_t> nonce, std::span<const uint8_t> ad,
                 std::span<const uint8_t> in, uint8_t* out,
                 std::span<uint8_t, kTagSize> tag) const override {
    return EvpEncrypt(Aes256Gcm(), key_.data(), nonce.data(), ad, in, out, tag);
  }

  Status Decrypt(std::span<const uint8_t> nonce, std::span<const uint8_t> ad,
                 std::span<const uint8_t> in,
                 std::span<const uint8_t, kTagSize> tag,
                 uint8_t* out) const override {
    return EvpDecrypt(Aes256Gcm(), key_.data(), nonce.data(), ad, in, tag, out);
  }

 private:
  SecureBytes key_;
};

// XChaCha20-Poly1305 as libsodium defines it (and produces byte for byte,
// tests/fs/crypto_test.cpp): HChaCha20 of the key and the nonce's first 16
// bytes gives a subkey for ChaCha20-Poly1305 (RFC 8439) with the nonce's
// last 8 bytes. The AEAD pass runs in OpenSSL, whose ChaCha20 and Poly1305
// use AVX-512 where the CPU has it: a 64 KiB seal takes 17-18 µs against
// libsodium's 49-58 on this project's VM (docs/performance.md, "Seal and
// open throughput").
class XChaCha20Poly1305Aead : public Aead {
 public:
  explicit XChaCha20Poly1305Aead(SecureBytes key) : key_(std::move(key)) {}

  CipherId cipher() const override { return CipherId::kXChaCha20Poly1305; }
  size_t nonce_size() const override {
    return crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
  }

  Status Encrypt(std::span<const uint8_t> nonce, std::span<const uint8_t> ad,
                 std::span<const uint8_t> in, uint8_t* out,
                 std::span<uint8_t, kTagSize> tag) const override {
    const Subkey sub(key_, nonce);
    return EvpEncrypt(ChaCha20Poly1305(), sub.key, sub.nonce, ad, in, out, tag);
  }

  Status Decrypt(std::span<const uint8_t> nonce, std::span<const uint8_t> ad,
                 std::span<const uint8_t> in,
                 std::span<const uint8_t, kTagSize> tag,
                 uint8_t* out) const override {
    const Subkey sub(key_, nonce);
    return EvpDecrypt(ChaCha20Poly1305(), sub.key, sub.nonce, ad, in, tag, out);
  }

 private:
  // The ChaCha20-Poly1305 key and nonce for one XChaCha20 nonce; the key is
  // wiped when it goes out of scope.
  struct Subkey {
    Subkey(const SecureBytes& key, std::span<const uint8_t> xnonce) {
      crypto_core_hchacha20(this->key, xnonce.data(), key.data(), nullptr);
      // Four zero bytes, then what HChaCha20 did not take of the nonce.
      constexpr size_t kTail = sizeof(nonce) - 4;
      static_assert(crypto_core_hchacha20_INPUTBYTES + kTail ==
                    crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
      std::memset(nonce, 0, 4);
      std::memcpy(nonce + 4, xnonce.data() + crypto_core_hchacha20_INPUTBYTES,
                  kTail);
    }
    ~Subkey() { sodium_memzero(key, sizeof(key)); }
    Subkey(const Subkey&) = delete;
    Subkey& operator=(const Subkey&) = delete;
    uint8_t key[crypto_core_hchacha20_OUTPUTBYTES];
    uint8_t nonce[crypto_aead_chacha20poly1305_ietf_NPUBBYTES];
  };

  SecureBytes key_;
};

}  // namespace

void RandomBytes(std::span<uint8_t> out) {
  if (out.empty()) return;  // an empty span may hold a null pointer
  EnsureSodiumInitialized();
  randombytes_buf(out.data(), out.size());
}

std::string HexEncode(std::span<const uint8_t> bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (uint8_t b : bytes) {
    out.push_back(kDigits[b >> 4]);
    out.push_back(kDigits[b & 0xf]);
  }
  return out;
}

std::string_view CipherName(CipherId cipher) {
  switch (cipher) {
    case CipherId::kAes256Gcm:
      return "aes-256-gcm";
    case CipherId::kXChaCha20Poly1305:
      return "xchacha20-poly1305";
  }
  return "unknown";
}

Result<CipherId> ParseCipherName(std::string_view name) {
  for (CipherId c : kCiphers) {
    if (name == CipherName(c)) return c;
  }
  return Status::InvalidArgument(
      "unknown cipher \"" + std::string(name) +
      "\" (choose aes-256-gcm or xchacha20-poly1305)");
}

bool IsKnownCipher(uint8_t raw) {
  return std::ranges::any_of(
      kCiphers, [raw](CipherId c) { return raw == static_cast<uint8_t>(c); });
}

Result<SecureBytes> HkdfSha256(std::span<const uint8_t> ikm,
                               std::span<const uint8_t> salt,
                               std::string_view info, size_t out_len) {
  if (out_len == 0 || out_len > 255 * 32) {
    return Status::InvalidArgument("HKDF output length out of range");
  }
  const EVP_KDF* kdf = HkdfAlgorithm();
  std::unique_ptr<EVP_KDF_CTX, EvpKdfCtxFree> ctx(
      kdf ? EVP_KDF_CTX_new(const_cast<EVP_KDF*>(kdf)) : nullptr);
  if (!ctx) return Status::IOError("HKDF is unavailable in OpenSSL");
  // OSSL_PARAM wants mutable pointers; the KDF only reads them.
  char digest[] = "SHA256";
  auto mut = [](const void* p) { return const_cast<void*>(p); };
  OSSL_PARAM params[5];
  size_t n = 0;
  params[n++] =
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0);
  params[n++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY,
                                                  mut(ikm.data()), ikm.size());
  if (!salt.empty()) {
    params[n++] = OSSL_PARAM_construct_octet_string(
        OSSL_KDF_PARAM_SALT, mut(salt.data()), salt.size());
  }
  if (!info.empty()) {
    params[n++] = OSSL_PARAM_construct_octet_string(
        OSSL_KDF_PARAM_INFO, mut(info.data()), info.size());
  }
  params[n] = OSSL_PARAM_construct_end();
  SecureBytes out(out_len);
  if (EVP_KDF_derive(ctx.get(), out.data(), out.size(), params) != 1) {
    return Status::IOError("HKDF derivation failed in OpenSSL");
  }
  return out;
}

Result<std::unique_ptr<Aead>> Aead::Create(CipherId cipher,
                                           std::span<const uint8_t> key) {
  if (key.size() != kKeySize) {
    return Status::InvalidArgument("AEAD key must be 32 bytes");
  }
  switch (cipher) {
    case CipherId::kAes256Gcm:
      return std::unique_ptr<Aead>(
          std::make_unique<Aes256GcmAead>(SecureBytes::CopyOf(key)));
    case CipherId::kXChaCha20Poly1305:
      return std::unique_ptr<Aead>(
          std::make_unique<XChaCha20Poly1305Aead>(SecureBytes::CopyOf(key)));
  }
  return Status::InvalidArgument("unknown cipher id " +
                                 std::to_string(static_cast<int>(cipher)));
}

}  // namespace enclavefs
