#include "blockstore/protocol.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <algorithm>
#include <thread>

#include "blockstore/frame_io.h"

namespace enclavefs::protocol {
namespace {

using ::testing::HasSubstr;

// Hand-rolled wire bytes, independent of the encoder under test.
std::string U8(uint8_t v) { return std::string(1, static_cast<char>(v)); }
std::string Le(uint64_t v, int bytes) {
  std::string out;
  for (int i = 0; i < bytes; ++i) out += U8(static_cast<uint8_t>(v >> (8 * i)));
  return out;
}
std::string U16(uint16_t v) { return Le(v, 2); }
std::string U32(uint32_t v) { return Le(v, 4); }
std::string U64(uint64_t v) { return Le(v, 8); }
std::string Str(std::string_view s) {
  return U32(static_cast<uint32_t>(s.size())) + std::string(s);
}
const std::string kToken(32, 't');
const ClientId kClientId = {0xc1, 2,  3,  4,  5,  6,  7,  8,
                            9,    10, 11, 12, 13, 14, 15, 0xff};
const std::string kClientIdBytes(
    reinterpret_cast<const char*>(kClientId.data()), kClientId.size());

std::string Header(uint32_t magic, uint16_t version, uint16_t status,
                   uint16_t reserved, uint32_t payload_size) {
  return U32(magic) + U16(version) + U16(2) + U64(7) + U16(status) +
         U16(reserved) + U32(payload_size);
}

template <typename T>
void ExpectProtocolError(const Result<T>& r, std::string_view fragment) {
  ASSERT_FALSE(r.ok()) << "decoded malformed input";
  EXPECT_EQ(r.status().code(), StatusCode::kProtocolError);
  EXPECT_THAT(r.status().message(), HasSubstr(std::string(fragment)));
}

// ---- Round trips ----

TEST(ProtocolTest, givenHeader_whenEncodedAndDecoded_thenFieldsSurvive) {
  FrameHeader h{static_cast<uint16_t>(Opcode::kAdminResize),
                0x0123456789abcdefULL, StatusCode::kFenced, kMaxPayloadSize};
  auto raw = EncodeFrameHeader(h);
  auto back = DecodeFrameHeader(std::string_view(raw.data(), raw.size()));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->opcode, h.opcode);
  EXPECT_EQ(back->request_id, h.request_id);
  EXPECT_EQ(back->status, h.status);
  EXPECT_EQ(back->payload_size, h.payload_size);
}

TEST(ProtocolTest, givenHeader_whenEncoded_thenLayoutIsLittleEndianSpec) {
  FrameHeader h{static_cast<uint16_t>(Opcode::kGet), 7, StatusCode::kBusy, 9};
  auto raw = EncodeFrameHeader(h);
  EXPECT_EQ(std::string(raw.data(), raw.size()),
            U32(kMagic) + U16(2) + U16(2) + U64(7) + U16(6) + U16(0) + U32(9));
  EXPECT_EQ(std::string(raw.data(), 4), "EFS1");
}

TEST(ProtocolTest, givenOpenRequest_whenRoundTripped_thenEqual) {
  OpenRequest m{"vol-1.a_b", kToken, true, kClientId};
  auto back = DecodeOpenRequest(Encode(m));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, m);
}

TEST(ProtocolTest, givenOpenRequest_whenEncoded_thenClientIdFollowsFlags) {
  const std::string encoded =
      Encode(OpenRequest{"v", kToken, false, kClientId});
  EXPECT_EQ(encoded, Str("v") + Str(kToken) + U32(0) + kClientIdBytes);
}

TEST(ProtocolTest, givenOpenResponse_whenRoundTripped_thenEqual) {
  OpenResponse m{0xfeedfacecafebeefULL, 0xfeedfacecafe0001ULL};
  auto back = DecodeOpenResponse(Encode(m));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, m);
  EXPECT_EQ(Encode(m), U64(m.epoch) + U64(m.holder_since));
}

TEST(ProtocolTest, givenGetRequestAndResponse_whenRoundTripped_thenEqual) {
  GetRequest req{{"a", std::string(kMaxKeySize, 'k'), std::string("\0x", 2)}};
  auto req_back = DecodeGetRequest(Encode(req));
  ASSERT_TRUE(req_back.ok()) << req_back.status().ToString();
  EXPECT_EQ(*req_back, req);

  GetResponse resp{{std::string("v1"), std::nullopt, std::string()}};
  auto resp_back = DecodeGetResponse(Encode(resp));
  ASSERT_TRUE(resp_back.ok()) << resp_back.status().ToString();
  EXPECT_EQ(*resp_back, resp);
}

