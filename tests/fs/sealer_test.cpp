// Tests of the Sealer: round trips, fixed sizes per class, tamper and
// misplacement detection, nonce/name uniqueness, salt rotation, and
// known-answer tests pinning the documented byte layout (docs/format.md).
#include <gtest/gtest.h>
#include <sodium.h>

#include <cstring>
#include <set>
#include <thread>
#include <tuple>

#include "fs/crypto.h"
#include "fs/sealer_impl.h"
#include "tests/fs/cipher_test_names.h"

namespace enclavefs {
namespace {

std::shared_ptr<SealingContext> MakeContext(CipherId cipher,
                                            uint32_t block_size,
                                            uint8_t key_seed = 1,
                                            uint32_t node_size = 16384) {
  auto ctx = std::make_shared<SealingContext>();
  ctx->cipher = cipher;
  ctx->block_size = block_size;
  ctx->node_size = node_size;
  for (size_t i = 0; i < 16; ++i) ctx->uuid[i] = static_cast<uint8_t>(0xa0 + i);
  for (size_t i = 0; i < kKeySize; ++i) {
    ctx->encryption_key.data()[i] = static_cast<uint8_t>(key_seed + i);
    ctx->naming_key.data()[i] = static_cast<uint8_t>(0x80 + key_seed + i);
  }
  return ctx;
}

std::string Pattern(size_t n, uint8_t seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(seed + i * 31);
  return s;
}

std::string Blake2bHex(std::string_view bytes) {
  uint8_t out[32];
  crypto_generichash(out, sizeof(out),
                     reinterpret_cast<const uint8_t*>(bytes.data()),
                     bytes.size(), nullptr, 0);
  return HexEncode(out);
}

constexpr BlockKind kAllKinds[] = {BlockKind::kRoot, BlockKind::kNode,
                                   BlockKind::kData, BlockKind::kOpaque};

using Params = std::tuple<CipherId, uint32_t>;

class SealerTest : public ::testing::TestWithParam<Params> {
 protected:
  SealerTest()
      : context_(MakeContext(std::get<0>(GetParam()), std::get<1>(GetParam()))),
        sealer_(context_) {}

