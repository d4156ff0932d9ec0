// Tests of the crypto primitives: AEAD round trips and tamper detection for
// both ciphers, HKDF against RFC 5869, SecureBytes behaviour.
#include "fs/crypto.h"

#include <gtest/gtest.h>
#include <sodium.h>

#include <string>
#include <vector>

#include "tests/fs/cipher_test_names.h"

namespace enclavefs {
namespace {

std::vector<uint8_t> FromHex(std::string_view hex) {
  std::vector<uint8_t> out(hex.size() / 2);
  size_t len = 0;
  EXPECT_EQ(sodium_hex2bin(out.data(), out.size(), hex.data(), hex.size(),
                           nullptr, &len, nullptr),
            0);
  out.resize(len);
  return out;
}

class AeadTest : public ::testing::TestWithParam<CipherId> {
 protected:
  void SetUp() override {
    std::vector<uint8_t> key(kKeySize);
    RandomBytes(key);
    auto aead = Aead::Create(GetParam(), key);
    ASSERT_TRUE(aead.ok()) << aead.status().ToString();
    aead_ = std::move(*aead);
    nonce_.resize(aead_->nonce_size());
    RandomBytes(nonce_);
  }

  // Encrypts plain_ with ad_ under nonce_ into `cipher` (its size).
  void EncryptPlain(std::string& cipher, Tag& tag) {
    ASSERT_TRUE(aead_
                    ->Encrypt(nonce_, AsBytes(ad_), AsBytes(plain_),
                              reinterpret_cast<uint8_t*>(cipher.data()), tag)
                    .ok());
  }