TEST(ProtocolTest, givenGetResponse_whenDecodedAsViews_thenViewsIntoPayload) {
  const std::string payload = Encode(
      GetResponse{{std::string("v1"), std::nullopt, std::string("xyz")}});
  auto views = DecodeGetResponseViews(payload);
  ASSERT_TRUE(views.ok()) << views.status().ToString();
  ASSERT_EQ(views->size(), 3u);
  EXPECT_EQ((*views)[0], "v1");
  EXPECT_FALSE((*views)[1].has_value());
  EXPECT_EQ((*views)[2], "xyz");
  EXPECT_EQ((*views)[2]->data(), payload.data() + payload.size() - 3);
  // A truncated payload fails as the copying decoder does.
  EXPECT_EQ(DecodeGetResponseViews(payload.substr(0, payload.size() - 1))
                .status()
                .code(),
            StatusCode::kProtocolError);
}

TEST(ProtocolTest, givenCommitRequest_whenDecodedAsViews_thenPointIntoPayload) {
  CommitBatch batch;
  batch.puts = {{"k1", "v1"}, {"k2", std::string(1000, 'x')}};
  batch.deletes = {"gone"};
  batch.condition = CommitCondition{"root", std::string("old")};
  batch.durable = true;
  const std::string payload = Encode(batch);
  auto views = DecodeCommitRequestViews(payload);
  ASSERT_TRUE(views.ok()) << views.status().ToString();
  const auto inside = [&](std::string_view v) {
    return v.data() >= payload.data() &&
           v.data() + v.size() <= payload.data() + payload.size();
  };
  ASSERT_EQ(views->puts.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(views->puts[i].first, batch.puts[i].first);
    EXPECT_EQ(views->puts[i].second, batch.puts[i].second);
    EXPECT_TRUE(inside(views->puts[i].first));
    EXPECT_TRUE(inside(views->puts[i].second));
  }
  ASSERT_EQ(views->deletes.size(), 1u);
  EXPECT_EQ(views->deletes[0], "gone");
  EXPECT_TRUE(inside(views->deletes[0]));
  ASSERT_TRUE(views->condition.has_value());
  EXPECT_EQ(views->condition->expected, std::optional<std::string>("old"));
  EXPECT_TRUE(views->durable);
  // A truncated payload fails as the copying decoder does.
  EXPECT_EQ(DecodeCommitRequestViews(payload.substr(0, payload.size() - 1))
                .status()
                .code(),
            StatusCode::kProtocolError);
}

TEST(ProtocolTest, givenCommitBatchVariants_whenRoundTripped_thenEqual) {
  CommitBatch plain;
  plain.puts = {{"k1", "v1"}, {"k2", std::string(1000, 'x')}};
  plain.deletes = {"gone"};
  CommitBatch expecting_value = plain;
  expecting_value.durable = true;
  expecting_value.condition = CommitCondition{"k1", std::string("old")};
  CommitBatch expecting_absent;
  expecting_absent.condition = CommitCondition{"lock", std::nullopt};
  expecting_absent.puts = {{"lock", ""}};

  for (const CommitBatch& m : {plain, expecting_value, expecting_absent}) {
    auto back = DecodeCommitRequest(Encode(m));
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_EQ(back->puts, m.puts);
    EXPECT_EQ(back->deletes, m.deletes);
    EXPECT_EQ(back->durable, m.durable);
    ASSERT_EQ(back->condition.has_value(), m.condition.has_value());
    if (m.condition) {
      EXPECT_EQ(back->condition->key, m.condition->key);
      EXPECT_EQ(back->condition->expected, m.condition->expected);
    }
  }
}

TEST(ProtocolTest, givenStoreStats_whenRoundTripped_thenEqual) {
  StoreStats m{123, 4, 1ULL << 40};
  auto back = DecodeStatResponse(Encode(m));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->used_bytes, m.used_bytes);
  EXPECT_EQ(back->block_count, m.block_count);
  EXPECT_EQ(back->quota_bytes, m.quota_bytes);
}