  std::shared_ptr<SealingContext> context_;
  SealerImpl sealer_;
};

TEST_P(SealerTest, givenEachKind_whenSealThenOpen_thenPlaintextReturns) {
  for (BlockKind kind : kAllKinds) {
    const size_t cap =
        kind == BlockKind::kOpaque ? 100000 : sealer_.Capacity(kind);
    for (size_t size : {size_t{0}, size_t{1}, cap / 2, cap}) {
      std::string name = sealer_.NewBlockName();
      std::string plain = Pattern(size, static_cast<uint8_t>(size));
      auto sealed = sealer_.Seal(kind, name, plain);
      ASSERT_TRUE(sealed.ok()) << sealed.status().ToString();
      auto opened = sealer_.Open(kind, name, sealed->bytes, &sealed->tag);
      ASSERT_TRUE(opened.ok()) << opened.status().ToString();
      EXPECT_EQ(*opened, plain);
    }
  }
}

TEST_P(SealerTest, givenSealedBlock_whenOpenedInPlace_thenPlaintextInsideIt) {
  for (BlockKind kind : kAllKinds) {
    std::string name = sealer_.NewBlockName();
    std::string plain = Pattern(3000, 7);
    auto sealed = sealer_.Seal(kind, name, plain);
    ASSERT_TRUE(sealed.ok()) << sealed.status().ToString();
    std::string buffer = sealed->bytes;
    auto opened = sealer_.OpenInPlace(kind, name, buffer, &sealed->tag);
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    EXPECT_EQ(std::string_view(opened->data(), opened->size()), plain);
    EXPECT_GT(opened->data(), buffer.data());
    EXPECT_LE(opened->data() + opened->size(), buffer.data() + buffer.size());
    // The same bytes under another name fail, as Open does.
    std::string again = sealed->bytes;
    EXPECT_EQ(
        sealer_.OpenInPlace(kind, sealer_.NewBlockName(), again, &sealed->tag)
            .status()
            .code(),
        StatusCode::kCorruption);
  }
}

TEST_P(SealerTest,
       givenFixedClassKinds_whenSealAnySize_thenSealedSizeIsClassPlusOverhead) {
  const std::pair<BlockKind, size_t> classes[] = {
      {BlockKind::kRoot, kRootRecordSize},
      {BlockKind::kNode, context_->node_size},
      {BlockKind::kData, context_->block_size}};
  for (auto [kind, cls] : classes) {
    EXPECT_EQ(sealer_.Capacity(kind), cls);
    for (size_t size : {size_t{0}, size_t{7}, cls}) {
      auto sealed = sealer_.Seal(kind, "n", std::string(size, 'x'));
      ASSERT_TRUE(sealed.ok());
      EXPECT_EQ(sealed->bytes.size(), cls + kSealedOverhead);
    }
  }
}

TEST_P(SealerTest, givenOpaqueValues_whenSealed_thenSizeIsPowerOfTwoClass) {
  const std::pair<size_t, size_t> cases[] = {
      {0, 4096}, {4096, 4096}, {4097, 8192}, {70000, 131072}};
  for (auto [size, cls] : cases) {
    auto sealed = sealer_.Seal(BlockKind::kOpaque, "k", std::string(size, 'v'));
    ASSERT_TRUE(sealed.ok());
    EXPECT_EQ(sealed->bytes.size(), cls + kSealedOverhead) << size;
  }
}

TEST_P(SealerTest, givenOversizedPlaintext_whenSeal_thenInvalidArgument) {
  for (BlockKind kind : kAllKinds) {
    auto sealed =
        sealer_.Seal(kind, "n", std::string(sealer_.Capacity(kind) + 1, 'x'));
    EXPECT_EQ(sealed.status().code(), StatusCode::kInvalidArgument);
  }
}

TEST_P(SealerTest, givenFlippedBitAnywhere_whenOpen_thenCorruption) {
  const std::string name = sealer_.NewBlockName();
  auto sealed = sealer_.Seal(BlockKind::kData, name, Pattern(1000, 3));
  ASSERT_TRUE(sealed.ok());
  const size_t n = sealed->bytes.size();
  for (size_t pos : {size_t{0}, size_t{1}, size_t{2}, size_t{3}, size_t{7},
                     size_t{8}, size_t{23}, size_t{24}, size_t{31}, size_t{32},
                     size_t{36}, size_t{1100}, n / 2, n - 17, n - 16, n - 1}) {
    for (int bit : {0, 7}) {
      std::string bad = sealed->bytes;
      bad[pos] ^= static_cast<char>(1 << bit);
      auto opened = sealer_.Open(BlockKind::kData, name, bad);
      EXPECT_EQ(opened.status().code(), StatusCode::kCorruption)
          << "byte " << pos << " bit " << bit;
    }
  }
  // Truncated or extended bytes fail on the exact size check.
  EXPECT_EQ(sealer_.Open(BlockKind::kData, name, sealed->bytes.substr(1))
                .status()
                .code(),
            StatusCode::kCorruption);
  EXPECT_EQ(
      sealer_.Open(BlockKind::kData, name, sealed->bytes + "x").status().code(),
      StatusCode::kCorruption);
}

TEST_P(
    SealerTest,
    givenMisplacedBlock_whenOpenUnderOtherNameKindVolumeOrKey_thenCorruption) {
  // Node size == block size so that only the kind byte and AD tell them apart.
  auto same_size = MakeContext(std::get<0>(GetParam()), std::get<1>(GetParam()),
                               1, std::get<1>(GetParam()));
  SealerImpl sealer(same_size);
  auto sealed = sealer.Seal(BlockKind::kData, "name-a", "payload");
  ASSERT_TRUE(sealed.ok());
  EXPECT_TRUE(sealer.Open(BlockKind::kData, "name-a", sealed->bytes).ok());

  auto wrong_name = sealer.Open(BlockKind::kData, "name-b", sealed->bytes);
  EXPECT_EQ(wrong_name.status().code(), StatusCode::kCorruption);
  // The message names the kind and the host name in hex, never data.
  EXPECT_NE(wrong_name.status().message().find("data block " +
                                               HexEncode(AsBytes("name-b"))),
            std::string::npos);
  EXPECT_EQ(wrong_name.status().message().find("payload"), std::string::npos);

  EXPECT_EQ(
      sealer.Open(BlockKind::kNode, "name-a", sealed->bytes).status().code(),
      StatusCode::kCorruption);
  std::string relabeled = sealed->bytes;
  relabeled[1] = static_cast<char>(BlockKind::kNode);
  EXPECT_EQ(sealer.Open(BlockKind::kNode, "name-a", relabeled).status().code(),
            StatusCode::kCorruption);

  auto other_volume =
      MakeContext(std::get<0>(GetParam()), std::get<1>(GetParam()), 1,
                  std::get<1>(GetParam()));
  other_volume->uuid[0] ^= 1;
  SealerImpl other_volume_sealer(other_volume);
  EXPECT_EQ(other_volume_sealer.Open(BlockKind::kData, "name-a", sealed->bytes)
                .status()
                .code(),
            StatusCode::kCorruption);

  SealerImpl other_key_sealer(MakeContext(std::get<0>(GetParam()),
                                          std::get<1>(GetParam()), 2,
                                          std::get<1>(GetParam())));
  EXPECT_EQ(other_key_sealer.Open(BlockKind::kData, "name-a", sealed->bytes)
                .status()
                .code(),
            StatusCode::kCorruption);
}

TEST_P(SealerTest, givenExpectedTagMismatch_whenOpen_thenCorruption) {
  auto first = sealer_.Seal(BlockKind::kNode, "n", "version 1");
  auto second = sealer_.Seal(BlockKind::kNode, "n", "version 2");
  ASSERT_TRUE(first.ok() && second.ok());
  // A replay of the old block under the same name authenticates but must be
  // rejected when the parent recorded the new tag.
  auto replayed =
      sealer_.Open(BlockKind::kNode, "n", first->bytes, &second->tag);
  EXPECT_EQ(replayed.status().code(), StatusCode::kCorruption);
  auto current =
      sealer_.Open(BlockKind::kNode, "n", second->bytes, &second->tag);
  ASSERT_TRUE(current.ok());
  EXPECT_EQ(*current, "version 2");
}

TEST_P(SealerTest, givenSamePlaintextTwice_whenSealed_thenBytesAndTagsDiffer) {
  auto a = sealer_.Seal(BlockKind::kData, "n", "same");
  auto b = sealer_.Seal(BlockKind::kData, "n", "same");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(a->bytes, b->bytes);
  EXPECT_NE(a->tag, b->tag);
}

TEST_P(SealerTest,
       givenBlockFromAnotherSession_whenOpen_thenSubkeyIsRederived) {
  SealerImpl other(context_);
  auto sealed = other.Seal(BlockKind::kRoot, "root", "state");
  ASSERT_TRUE(sealed.ok());
  auto opened = sealer_.Open(BlockKind::kRoot, "root", sealed->bytes);
  ASSERT_TRUE(opened.ok());
  EXPECT_EQ(*opened, "state");
}

INSTANTIATE_TEST_SUITE_P(
    CiphersAndBlockSizes, SealerTest,
    ::testing::Combine(::testing::ValuesIn(kCiphers),
                       ::testing::Values(4096u, 1u << 20)),
    [](const auto& info) {
      return testing::CipherTestName(std::get<0>(info.param)) + "_" +
             std::to_string(std::get<1>(info.param) / 1024) + "KiB";
    });

TEST(SealerNamesTest, givenOneHundredThousandNames_whenCompared_thenAllUnique) {
  SealerImpl sealer(MakeContext(CipherId::kAes256Gcm, 4096));
  std::set<std::string> names;
  for (int i = 0; i < 100000; ++i) {
    std::string name = sealer.NewBlockName();
    ASSERT_EQ(name.size(), 16u);
    names.insert(std::move(name));
  }
  EXPECT_EQ(names.size(), 100000u);
}

TEST(SealerSessionTest,
     givenCounterExhausted_whenSeal_thenSaltRotatesAndBothOpen) {
  auto ctx = MakeContext(CipherId::kAes256Gcm, 4096);
  Salt salt{};
  salt.fill(0x55);
  SealerImpl sealer(ctx, salt, kMaxCountersPerSalt - 1);
  auto last = sealer.Seal(BlockKind::kData, "a", "last of old salt");
  auto first = sealer.Seal(BlockKind::kData, "b", "first of new salt");
  ASSERT_TRUE(last.ok() && first.ok());
  EXPECT_EQ(last->bytes.substr(8, 16), std::string(16, '\x55'));
  EXPECT_EQ(
      LoadLe(reinterpret_cast<const uint8_t*>(last->bytes.data()) + 24, 8),
      kMaxCountersPerSalt - 1);
  EXPECT_NE(first->bytes.substr(8, 16), std::string(16, '\x55'));
  EXPECT_EQ(
      LoadLe(reinterpret_cast<const uint8_t*>(first->bytes.data()) + 24, 8),
      0u);
  EXPECT_TRUE(sealer.Open(BlockKind::kData, "a", last->bytes).ok());
  EXPECT_TRUE(sealer.Open(BlockKind::kData, "b", first->bytes).ok());
}

TEST(SealerSessionTest,
     givenMoreSessionsThanCacheHolds_whenOpenAll_thenAllOpen) {
  auto ctx = MakeContext(CipherId::kXChaCha20Poly1305, 4096);
  SealerImpl reader(ctx);
  std::vector<SealedBlock> blocks;
  for (size_t i = 0; i < kMaxCachedSubkeys * 2; ++i) {
    SealerImpl writer(ctx);
    auto sealed = writer.Seal(BlockKind::kData, "n", std::to_string(i));
    ASSERT_TRUE(sealed.ok());
    blocks.push_back(*sealed);
  }
  for (int round = 0; round < 2; ++round) {
    for (size_t i = 0; i < blocks.size(); ++i) {
      auto opened = reader.Open(BlockKind::kData, "n", blocks[i].bytes);
      ASSERT_TRUE(opened.ok());
      EXPECT_EQ(*opened, std::to_string(i));
    }
  }
}

TEST(SealerSessionTest,
     givenConcurrentSeals_whenCollected_thenCountersNeverRepeat) {
  SealerImpl sealer(MakeContext(CipherId::kAes256Gcm, 4096));
  constexpr int kThreads = 4;
  constexpr int kPerThread = 500;
  std::vector<std::vector<std::string>> prefixes(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        auto sealed = sealer.Seal(BlockKind::kData, "n", "x");
        ASSERT_TRUE(sealed.ok());
        ASSERT_TRUE(sealer.Open(BlockKind::kData, "n", sealed->bytes).ok());
        prefixes[t].push_back(sealed->bytes.substr(8, 24));  // salt+counter
      }
    });
  }
  for (auto& th : threads) th.join();
  std::set<std::string> unique;
  for (auto& v : prefixes) unique.insert(v.begin(), v.end());
  EXPECT_EQ(unique.size(), size_t{kThreads} * kPerThread);
}

