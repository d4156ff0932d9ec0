#include "fs/secure_buffer.h"

#include <sodium.h>
#include <spdlog/spdlog.h>

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <utility>

namespace enclavefs {

void EnsureSodiumInitialized() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (sodium_init() < 0) {
      spdlog::critical("libsodium failed to initialize");
      std::abort();
    }
  });
}

SecureBytes::SecureBytes(size_t n) : size_(n) {
  EnsureSodiumInitialized();
  // sodium_malloc(0) may return a valid pointer or not; always ask for >= 1.
  data_ = static_cast<uint8_t*>(sodium_malloc(n == 0 ? 1 : n));
  if (data_ == nullptr) {
    spdlog::critical("out of locked memory for a {}-byte secret", n);
    std::abort();
  }
  sodium_memzero(data_, n == 0 ? 1 : n);
}

SecureBytes SecureBytes::CopyOf(std::span<const uint8_t> bytes) {
  SecureBytes out(bytes.size());
  if (!bytes.empty()) std::memcpy(out.data_, bytes.data(), bytes.size());
  return out;
}

SecureBytes::~SecureBytes() { Release(); }

SecureBytes::SecureBytes(SecureBytes&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)) {}

SecureBytes& SecureBytes::operator=(SecureBytes&& other) noexcept {
  if (this != &other) {
    Release();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

bool SecureBytes::Equals(const SecureBytes& other) const {
  if (size_ != other.size_) return false;
  return size_ == 0 || sodium_memcmp(data_, other.data_, size_) == 0;
}

void SecureBytes::Release() {
  if (data_ == nullptr) return;
  sodium_memzero(data_, size_);
  sodium_free(data_);  // also wipes, and checks the guard canary
  data_ = nullptr;
  size_ = 0;
}

}  // namespace enclavefs