TEST(ProtocolTest, givenListRequestAndPage_whenRoundTripped_thenEqual) {
  for (const ListRequest& m : {ListRequest{"", 1}, ListRequest{"abc", 500}}) {
    auto back = DecodeListRequest(Encode(m));
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_EQ(*back, m);
  }
  KeyPage page{{"a", "b", "c"}, true};
  auto back = DecodeListResponse(Encode(page));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->keys, page.keys);
  EXPECT_TRUE(back->more);
}

TEST(ProtocolTest, givenPing_whenRoundTripped_thenEqual) {
  PingMessage m{std::string("hello\0world", 11)};
  auto back = DecodePing(Encode(m));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, m);
}

TEST(ProtocolTest, givenVolumeMessages_whenRoundTripped_thenEqual) {
  VolumeRequest req{"data", 1ULL << 30};
  auto req_back = DecodeVolumeRequest(Encode(req));
  ASSERT_TRUE(req_back.ok());
  EXPECT_EQ(*req_back, req);

  VolumeListResponse list{{{"a", 1, 2, 3, true}, {"b", 0, 0, 0, false}}};
  auto list_back = DecodeVolumeListResponse(Encode(list));
  ASSERT_TRUE(list_back.ok()) << list_back.status().ToString();
  EXPECT_EQ(*list_back, list);
}

TEST(ProtocolTest, givenVolumeTraffic_whenRoundTripped_thenEqual) {
  VolumeTraffic traffic{.requests = 1,
                        .get_requests = 2,
                        .commit_requests = 3,
                        .keys_read = 4,
                        .bytes_received = 5,
                        .bytes_sent = 1ull << 40};
  auto back = DecodeVolumeTraffic(Encode(traffic));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, traffic);
  EXPECT_FALSE(DecodeVolumeTraffic(Encode(traffic) + "x").ok());
}

// True if one of the encoding's parts is `value` itself, not a copy.
bool ReferencesValue(const GatheredEncoding& encoding,
                     const std::string& value) {
  return std::any_of(encoding.parts().begin(), encoding.parts().end(),
                     [&](std::string_view part) {
                       return part.data() == value.data() &&
                              part.size() == value.size();
                     });
}

std::string JoinParts(const GatheredEncoding& encoding) {
  std::string joined;
  for (std::string_view part : encoding.parts()) joined.append(part);
  EXPECT_EQ(encoding.size(), joined.size());
  return joined;
}

TEST(ProtocolTest,
     givenGetResponse_whenEncodedInParts_thenPartsJoinToEncoding) {
  GetResponse response{{std::string(70000, 'v'), std::nullopt, "", "short"}};
  const GatheredEncoding encoding(response);

  auto back = DecodeGetResponse(JoinParts(encoding));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, response);
  EXPECT_TRUE(ReferencesValue(encoding, *response.values[0]));
}

TEST(ProtocolTest,
     givenCommitBatch_whenEncodedInParts_thenPartsJoinToEncoding) {
  CommitBatch batch;
  batch.puts = {{"big", std::string(70000, 'v')}, {"empty", ""}, {"s", "x"}};
  batch.deletes = {"gone"};
  batch.condition = CommitCondition{"root", std::string("old")};
  batch.durable = true;
  const GatheredEncoding encoding(batch);

  const std::string joined = JoinParts(encoding);
  auto back = DecodeCommitRequest(joined);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->puts, batch.puts);
  EXPECT_EQ(back->deletes, batch.deletes);
  ASSERT_TRUE(back->condition.has_value());
  EXPECT_EQ(back->condition->key, "root");
  EXPECT_EQ(back->condition->expected, std::optional<std::string>("old"));
  EXPECT_TRUE(back->durable);
  EXPECT_TRUE(ReferencesValue(encoding, batch.puts[0].second));
}

TEST(ProtocolTest, givenOpcodes_whenClassified_thenAdminOnesAreSeparate) {
  EXPECT_TRUE(IsKnownOpcode(static_cast<uint16_t>(Opcode::kReadHeader)));
  EXPECT_TRUE(IsKnownOpcode(static_cast<uint16_t>(Opcode::kAdminList)));
  EXPECT_FALSE(IsKnownOpcode(0));
  EXPECT_FALSE(IsKnownOpcode(9));
  EXPECT_TRUE(IsKnownOpcode(static_cast<uint16_t>(Opcode::kAdminStats)));
  EXPECT_FALSE(IsKnownOpcode(0x106));
  EXPECT_TRUE(IsAdminOpcode(static_cast<uint16_t>(Opcode::kAdminCreate)));
  EXPECT_FALSE(IsAdminOpcode(static_cast<uint16_t>(Opcode::kOpen)));
}

