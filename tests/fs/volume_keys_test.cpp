// Tests of the volume header: every slot type, wrong keys, version checks,
// slot management, tamper detection and the documented byte layout.
#include "fs/volume_keys.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "fs/crypto.h"

namespace enclavefs {
namespace {

constexpr std::string_view kWrongKey = "wrong key, or not an EnclaveFS volume";

class VolumeKeysTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/efs-volume-keys-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Writes `content` to a new file in the temp dir; returns its path.
  std::string WriteFile(const std::string& name, const std::string& content) {
    std::string path = dir_ + "/" + name;
    std::ofstream(path, std::ios::binary) << content;
    return path;
  }

  static FormatParams CheapParams() {
    FormatParams p;
    p.cost = PwhashCost::ForTests();
    return p;
  }

  // Formats with `source`; fails the test on error.
  std::pair<std::string, std::unique_ptr<VolumeKeys>> Format(
      const KeySource& source, FormatParams params = CheapParams()) {
    auto created = CreateVolumeHeader(params, source);
    EXPECT_TRUE(created.ok()) << created.status().ToString();
    return std::move(*created);
  }

  std::string dir_;
  const std::string raw_key_ = std::string(
      "\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10"
      "\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f\x00",
      32);
  const std::string hex_key_ =
      "0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f00";
};

TEST_F(VolumeKeysTest,
       givenPassphraseSlot_whenUnlockWithSamePassphrase_thenSameKeys) {
  auto [header, keys] = Format(KeySource::Passphrase("correct horse"));
  auto unlocked =
      UnlockVolumeHeader(header, KeySource::Passphrase("correct horse"));
  ASSERT_TRUE(unlocked.ok()) << unlocked.status().ToString();
  EXPECT_EQ((*unlocked)->uuid(), keys->uuid());
  EXPECT_EQ((*unlocked)->access_token(), keys->access_token());
  EXPECT_EQ(keys->access_token().size(), 32u);
  EXPECT_EQ((*unlocked)->format_version(), 1u);
}

TEST_F(VolumeKeysTest,
       givenRawKeyFile_whenUnlockWithHexFileOfSameKey_thenUnlocks) {
  auto [header, keys] = Format(KeySource::KeyFile(WriteFile("raw", raw_key_)));
  for (const std::string& content : {hex_key_, hex_key_ + "\n", raw_key_}) {
    auto unlocked =
        UnlockVolumeHeader(header, KeySource::KeyFile(WriteFile("k", content)));
    ASSERT_TRUE(unlocked.ok()) << unlocked.status().ToString();
    EXPECT_EQ((*unlocked)->access_token(), keys->access_token());
  }
}

TEST_F(VolumeKeysTest,
       givenKeyCommandSlot_whenUnlockWithPrintfOrCat_thenUnlocks) {
  auto [header, keys] =
      Format(KeySource::KeyCommand("printf '%s' " + hex_key_));
  std::string raw_path = WriteFile("raw", raw_key_);
  auto by_cat =
      UnlockVolumeHeader(header, KeySource::KeyCommand("cat " + raw_path));
  ASSERT_TRUE(by_cat.ok()) << by_cat.status().ToString();
  EXPECT_EQ((*by_cat)->access_token(), keys->access_token());
  auto by_file = UnlockVolumeHeader(header, KeySource::KeyFile(raw_path));
  EXPECT_TRUE(by_file.ok());
}

TEST_F(VolumeKeysTest,
       givenWrongPassphrase_whenUnlock_thenPermissionDeniedExactMessage) {
  auto [header, keys] = Format(KeySource::Passphrase("right"));
  auto unlocked = UnlockVolumeHeader(header, KeySource::Passphrase("wrong"));
  EXPECT_EQ(unlocked.status().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(unlocked.status().message(), kWrongKey);
}

TEST_F(VolumeKeysTest, givenWrongKeyFile_whenUnlock_thenPermissionDenied) {
  auto [header, keys] = Format(KeySource::KeyFile(WriteFile("a", raw_key_)));
  std::string other(32, 'x');
  auto unlocked =
      UnlockVolumeHeader(header, KeySource::KeyFile(WriteFile("b", other)));
  EXPECT_EQ(unlocked.status().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(unlocked.status().message(), kWrongKey);
}

TEST_F(VolumeKeysTest,
       givenGarbageOrEmptyBytes_whenUnlockOrList_thenPermissionDenied) {
  for (const std::string& garbage :
       {std::string(), std::string(4096, '\0'), std::string("EFSVOLHD"),
        std::string(300, 'z')}) {
    auto unlocked = UnlockVolumeHeader(garbage, KeySource::Passphrase("p"));
    EXPECT_EQ(unlocked.status().code(), StatusCode::kPermissionDenied);
    EXPECT_EQ(unlocked.status().message(), kWrongKey);
    EXPECT_EQ(ListKeySlots(garbage).status().code(),
              StatusCode::kPermissionDenied);
  }
}

TEST_F(VolumeKeysTest,
       givenVersionBumped_whenUnlock_thenIncompatibleBeforeTryingKey) {
  // A failing key command would be reported if keys were tried first.
  auto [header, keys] = Format(KeySource::Passphrase("p"));
  header[8] = 2;
  auto unlocked = UnlockVolumeHeader(header, KeySource::KeyCommand("exit 3"));
  EXPECT_EQ(unlocked.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(unlocked.status().message(),
            "incompatible format version 2 (this build reads 1)");
  EXPECT_EQ(DescribeHeader(header).status().message(),
            "incompatible format version 2 (this build reads 1)");
}

TEST_F(VolumeKeysTest, givenAddedSlot_whenUnlockWithEither_thenSameVolumeKey) {
  auto [header, keys] = Format(KeySource::Passphrase("first"));
  auto added =
      AddKeySlot(header, *keys, KeySource::KeyFile(WriteFile("k", raw_key_)),
                 PwhashCost::ForTests());
  ASSERT_TRUE(added.ok()) << added.status().ToString();
  auto a = UnlockVolumeHeader(*added, KeySource::Passphrase("first"));
  auto b = UnlockVolumeHeader(*added, KeySource::KeyFile(dir_ + "/k"));
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_TRUE((*a)->volume_key().Equals((*b)->volume_key()));
  auto slots = ListKeySlots(*added);
  ASSERT_TRUE(slots.ok());
  ASSERT_EQ(slots->size(), 2u);
  EXPECT_EQ((*slots)[0].type, "passphrase");
  EXPECT_EQ((*slots)[1].index, 1);
  EXPECT_EQ((*slots)[1].type, "key-file");
}

TEST_F(VolumeKeysTest,
       givenRemovedSlot_whenUnlockWithItsKey_thenPermissionDenied) {
  auto [header, keys] = Format(KeySource::Passphrase("old"));
  auto added = AddKeySlot(header, *keys, KeySource::Passphrase("new"),
                          PwhashCost::ForTests());
  ASSERT_TRUE(added.ok());
  auto removed = RemoveKeySlot(*added, *keys, 0);
  ASSERT_TRUE(removed.ok()) << removed.status().ToString();
  EXPECT_EQ(UnlockVolumeHeader(*removed, KeySource::Passphrase("old"))
                .status()
                .code(),
            StatusCode::kPermissionDenied);
  EXPECT_TRUE(UnlockVolumeHeader(*removed, KeySource::Passphrase("new")).ok());
  EXPECT_EQ(RemoveKeySlot(*removed, *keys, 0).status().code(),
            StatusCode::kNotFound);
}

TEST_F(VolumeKeysTest, givenSingleSlot_whenRemoveIt_thenRefused) {
  auto [header, keys] = Format(KeySource::Passphrase("only"));
  auto removed = RemoveKeySlot(header, *keys, 0);
  EXPECT_EQ(removed.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(removed.status().message(), "refusing to remove the last key slot");
}

TEST_F(VolumeKeysTest,
       givenChangedPassphrase_whenUnlock_thenOnlyNewWorksSameIndex) {
  auto [header, keys] = Format(KeySource::Passphrase("old"));
  auto changed = ChangePassphrase(
      header, *keys, 0, KeySource::Passphrase("new"), PwhashCost::ForTests());
  ASSERT_TRUE(changed.ok()) << changed.status().ToString();
  EXPECT_EQ(changed->size(), header.size());
  EXPECT_EQ(UnlockVolumeHeader(*changed, KeySource::Passphrase("old"))
                .status()
                .code(),
            StatusCode::kPermissionDenied);
  auto unlocked = UnlockVolumeHeader(*changed, KeySource::Passphrase("new"));
  ASSERT_TRUE(unlocked.ok());
  EXPECT_EQ((*unlocked)->access_token(), keys->access_token());
  auto slots = ListKeySlots(*changed);
  ASSERT_TRUE(slots.ok());
  EXPECT_EQ((*slots)[0].index, 0);
}

TEST_F(VolumeKeysTest, givenAllSlotsUsed_whenAddSlot_thenResourceExhausted) {
  auto [header, keys] = Format(KeySource::Passphrase("p"));
  std::string path = WriteFile("k", raw_key_);
  for (int i = 1; i < kMaxKeySlots; ++i) {
    auto added = AddKeySlot(header, *keys, KeySource::KeyFile(path),
                            PwhashCost::ForTests());
    ASSERT_TRUE(added.ok());
    header = *added;
  }
  EXPECT_EQ(AddKeySlot(header, *keys, KeySource::KeyFile(path),
                       PwhashCost::ForTests())
                .status()
                .code(),
            StatusCode::kResourceExhausted);
}

TEST_F(VolumeKeysTest, givenOtherVolumesKeys_whenAddSlot_thenRefused) {
  auto [header, keys] = Format(KeySource::Passphrase("p"));
  auto [other_header, other_keys] = Format(KeySource::Passphrase("p"));
  EXPECT_FALSE(AddKeySlot(header, *other_keys, KeySource::Passphrase("q"),
                          PwhashCost::ForTests())
                   .ok());
}

TEST_F(VolumeKeysTest, givenAnyFlippedHeaderByte_whenUnlock_thenDetected) {
  // Slot 0 is a passphrase slot the key file never opens, slot 1 the key file.
  auto [header, keys] = Format(KeySource::Passphrase("p"));
  std::string path = WriteFile("k", raw_key_);
  auto added = AddKeySlot(header, *keys, KeySource::KeyFile(path),
                          PwhashCost::ForTests());
  ASSERT_TRUE(added.ok());
  const std::string good = *added;
  ASSERT_EQ(good.size(), 48u + 2 * 112 + 32);
  ASSERT_TRUE(UnlockVolumeHeader(good, KeySource::KeyFile(path)).ok());
  for (size_t i = 0; i < good.size(); ++i) {
    std::string bad = good;
    bad[i] ^= 0x01;
    Status s = UnlockVolumeHeader(bad, KeySource::KeyFile(path)).status();
    ASSERT_FALSE(s.ok()) << "flip at byte " << i << " went unnoticed";
    if (i >= 8 && i < 12) {
      EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << i;  // version
    } else if (i >= 40 && i < 48 + 112) {
      // Slot count / reserved fail parsing; slot 0 is caught by the MAC.
      EXPECT_TRUE(s.code() == StatusCode::kCorruption ||
                  s.code() == StatusCode::kPermissionDenied)
          << i;
    } else if (i >= 48 + 2 * 112) {
      EXPECT_EQ(s.code(), StatusCode::kCorruption) << i;
      EXPECT_EQ(s.message(), "volume header failed authentication");
    } else {
      EXPECT_EQ(s.code(), StatusCode::kPermissionDenied) << i;
    }
  }
}

TEST_F(VolumeKeysTest,
       givenPassphraseSlotParamsTampered_whenUnlock_thenDetected) {
  auto [header, keys] = Format(KeySource::Passphrase("p"));
  std::string bad = header;
  bad[48 + 24] ^= 0x01;  // first salt byte of slot 0
  EXPECT_EQ(UnlockVolumeHeader(bad, KeySource::Passphrase("p")).status().code(),
            StatusCode::kPermissionDenied);
}

TEST_F(VolumeKeysTest,
       givenFailingOrJunkKeyCommand_whenUnlock_thenClearErrorWithoutSecret) {
  auto [header, keys] = Format(KeySource::Passphrase("p"));
  auto failed = UnlockVolumeHeader(header, KeySource::KeyCommand("exit 1"));
  EXPECT_EQ(failed.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(failed.status().message(), "key command failed with exit status 1");
  auto junk =
      UnlockVolumeHeader(header, KeySource::KeyCommand("printf junk-secret"));
  EXPECT_EQ(junk.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(junk.status().message().find("key command output"),
            std::string::npos);
  EXPECT_EQ(junk.status().message().find("junk"), std::string::npos);
  auto flood = UnlockVolumeHeader(header, KeySource::KeyCommand("yes"));
  EXPECT_EQ(flood.status().code(), StatusCode::kInvalidArgument);
  auto bad_hex = UnlockVolumeHeader(
      header, KeySource::KeyCommand("printf '%064d' 0 | tr 0 g"));
  EXPECT_EQ(bad_hex.status().code(), StatusCode::kInvalidArgument);
}

TEST_F(VolumeKeysTest,
       givenMissingKeyFile_whenFormat_thenInvalidArgumentNamingPath) {
  auto created =
      CreateVolumeHeader(CheapParams(), KeySource::KeyFile(dir_ + "/none"));
  EXPECT_EQ(created.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(created.status().message().find(dir_ + "/none"), std::string::npos);
}

TEST_F(VolumeKeysTest, givenBadParams_whenFormat_thenInvalidArgument) {
  FormatParams p = CheapParams();
  p.block_size = 3000;
  EXPECT_EQ(CreateVolumeHeader(p, KeySource::Passphrase("p")).status().code(),
            StatusCode::kInvalidArgument);
  p = CheapParams();
  p.node_size = 2u << 20;
  EXPECT_EQ(CreateVolumeHeader(p, KeySource::Passphrase("p")).status().code(),
            StatusCode::kInvalidArgument);
}

TEST_F(VolumeKeysTest,
       givenHeader_whenParsedAtDocumentedOffsets_thenFieldsMatch) {
  FormatParams p = CheapParams();
  p.cipher = CipherId::kXChaCha20Poly1305;
  p.block_size = 128 * 1024;
  p.node_size = 8 * 1024;
  auto [header, keys] = Format(KeySource::Passphrase("p"), p);
  const auto* b = reinterpret_cast<const uint8_t*>(header.data());
  ASSERT_EQ(header.size(), 48u + 112 + 32);
  EXPECT_EQ(header.substr(0, 8), "EFSVOLHD");
  EXPECT_EQ(LoadLe(b + 8, 4), 1u);
  EXPECT_TRUE(std::equal(keys->uuid().begin(), keys->uuid().end(), b + 12));
  EXPECT_EQ(b[28], 2);  // xchacha20-poly1305
  EXPECT_EQ(LoadLe(b + 32, 4), 128u * 1024);
  EXPECT_EQ(LoadLe(b + 36, 4), 8u * 1024);
  EXPECT_EQ(b[40], 1);  // slot count
  const uint8_t* slot = b + 48;
  EXPECT_EQ(slot[0], 0);  // index
  EXPECT_EQ(slot[1], 1);  // passphrase
  EXPECT_EQ(LoadLe(slot + 8, 8), PwhashCost::ForTests().opslimit);
  EXPECT_EQ(LoadLe(slot + 16, 8), PwhashCost::ForTests().memlimit);
  for (size_t i : {29u, 30u, 31u, 41u, 47u}) EXPECT_EQ(b[i], 0) << i;

  auto info = DescribeHeader(header);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->format_version, 1u);
  EXPECT_EQ(info->cipher, "xchacha20-poly1305");
  EXPECT_EQ(info->block_size, 128u * 1024);
  EXPECT_EQ(info->node_size, 8u * 1024);
  ASSERT_EQ(info->uuid.size(), 36u);
  EXPECT_EQ(info->uuid.substr(0, 8), HexEncode({b + 12, 4}));
  EXPECT_EQ(info->uuid[14], '4');  // RFC 4122 version 4
  ASSERT_EQ(info->slots.size(), 1u);
  EXPECT_EQ(info->slots[0].type, "passphrase");
}

TEST_F(VolumeKeysTest, givenTwoFormats_whenCompared_thenUuidsAndTokensDiffer) {
  auto [h1, k1] = Format(KeySource::Passphrase("p"));
  auto [h2, k2] = Format(KeySource::Passphrase("p"));
  EXPECT_NE(k1->uuid(), k2->uuid());
  EXPECT_NE(k1->access_token(), k2->access_token());
  // The public header holds no secret in clear.
  EXPECT_EQ(h1.find(k1->access_token()), std::string::npos);
  EXPECT_EQ(h1.find(AsChars(k1->volume_key().span())), std::string::npos);
}

}  // namespace
}  // namespace enclavefs
