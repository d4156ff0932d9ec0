// SecureBytes: a fixed-size buffer for key material.
//
// The bytes live in libsodium's guarded heap (sodium_malloc): mlocked so they
// are never swapped, surrounded by guard pages, and wiped with sodium_memzero
// before being freed. Use it for every key, passphrase or derived secret that
// the enclave holds. Move-only so a secret is never silently duplicated.
//
// Thread safety: a const SecureBytes may be read from many threads; mutation
// needs external synchronization.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace enclavefs {

// Initializes libsodium once per process. Aborts the process if libsodium
// cannot initialize: nothing in the enclave is safe without it.
void EnsureSodiumInitialized();

class SecureBytes {
 public:
  // Allocates `n` zero bytes. Aborts on allocation failure (the locked heap
  // is exhausted), because continuing without secure memory is worse.
  explicit SecureBytes(size_t n);
  // Copies `bytes` into secure memory.
  static SecureBytes CopyOf(std::span<const uint8_t> bytes);
  ~SecureBytes();

  SecureBytes(SecureBytes&& other) noexcept;
  SecureBytes& operator=(SecureBytes&& other) noexcept;
  SecureBytes(const SecureBytes&) = delete;
  SecureBytes& operator=(const SecureBytes&) = delete;

  uint8_t* data() { return data_; }
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  std::span<uint8_t> span() { return {data_, size_}; }
  std::span<const uint8_t> span() const { return {data_, size_}; }

  // Constant-time equality of contents (sizes are not secret).
  bool Equals(const SecureBytes& other) const;

 private:
  void Release();

  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// Key material is SecureBytes; the alias documents intent at call sites.
using SecureKey = SecureBytes;

// Views a byte span as chars, or chars as bytes, without copying.
inline std::span<const uint8_t> AsBytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}
inline std::string_view AsChars(std::span<const uint8_t> b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

}  // namespace enclavefs