// ---- Malformed frame headers ----

TEST(ProtocolTest, givenWrongMagic_whenDecodingHeader_thenProtocolError) {
  ExpectProtocolError(DecodeFrameHeader(Header(0x12345678, kVersion, 0, 0, 0)),
                      "magic");
}

TEST(ProtocolTest, givenWrongVersion_whenDecodingHeader_thenProtocolError) {
  // Version 1 peers lack the OPEN client id and holder_since.
  ExpectProtocolError(DecodeFrameHeader(Header(kMagic, 1, 0, 0, 0)),
                      "version: unsupported version 1, this build speaks 2");
  ExpectProtocolError(DecodeFrameHeader(Header(kMagic, 3, 0, 0, 0)), "version");
}

TEST(ProtocolTest, givenNonzeroReserved_whenDecodingHeader_thenProtocolError) {
  ExpectProtocolError(DecodeFrameHeader(Header(kMagic, kVersion, 0, 1, 0)),
                      "reserved");
}

TEST(ProtocolTest, givenUnknownStatus_whenDecodingHeader_thenProtocolError) {
  ExpectProtocolError(DecodeFrameHeader(Header(kMagic, kVersion, 999, 0, 0)),
                      "status");
}

TEST(ProtocolTest, givenOversizedPayload_whenDecodingHeader_thenProtocolError) {
  ExpectProtocolError(
      DecodeFrameHeader(Header(kMagic, kVersion, 0, 0, kMaxPayloadSize + 1)),
      "payload_size");
}

TEST(ProtocolTest, givenTruncatedOrLongHeader_whenDecoding_thenProtocolError) {
  const std::string good = Header(kMagic, kVersion, 0, 0, 0);
  ASSERT_TRUE(DecodeFrameHeader(good).ok());
  ExpectProtocolError(DecodeFrameHeader(good.substr(0, 23)), "23 bytes");
  ExpectProtocolError(DecodeFrameHeader(""), "0 bytes");
  ExpectProtocolError(DecodeFrameHeader(good + "x"), "25 bytes");
}

// ---- Malformed payloads ----

TEST(ProtocolTest, givenTruncatedString_whenDecoding_thenProtocolError) {
  ExpectProtocolError(DecodePing(U32(10) + "short"), "payload: truncated");
  ExpectProtocolError(DecodePing(U16(0)), "payload: truncated");
  ExpectProtocolError(DecodeGetRequest(U32(1) + U32(5) + "ab"),
                      "key: truncated");
}

TEST(ProtocolTest, givenCountBeyondRemainingBytes_whenDecoding_thenRejected) {
  ExpectProtocolError(DecodeGetRequest(U32(10) + Str("a")), "cannot fit");
  ExpectProtocolError(DecodeGetResponse(U32(1000) + U8(0)), "cannot fit");
  ExpectProtocolError(DecodeVolumeListResponse(U32(2) + Str("a")),
                      "cannot fit");
}

TEST(ProtocolTest, givenTooManyKeys_whenDecoding_thenRejected) {
  ExpectProtocolError(DecodeGetRequest(U32(kMaxKeysPerRequest + 1)), "exceeds");
  ExpectProtocolError(DecodeListResponse(U8(0) + U32(0xffffffff)), "exceeds");
}

TEST(ProtocolTest, givenPutsPlusDeletesOverLimit_whenDecoding_thenRejected) {
  CommitBatch m;
  const uint32_t half = kMaxKeysPerRequest / 2 + 1;
  for (uint32_t i = 0; i < half; ++i) {
    m.puts.emplace_back("p" + std::to_string(i), "");
    m.deletes.push_back("d" + std::to_string(i));
  }
  ExpectProtocolError(DecodeCommitRequest(Encode(m)), "more than");
}

TEST(ProtocolTest, givenEmptyOrOversizedKey_whenDecoding_thenRejected) {
  ExpectProtocolError(DecodeGetRequest(U32(1) + Str("")), "empty key");
  ExpectProtocolError(
      DecodeGetRequest(U32(1) + Str(std::string(kMaxKeySize + 1, 'k'))),
      "exceeds");
  ExpectProtocolError(
      DecodeListRequest(Str(std::string(kMaxKeySize + 1, 'k')) + U32(1)),
      "start_after");
}

