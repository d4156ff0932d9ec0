// Names for tests parameterised by cipher: gtest wants identifiers, and
// CipherName ("aes-256-gcm") is not one.
#pragma once

#include <string>

#include "fs/sealer.h"

namespace enclavefs::testing {

inline std::string CipherTestName(CipherId cipher) {
  return cipher == CipherId::kAes256Gcm ? "Aes256Gcm" : "XChaCha20Poly1305";
}

}  // namespace enclavefs::testing