  std::unique_ptr<Aead> aead_;
  std::vector<uint8_t> nonce_;
  const std::string ad_ = "associated";
  const std::string plain_ = "a secret message of some length, 45 bytes..";
};

TEST_P(AeadTest, givenKey_whenEncryptThenDecrypt_thenPlaintextReturns) {
  std::string cipher(plain_.size(), '\0');
  Tag tag;
  ASSERT_NO_FATAL_FAILURE(EncryptPlain(cipher, tag));
  EXPECT_NE(cipher, plain_);
  std::string back(plain_.size(), '\0');
  ASSERT_TRUE(aead_
                  ->Decrypt(nonce_, AsBytes(ad_), AsBytes(cipher), tag,
                            reinterpret_cast<uint8_t*>(back.data()))
                  .ok());
  EXPECT_EQ(back, plain_);
}

TEST_P(AeadTest, givenEncryptInPlace_whenDecryptInPlace_thenRoundTrips) {
  std::string buf = plain_;
  auto* p = reinterpret_cast<uint8_t*>(buf.data());
  Tag tag;
  ASSERT_TRUE(
      aead_->Encrypt(nonce_, AsBytes(ad_), {p, buf.size()}, p, tag).ok());
  ASSERT_TRUE(
      aead_->Decrypt(nonce_, AsBytes(ad_), {p, buf.size()}, tag, p).ok());
  EXPECT_EQ(buf, plain_);
}

TEST_P(AeadTest, givenAnyTamperedByte_whenDecrypt_thenCorruption) {
  std::string cipher(plain_.size(), '\0');
  Tag tag;
  ASSERT_NO_FATAL_FAILURE(EncryptPlain(cipher, tag));
  std::string out(plain_.size(), '\0');
  auto* o = reinterpret_cast<uint8_t*>(out.data());
  auto expect_fails = [&](const std::vector<uint8_t>& nonce,
                          const std::string& ad, const std::string& c,
                          const Tag& t) {
    Status s = aead_->Decrypt(nonce, AsBytes(ad), AsBytes(c), t, o);
    EXPECT_EQ(s.code(), StatusCode::kCorruption);
  };
  for (size_t i = 0; i < cipher.size(); ++i) {
    std::string c = cipher;
    c[i] ^= 0x01;
    expect_fails(nonce_, ad_, c, tag);
  }
  for (size_t i = 0; i < kTagSize; ++i) {
    Tag t = tag;
    t[i] ^= 0x80;
    expect_fails(nonce_, ad_, cipher, t);
  }
  for (size_t i = 0; i < ad_.size(); ++i) {
    std::string ad = ad_;
    ad[i] ^= 0x20;
    expect_fails(nonce_, ad, cipher, tag);
  }
  for (size_t i = 0; i < nonce_.size(); ++i) {
    std::vector<uint8_t> n = nonce_;
    n[i] ^= 0x04;
    expect_fails(n, ad_, cipher, tag);
  }
}

TEST_P(AeadTest, givenWrongKeySize_whenCreate_thenInvalidArgument) {
  std::vector<uint8_t> short_key(16);
  EXPECT_EQ(Aead::Create(GetParam(), short_key).status().code(),
            StatusCode::kInvalidArgument);
}

INSTANTIATE_TEST_SUITE_P(BothCiphers, AeadTest, ::testing::ValuesIn(kCiphers),
                         [](const auto& info) {
                           return testing::CipherTestName(info.param);
                         });

// Existing volumes hold blocks sealed by libsodium's XChaCha20-Poly1305:
// the OpenSSL-based implementation must agree with it byte for byte, both
// ways, at a block's sizes and at odd ones.
TEST(XChaCha20Poly1305Test, givenLibsodium_whenSameInputs_thenSameBytes) {
  std::vector<uint8_t> key(kKeySize);
  RandomBytes(key);
  auto aead = Aead::Create(CipherId::kXChaCha20Poly1305, key);
  ASSERT_TRUE(aead.ok());
  // From 1 byte: libsodium's pointer arguments must not be null.
  for (size_t size : {size_t{1}, size_t{63}, size_t{4096 + 36},
                      size_t{65536 + 36}, size_t{100003}}) {
    std::vector<uint8_t> nonce(crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
    RandomBytes(nonce);
    std::vector<uint8_t> plain(size);
    RandomBytes(plain);
    const std::string ad = "ad of " + std::to_string(size);

    std::vector<uint8_t> ours(size);
    Tag our_tag;
    ASSERT_TRUE(
        (*aead)->Encrypt(nonce, AsBytes(ad), plain, ours.data(), our_tag).ok());
    std::vector<uint8_t> theirs(size);
    Tag their_tag;
    crypto_aead_xchacha20poly1305_ietf_encrypt_detached(
        theirs.data(), their_tag.data(), nullptr, plain.data(), plain.size(),
        reinterpret_cast<const uint8_t*>(ad.data()), ad.size(), nullptr,
        nonce.data(), key.data());
    EXPECT_EQ(ours, theirs) << size;
    EXPECT_EQ(our_tag, their_tag) << size;

    std::vector<uint8_t> back(size);
    ASSERT_TRUE(
        (*aead)
            ->Decrypt(nonce, AsBytes(ad), theirs, their_tag, back.data())
            .ok())
        << size;
    EXPECT_EQ(back, plain) << size;
  }
}

TEST(HkdfTest, givenRfc5869TestCase1_whenDerive_thenMatchesKnownOkm) {
  auto ikm = FromHex("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b");
  auto salt = FromHex("000102030405060708090a0b0c");
  auto info = FromHex("f0f1f2f3f4f5f6f7f8f9");
  auto okm = HkdfSha256(ikm, salt, AsChars(info), 42);
  ASSERT_TRUE(okm.ok()) << okm.status().ToString();
  EXPECT_EQ(HexEncode(okm->span()),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"
            "34007208d5b887185865");
}

TEST(HkdfTest, givenRfc5869TestCase3EmptySaltAndInfo_whenDerive_thenMatches) {
  auto ikm = FromHex("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b");
  auto okm = HkdfSha256(ikm, {}, "", 42);
  ASSERT_TRUE(okm.ok()) << okm.status().ToString();
  EXPECT_EQ(HexEncode(okm->span()),
            "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d"
            "9d201395faa4b61a96c8");
}

TEST(HkdfTest, givenDifferentInfo_whenDerive_thenKeysDiffer) {
  std::vector<uint8_t> ikm(32, 7);
  auto a = HkdfSha256(ikm, {}, "purpose a", 32);
  auto b = HkdfSha256(ikm, {}, "purpose b", 32);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_FALSE(a->Equals(*b));
}

TEST(SecureBytesTest, givenMovedFrom_whenInspected_thenEmptyAndTargetOwns) {
  SecureBytes a = SecureBytes::CopyOf(AsBytes("0123456789"));
  SecureBytes b = std::move(a);
  EXPECT_EQ(a.size(), 0u);  // NOLINT(bugprone-use-after-move): by design
  EXPECT_EQ(AsChars(b.span()), "0123456789");
}

TEST(SecureBytesTest, givenNewBuffer_whenRead_thenZeroed) {
  SecureBytes a(64);
  for (uint8_t b : a.span()) EXPECT_EQ(b, 0);
}

TEST(CipherNameTest, givenEachCipher_whenNamedAndParsed_thenRoundTrips) {
  for (CipherId c : kCiphers) {
    auto parsed = ParseCipherName(CipherName(c));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, c);
  }
  EXPECT_EQ(ParseCipherName("rot13").status().code(),
            StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace enclavefs