TEST(ProtocolTest, givenEmptyKeyList_whenDecodingGet_thenRejected) {
  ExpectProtocolError(DecodeGetRequest(U32(0)), "at least 1");
}

TEST(ProtocolTest, givenOversizedValue_whenDecoding_thenRejected) {
  const std::string big(kMaxValueSize + 1, 'v');
  ExpectProtocolError(DecodeGetResponse(U32(1) + U8(1) + Str(big)), "value");
  ExpectProtocolError(
      DecodeCommitRequest(U32(0) + U32(1) + Str("k") + Str(big) + U32(0)),
      "put value");
}

TEST(ProtocolTest, givenBadFlagBits_whenDecoding_thenRejected) {
  ExpectProtocolError(
      DecodeOpenRequest(Str("v") + Str(kToken) + U32(2) + kClientIdBytes),
      "flags");
  ExpectProtocolError(DecodeCommitRequest(U32(8) + U32(0) + U32(0)), "flags");
  // "Expects a value" without "has a condition" is meaningless.
  ExpectProtocolError(DecodeCommitRequest(U32(4) + U32(0) + U32(0)),
                      "without a condition");
  ExpectProtocolError(DecodeGetResponse(U32(1) + U8(2)), "present");
  ExpectProtocolError(DecodeListResponse(U8(7) + U32(0)), "more");
}

TEST(ProtocolTest, givenTrailingBytes_whenDecodingAnyMessage_thenRejected) {
  ExpectProtocolError(DecodeOpenResponse(U64(1) + U64(1) + "x"), "trailing");
  ExpectProtocolError(DecodeStatResponse(Encode(StoreStats{}) + "x"),
                      "trailing");
  ExpectProtocolError(DecodePing(Str("hi") + "x"), "trailing");
  ExpectProtocolError(DecodeVolumeRequest(Str("v") + U64(0) + "x"), "trailing");
  ExpectProtocolError(DecodeCommitRequest(U32(0) + U32(0) + U32(0) + "x"),
                      "trailing");
}

TEST(ProtocolTest, givenBadVolumeNames_whenValidated_thenInvalidArgument) {
  const std::string_view bad_names[] = {
      "", ".hidden", "a/b", "a b", "\xc3\xbc", std::string_view("a\0b", 3)};
  for (std::string_view name : bad_names) {
    EXPECT_EQ(ValidateVolumeName(name).code(), StatusCode::kInvalidArgument)
        << name;
  }
  EXPECT_FALSE(
      ValidateVolumeName(std::string(kMaxVolumeNameSize + 1, 'a')).ok());
  EXPECT_TRUE(ValidateVolumeName(std::string(kMaxVolumeNameSize, 'a')).ok());
  EXPECT_TRUE(ValidateVolumeName("Vol_1.2-x").ok());
  ExpectProtocolError(DecodeVolumeRequest(Str("../etc") + U64(0)), "volume");
  ExpectProtocolError(
      DecodeOpenRequest(Str(".x") + Str(kToken) + U32(0) + kClientIdBytes),
      "volume");
}

TEST(ProtocolTest, givenTokenOutsideLimits_whenDecodingOpen_thenRejected) {
  const std::string short_token(kMinTokenSize - 1, 't');
  const std::string long_token(kMaxTokenSize + 1, 't');
  ExpectProtocolError(
      DecodeOpenRequest(Str("v") + Str(short_token) + U32(0) + kClientIdBytes),
      "token");
  ExpectProtocolError(
      DecodeOpenRequest(Str("v") + Str(long_token) + U32(0) + kClientIdBytes),
      "token");
  EXPECT_TRUE(DecodeOpenRequest(Str("v") +
                                Str(std::string(kMinTokenSize, 't')) + U32(0) +
                                kClientIdBytes)
                  .ok());
}

TEST(ProtocolTest, givenBadClientId_whenDecodingOpen_thenRejected) {
  const std::string head = Str("v") + Str(kToken) + U32(0);
  ExpectProtocolError(DecodeOpenRequest(head), "client_id: truncated");
  ExpectProtocolError(DecodeOpenRequest(head + kClientIdBytes.substr(1)),
                      "client_id: truncated");
  ExpectProtocolError(
      DecodeOpenRequest(head + std::string(kClientIdSize, '\0')),
      "client_id: must not be all zero");
  ExpectProtocolError(DecodeOpenRequest(head + kClientIdBytes + "x"),
                      "trailing");
}