// ---- Known-answer tests: pin the on-disk format of docs/format.md. ----

class SealerKnownAnswerTest : public ::testing::TestWithParam<CipherId> {
 protected:
  static Salt FixedSalt() {
    Salt salt;
    for (size_t i = 0; i < salt.size(); ++i)
      salt[i] = static_cast<uint8_t>(0x10 + i);
    return salt;
  }
  static constexpr uint64_t kCounter = 0x81020304;  // < 2^32: no rotation

  // Seals `plain` as `kind` with the fixed salt and counter into `*out`,
  // then decodes every documented field by hand (prefix, AD, nonce,
  // encrypted length and padding, tag).
  void SealAndDecode(BlockKind kind, size_t class_size,
                     const std::string& plain, std::string* out) {
    auto ctx = MakeContext(GetParam(), 4096);
    SealerImpl sealer(ctx, FixedSalt(), kCounter);
    const std::string name = "kat-name";
    auto sealed = sealer.Seal(kind, name, plain);
    ASSERT_TRUE(sealed.ok());
    const std::string& s = sealed->bytes;
    const auto* b = reinterpret_cast<const uint8_t*>(s.data());

    // 32-byte prefix, then length (4) + class, then the tag.
    ASSERT_EQ(s.size(), 32u + 4 + class_size + 16);
    EXPECT_EQ(b[0], 0xE1);  // magic nibble 0xE, format version 1
    EXPECT_EQ(b[1], static_cast<uint8_t>(kind));
    EXPECT_EQ(b[2], static_cast<uint8_t>(GetParam()));
    for (size_t i = 3; i < 8; ++i) EXPECT_EQ(b[i], 0);
    const Salt salt = FixedSalt();
    EXPECT_TRUE(std::equal(salt.begin(), salt.end(), b + 8));
    EXPECT_EQ(LoadLe(b + 24, 8), kCounter);
    const uint8_t* tag = b + 32 + 4 + class_size;
    EXPECT_TRUE(std::equal(sealed->tag.begin(), sealed->tag.end(), tag));

    // Decrypt by hand: session subkey, nonce and AD built from the spec.
    auto subkey = HkdfSha256(ctx->encryption_key.span(), FixedSalt(),
                             "enclavefs seal v1", 32);
    ASSERT_TRUE(subkey.ok());
    auto aead = Aead::Create(GetParam(), subkey->span());
    ASSERT_TRUE(aead.ok());
    std::vector<uint8_t> nonce((*aead)->nonce_size(), 0);
    StoreLe(nonce.data(), kCounter, 8);
    std::string ad = std::string("EFS") + '\x01' + static_cast<char>(kind) +
                     std::string(AsChars(ctx->uuid)) + '\x08' + '\x00' + name;
    std::string body(4 + class_size, '\0');
    ASSERT_TRUE((*aead)
                    ->Decrypt(nonce, AsBytes(ad), {b + 32, body.size()},
                              std::span<const uint8_t, 16>(tag, 16),
                              reinterpret_cast<uint8_t*>(body.data()))
                    .ok());
    EXPECT_EQ(LoadLe(reinterpret_cast<const uint8_t*>(body.data()), 4),
              plain.size());
    EXPECT_EQ(body.substr(4, plain.size()), plain);
    EXPECT_EQ(body.substr(4 + plain.size()),
              std::string(class_size - plain.size(), '\0'));
    *out = s;
  }
};

