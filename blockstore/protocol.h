// The enclavefs-host wire protocol, version 2: frame and message codecs.
//
// docs/protocol.md is the normative description; this header is its code.
// Every frame is a fixed 24-byte header followed by `payload_size` bytes.
// Requests and responses share the header; a response echoes the request's
// id and opcode and carries a StatusCode. A non-OK response's payload is a
// UTF-8 error message. Integers are little-endian.
//
// Decoders take bytes from an untrusted peer: they never read out of bounds,
// never allocate more than the input could describe, and fail with
// ProtocolError (naming the broken rule) on any malformed input, including
// trailing bytes. They are pure functions, safe from any thread.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "blockstore/block_store.h"
#include "blockstore/status.h"

namespace enclavefs::protocol {

inline constexpr uint32_t kMagic = 0x31534645;  // bytes "EFS1"
inline constexpr uint16_t kVersion = 2;
inline constexpr size_t kFrameHeaderSize = 24;
// Hard limits. A frame or request over a limit is a protocol error.
inline constexpr uint32_t kMaxPayloadSize = 64u << 20;  // 64 MiB
inline constexpr uint32_t kMaxKeysPerRequest = 65536;
inline constexpr uint32_t kMaxInFlight = 64;  // per connection
inline constexpr size_t kMaxVolumeNameSize = 64;
inline constexpr size_t kMaxTokenSize = 256;
inline constexpr size_t kMinTokenSize = 16;
inline constexpr size_t kClientIdSize = 16;

enum class Opcode : uint16_t {
  kOpen = 1,
  kGet = 2,
  kCommit = 3,
  kStat = 4,
  kList = 5,
  kPing = 6,
  kClose = 7,
  // Reads kPublicHeaderKey of a volume without a lease or token: the
  // enclave needs the (sealed) volume header to derive its access token.
  kReadHeader = 8,
  // Admin opcodes: accepted only on the host's local admin socket.
  kAdminCreate = 0x101,
  kAdminList = 0x102,
  kAdminDelete = 0x103,
  kAdminResize = 0x104,
  // Traffic counters of one volume since the server started.
  kAdminStats = 0x105,
};

// The one key of every volume that kReadHeader may read without a token.
inline constexpr std::string_view kPublicHeaderKey = "header";

bool IsKnownOpcode(uint16_t raw);
// "GET", "COMMIT", ... for logs; "opcode N" for an unknown one.
std::string OpcodeName(uint16_t raw);
bool IsAdminOpcode(uint16_t raw);

struct FrameHeader {
  uint16_t opcode = 0;  // raw, so an unknown opcode can still be answered
  uint64_t request_id = 0;
  StatusCode status = StatusCode::kOk;  // responses only; 0 in requests
  uint32_t payload_size = 0;
};

std::array<char, kFrameHeaderSize> EncodeFrameHeader(const FrameHeader& h);
// `bytes` must be exactly kFrameHeaderSize long. Checks magic, version,
// status (a known StatusCode), reserved bytes and payload_size <=
// kMaxPayloadSize; ProtocolError naming the field otherwise. Does not judge
// the opcode: callers answer unknown opcodes by request id.
Result<FrameHeader> DecodeFrameHeader(std::string_view bytes);

// Volume names: 1..kMaxVolumeNameSize of [A-Za-z0-9._-], not starting with
// '.'. Returns InvalidArgument otherwise.
Status ValidateVolumeName(std::string_view name);

// ---- Messages. Encode never fails; Decode validates everything. ----

// Drawn at random once per client (RemoteBlockStore) and sent in every OPEN,
// so the host can tell a client which leases it granted to that client.
using ClientId = std::array<uint8_t, kClientIdSize>;

struct OpenRequest {
  std::string volume;
  std::string token;  // kMinTokenSize..kMaxTokenSize bytes
  bool takeover = false;
  ClientId client_id{};  // must not be all zero (an id nobody drew)
  bool operator==(const OpenRequest&) const = default;
};
struct OpenResponse {
  uint64_t epoch = 0;  // fencing epoch of the lease just granted
  // The first epoch of the unbroken run of leases granted to this client id
  // that ends with `epoch` (1 <= holder_since <= epoch): every epoch in
  // holder_since..epoch went to this client. docs/protocol.md, "Resuming".
  uint64_t holder_since = 0;
  bool operator==(const OpenResponse&) const = default;
};

struct GetRequest {
  std::vector<std::string> keys;  // 1..kMaxKeysPerRequest
  bool operator==(const GetRequest&) const = default;
};
struct GetResponse {
  GetResult values;
  bool operator==(const GetResponse&) const = default;
};

struct ListRequest {
  std::string start_after;
  uint32_t limit = 0;  // 1..kMaxKeysPerRequest
  bool operator==(const ListRequest&) const = default;
};

struct PingMessage {
  std::string payload;
  bool operator==(const PingMessage&) const = default;
};

// Admin create, delete and resize; kReadHeader (quota ignored: 0). A
// kReadHeader response is a GetResponse with one value.
struct VolumeRequest {
  std::string volume;
  uint64_t quota_bytes = 0;  // ignored by delete
  bool operator==(const VolumeRequest&) const = default;
};

struct VolumeEntry {
  std::string name;
  uint64_t used_bytes = 0;
  uint64_t quota_bytes = 0;
  uint64_t block_count = 0;
  bool held = false;
  bool operator==(const VolumeEntry&) const = default;
};
struct VolumeListResponse {
  std::vector<VolumeEntry> volumes;
  bool operator==(const VolumeListResponse&) const = default;
};

// Cumulative wire traffic of one volume since the server started (admin
// ADMIN_STATS reply). Bytes include frame headers.
struct VolumeTraffic {
  uint64_t requests = 0;         // all requests on the volume's sessions
  uint64_t get_requests = 0;     // GET
  uint64_t commit_requests = 0;  // COMMIT
  uint64_t keys_read = 0;        // keys asked for by GET and READ_HEADER
  uint64_t bytes_received = 0;   // request frames
  uint64_t bytes_sent = 0;       // response frames
  bool operator==(const VolumeTraffic&) const = default;
};

std::string Encode(const OpenRequest& m);
std::string Encode(const OpenResponse& m);
std::string Encode(const GetRequest& m);
std::string Encode(const GetResponse& m);
std::string Encode(const CommitBatch& m);
std::string Encode(const StoreStats& m);
std::string Encode(const ListRequest& m);
std::string Encode(const KeyPage& m);
std::string Encode(const PingMessage& m);
std::string Encode(const VolumeRequest& m);
std::string Encode(const VolumeListResponse& m);
std::string Encode(const VolumeTraffic& m);

// Encode(GetResponse) and Encode(CommitBatch) without copying the values,
// for gathered writes: the encoding is the concatenation of parts(), which
// point into the message and into this object. So neither may change, move
// or die while the parts are in use.
class GatheredEncoding {
 public:
  explicit GatheredEncoding(const GetResponse& m);
  // The encoding of a GetResponse holding these values.
  explicit GatheredEncoding(
      std::span<const std::optional<std::string_view>> values);
  explicit GatheredEncoding(const CommitBatch& m);
  GatheredEncoding(const GatheredEncoding&) = delete;
  GatheredEncoding& operator=(const GatheredEncoding&) = delete;