TEST(ProtocolTest,
     givenHolderSinceOutsideEpochs_whenDecodingOpen_thenRejected) {
  ExpectProtocolError(DecodeOpenResponse(U64(5)), "holder_since: truncated");
  ExpectProtocolError(DecodeOpenResponse(U64(5) + U64(0)), "holder_since");
  ExpectProtocolError(DecodeOpenResponse(U64(5) + U64(6)), "holder_since");
  EXPECT_TRUE(DecodeOpenResponse(U64(5) + U64(5)).ok());
  EXPECT_TRUE(DecodeOpenResponse(U64(5) + U64(1)).ok());
}

TEST(ProtocolTest, givenDuplicateKeyInCommit_whenDecoding_thenRejected) {
  ExpectProtocolError(DecodeCommitRequest(U32(0) + U32(1) + Str("k") +
                                          Str("v") + U32(1) + Str("k")),
                      "twice");
}

TEST(ProtocolTest, givenListLimitOutOfRange_whenDecoding_thenRejected) {
  ExpectProtocolError(DecodeListRequest(Str("") + U32(0)), "limit");
  ExpectProtocolError(DecodeListRequest(Str("") + U32(kMaxKeysPerRequest + 1)),
                      "limit");
}

TEST(ProtocolTest, givenUnsortedListPage_whenDecoding_thenRejected) {
  ExpectProtocolError(DecodeListResponse(U8(0) + U32(2) + Str("b") + Str("a")),
                      "ascending");
  ExpectProtocolError(DecodeListResponse(U8(0) + U32(2) + Str("a") + Str("a")),
                      "ascending");
}

// ---- Frame I/O over a socketpair ----

class FrameIoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    int fds[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    a_ = std::make_unique<Connection>(fds[0], "a");
    b_ = std::make_unique<Connection>(fds[1], "b");
  }
  std::unique_ptr<Connection> a_, b_;
};

TEST_F(FrameIoTest, givenFrame_whenWrittenAndRead_thenHeaderAndPayloadMatch) {
  std::string payload(3 << 20, '\0');
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>(i);
  FrameHeader h{static_cast<uint16_t>(Opcode::kPing), 42, StatusCode::kOk, 0};
  std::thread writer([&] { ASSERT_TRUE(WriteFrame(*a_, h, payload).ok()); });
  auto frame = ReadFrame(*b_);
  writer.join();
  ASSERT_TRUE(frame.ok()) << frame.status().ToString();
  EXPECT_EQ(frame->header.request_id, 42u);
  EXPECT_EQ(frame->header.payload_size, payload.size());
  EXPECT_EQ(frame->payload.view(), payload);
}

TEST_F(FrameIoTest, givenEmptyPayload_whenRoundTripped_thenEmpty) {
  FrameHeader h{static_cast<uint16_t>(Opcode::kClose), 1, StatusCode::kNotFound,
                99};
  ASSERT_TRUE(WriteFrame(*a_, h, "").ok());
  auto frame = ReadFrame(*b_);
  ASSERT_TRUE(frame.ok());
  EXPECT_EQ(frame->header.payload_size, 0u);
  EXPECT_EQ(frame->header.status, StatusCode::kNotFound);
  EXPECT_EQ(frame->payload.size(), 0u);
}

TEST_F(FrameIoTest, givenGarbageHeader_whenReading_thenProtocolError) {
  ASSERT_TRUE(a_->WriteFull(Header(0xdeadbeef, 1, 0, 0, 0)).ok());
  ExpectProtocolError(ReadFrame(*b_), "magic");
}

TEST_F(FrameIoTest, givenPeerClosedBeforeFrame_whenReading_thenConnClosed) {
  a_.reset();
  auto frame = ReadFrame(*b_);
  ASSERT_FALSE(frame.ok());
  EXPECT_EQ(frame.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(frame.status().message(), "connection closed");
}

TEST_F(FrameIoTest, givenPeerClosedMidPayload_whenReading_thenUnavailable) {
  ASSERT_TRUE(
      a_->WriteFull(Header(kMagic, kVersion, 0, 0, 100), "only-part").ok());
  a_.reset();
  auto frame = ReadFrame(*b_);
  ASSERT_FALSE(frame.ok());
  EXPECT_EQ(frame.status().code(), StatusCode::kUnavailable);
  EXPECT_THAT(frame.status().message(), HasSubstr("payload"));
}

}  // namespace
}  // namespace enclavefs::protocol