TEST_P(SealerKnownAnswerTest,
       givenRootRecord_whenSealed_thenLayoutDecodesAndHashIsPinned) {
  std::string sealed;
  ASSERT_NO_FATAL_FAILURE(SealAndDecode(BlockKind::kRoot, kRootRecordSize,
                                        "EnclaveFS known-answer plaintext",
                                        &sealed));
  // Pinned once the decoding above passed; a change means a format change.
  const char* expected =
      GetParam() == CipherId::kAes256Gcm
          ? "8944471dba32f53ab70177da0a31749fd3814a4adc5870d08775eef715dafcbe"
          : "b1aeb534dce5994ddb9a493557ed19d900245f2d25669a9d3b9d2742b4e17e2d";
  EXPECT_EQ(Blake2bHex(sealed), expected);
}

TEST_P(SealerKnownAnswerTest,
       givenFullDataBlock_whenSealed_thenWholeBlockSizeFitsAndHashIsPinned) {
  // A data block holds exactly the volume block size (4096 here).
  std::string sealed;
  ASSERT_NO_FATAL_FAILURE(
      SealAndDecode(BlockKind::kData, 4096, Pattern(4096, 0x5a), &sealed));
  const char* expected =
      GetParam() == CipherId::kAes256Gcm
          ? "53311f1ceb6d9a42b621425dae3cd2b071c4444b870d45d6d6c9177bc9250fab"
          : "c08b988b4c1aec4b294fceb7e8cfa31d8f126685298290f866d767593d76a41d";
  EXPECT_EQ(Blake2bHex(sealed), expected);
}