  const std::vector<std::string_view>& parts() const { return parts_; }
  size_t size() const { return size_; }  // total bytes of the parts
  std::string Join() const;

 private:
  class Builder;
  std::string framing_;  // everything but the values
  std::vector<std::string_view> parts_;
  size_t size_ = 0;
};

Result<OpenRequest> DecodeOpenRequest(std::string_view payload);
Result<OpenResponse> DecodeOpenResponse(std::string_view payload);
Result<GetRequest> DecodeGetRequest(std::string_view payload);
Result<GetResponse> DecodeGetResponse(std::string_view payload);
// The same values as views into `payload`, without copying them.
using GetResponseViews = std::vector<std::optional<std::string_view>>;
Result<GetResponseViews> DecodeGetResponseViews(std::string_view payload);
Result<CommitBatch> DecodeCommitRequest(std::string_view payload);
// The same batch with its keys and values as views into `payload`.
Result<CommitBatchView> DecodeCommitRequestViews(std::string_view payload);
Result<StoreStats> DecodeStatResponse(std::string_view payload);
Result<ListRequest> DecodeListRequest(std::string_view payload);
Result<KeyPage> DecodeListResponse(std::string_view payload);
Result<PingMessage> DecodePing(std::string_view payload);
Result<VolumeRequest> DecodeVolumeRequest(std::string_view payload);
Result<VolumeListResponse> DecodeVolumeListResponse(std::string_view payload);
Result<VolumeTraffic> DecodeVolumeTraffic(std::string_view payload);

}  // namespace enclavefs::protocol