INSTANTIATE_TEST_SUITE_P(BothCiphers, SealerKnownAnswerTest,
                         ::testing::ValuesIn(kCiphers), [](const auto& info) {
                           return testing::CipherTestName(info.param);
                         });

TEST(
    SealerNamesTest,
    givenFixedSaltAndCounter_whenNewBlockName_thenSaltPrefixAndBigEndianCounter) {
  auto ctx = MakeContext(CipherId::kAes256Gcm, 4096);
  Salt salt;
  salt.fill(0x42);
  SealerImpl sealer(ctx, salt, 7);
  const std::string name = sealer.NewBlockName();
  uint8_t prefix[16];
  crypto_generichash(prefix, 16, salt.data(), 16, ctx->naming_key.data(), 32);
  EXPECT_EQ(
      HexEncode(AsBytes(name)),
      HexEncode(std::span<const uint8_t>(prefix, 8)) + "0000000000000007");
  EXPECT_EQ(HexEncode(AsBytes(name)).substr(16), "0000000000000007");
}

TEST(SealerNamesTest, givenOneSession_whenNamesAreDrawn_thenTheySortInOrder) {
  SealerImpl sealer(MakeContext(CipherId::kAes256Gcm, 4096));
  std::string previous = sealer.NewBlockName();
  for (int i = 0; i < 300; ++i) {
    // Seals in between draw from the same counter.
    ASSERT_TRUE(sealer.Seal(BlockKind::kData, previous, "x").ok());
    std::string next = sealer.NewBlockName();
    ASSERT_LT(previous, next) << "name " << i;
    previous = std::move(next);
  }
}

TEST(SealerNamesTest, givenTwoSessions_whenNamesAreDrawn_thenPrefixesDiffer) {
  auto ctx = MakeContext(CipherId::kAes256Gcm, 4096);
  SealerImpl first(ctx);
  SealerImpl second(ctx);
  EXPECT_NE(first.NewBlockName().substr(0, 8),
            second.NewBlockName().substr(0, 8));
}

}  // namespace
}  // namespace enclavefs
