#include "blockstore/protocol.h"

#include <cstring>
#include <span>

namespace enclavefs::protocol {
namespace {

constexpr uint32_t kOpenFlagTakeover = 1u << 0;
constexpr uint32_t kCommitFlagDurable = 1u << 0;
constexpr uint32_t kCommitFlagHasCondition = 1u << 1;
constexpr uint32_t kCommitFlagExpectsValue = 1u << 2;
constexpr uint32_t kCommitKnownFlags =
    kCommitFlagDurable | kCommitFlagHasCondition | kCommitFlagExpectsValue;

// Smallest encodings, used to reject counts the remaining bytes cannot hold.
constexpr size_t kMinStrSize = 4;                // empty string
constexpr size_t kMinGetEntrySize = 1;           // absent marker
constexpr size_t kMinPutSize = 2 * kMinStrSize;  // key + value
constexpr size_t kMinVolumeEntrySize = kMinStrSize + 3 * 8 + 1;

// Appends little-endian fixed-width integers and length-prefixed strings.
class Writer {
 public:
  void U8(uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void U16(uint16_t v) { Le(v, 2); }
  void U32(uint32_t v) { Le(v, 4); }
  void U64(uint64_t v) { Le(v, 8); }
  void Str(std::string_view s) {
    U32(static_cast<uint32_t>(s.size()));
    Bytes(s);
  }
  void Bytes(std::string_view s) { out_.append(s); }
  size_t size() const { return out_.size(); }
  std::string Take() && { return std::move(out_); }

 private:
  void Le(uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) U8(static_cast<uint8_t>(v >> (8 * i)));
  }
  std::string out_;
};

// Bounds-checked cursor over untrusted bytes. Every failure is a
// ProtocolError naming the field, so a peer's bug report is actionable.
class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}

  Result<uint8_t> U8(std::string_view field) { return Le<uint8_t>(field); }
  Result<uint16_t> U16(std::string_view field) { return Le<uint16_t>(field); }
  Result<uint32_t> U32(std::string_view field) { return Le<uint32_t>(field); }
  Result<uint64_t> U64(std::string_view field) { return Le<uint64_t>(field); }

  Result<bool> Bool(std::string_view field) {
    EFS_ASSIGN_OR_RETURN(uint8_t v, U8(field));
    if (v > 1) return Error(field, "must be 0 or 1");
    return v == 1;
  }

  // A length-prefixed string of at most `max_size` bytes, as a view into
  // the input.
  Result<std::string_view> View(std::string_view field, size_t max_size) {
    EFS_ASSIGN_OR_RETURN(uint32_t size, U32(field));
    if (size > max_size) {
      return Error(field, "length " + std::to_string(size) + " exceeds " +
                              std::to_string(max_size));
    }
    if (size > remaining()) return Error(field, "truncated");
    std::string_view s = in_.substr(pos_, size);
    pos_ += size;
    return s;
  }

  Result<std::string> Str(std::string_view field, size_t max_size) {
    EFS_ASSIGN_OR_RETURN(std::string_view s, View(field, max_size));
    return std::string(s);
  }

  // Exactly `out.size()` raw bytes, no length prefix.
  Status Bytes(std::string_view field, std::span<uint8_t> out) {
    if (out.size() > remaining()) return Error(field, "truncated");
    std::memcpy(out.data(), in_.data() + pos_, out.size());
    pos_ += out.size();
    return Status::Ok();
  }

  Result<std::string_view> KeyView(std::string_view field) {
    EFS_ASSIGN_OR_RETURN(std::string_view key, View(field, kMaxKeySize));
    Status valid = ValidateKey(key);
    if (!valid.ok()) return Error(field, valid.message());
    return key;
  }
  Result<std::string> Key(std::string_view field) {
    EFS_ASSIGN_OR_RETURN(std::string_view key, KeyView(field));
    return std::string(key);
  }

  Result<std::string> Value(std::string_view field) {
    return Str(field, kMaxValueSize);
  }
  Result<std::string_view> ValueView(std::string_view field) {
    return View(field, kMaxValueSize);
  }

  // A list count, checked against kMaxKeysPerRequest and against what the
  // remaining bytes could hold, so callers may reserve() the result.
  Result<uint32_t> Count(std::string_view field, size_t min_item_size) {
    EFS_ASSIGN_OR_RETURN(uint32_t count, U32(field));
    if (count > kMaxKeysPerRequest) {
      return Error(field, std::to_string(count) + " exceeds " +
                              std::to_string(kMaxKeysPerRequest));
    }
    if (count > remaining() / min_item_size) {
      return Error(field, std::to_string(count) +
                              " items cannot fit in the remaining " +
                              std::to_string(remaining()) + " bytes");
    }
    return count;
  }

  Status Finish() const {
    if (remaining() != 0) {
      return Status::ProtocolError(std::to_string(remaining()) +
                                   " trailing bytes after message");
    }
    return Status::Ok();
  }

  static Status Error(std::string_view field, std::string_view what) {
    return Status::ProtocolError(std::string(field) + ": " + std::string(what));
  }

 private:
  size_t remaining() const { return in_.size() - pos_; }

  template <typename T>
  Result<T> Le(std::string_view field) {
    if (remaining() < sizeof(T)) return Error(field, "truncated");
    T v = 0;
    for (size_t i = 0; i < sizeof(T); ++i) {
      v |= static_cast<T>(static_cast<T>(static_cast<uint8_t>(in_[pos_ + i]))
                          << (8 * i));
    }
    pos_ += sizeof(T);
    return v;
  }

  std::string_view in_;
  size_t pos_ = 0;
};

// Runs `decode` on a Reader over `payload`, then insists nothing is left.
template <typename T, typename F>
Result<T> DecodeAll(std::string_view payload, F decode) {
  Reader r(payload);
  Result<T> out = decode(r);
  if (!out.ok()) return out;
  EFS_RETURN_IF_ERROR(r.Finish());
  return out;
}

void WriteKeys(Writer& w, const std::vector<std::string>& keys) {
  w.U32(static_cast<uint32_t>(keys.size()));
  for (const auto& k : keys) w.Str(k);
}

Result<std::vector<std::string_view>> ReadKeyViews(Reader& r,
                                                   std::string_view field,
                                                   uint32_t min_count) {
  EFS_ASSIGN_OR_RETURN(uint32_t count, r.Count(field, kMinStrSize));
  if (count < min_count) {
    return Reader::Error(field, "needs at least " + std::to_string(min_count));
  }
  std::vector<std::string_view> keys;
  keys.reserve(count);
  for (uint32_t i = 0; i < count; ++i) {
    EFS_ASSIGN_OR_RETURN(std::string_view key, r.KeyView("key"));
    keys.push_back(key);
  }
  return keys;
}

Result<std::vector<std::string>> ReadKeys(Reader& r, std::string_view field,
                                          uint32_t min_count) {
  EFS_ASSIGN_OR_RETURN(std::vector<std::string_view> views,
                       ReadKeyViews(r, field, min_count));
  return std::vector<std::string>(views.begin(), views.end());
}

Result<std::string> ReadVolumeName(Reader& r) {
  EFS_ASSIGN_OR_RETURN(std::string name, r.Str("volume", kMaxVolumeNameSize));
  Status valid = ValidateVolumeName(name);
  if (!valid.ok()) return Reader::Error("volume", valid.message());
  return name;
}

bool IsVolumeNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

}  // namespace

bool IsKnownOpcode(uint16_t raw) {
  return (raw >= static_cast<uint16_t>(Opcode::kOpen) &&
          raw <= static_cast<uint16_t>(Opcode::kReadHeader)) ||
         IsAdminOpcode(raw);
}

std::string OpcodeName(uint16_t raw) {
  switch (static_cast<Opcode>(raw)) {
    case Opcode::kOpen:
      return "OPEN";
    case Opcode::kGet:
      return "GET";
    case Opcode::kCommit:
      return "COMMIT";
    case Opcode::kStat:
      return "STAT";
    case Opcode::kList:
      return "LIST";
    case Opcode::kPing:
      return "PING";
    case Opcode::kClose:
      return "CLOSE";
    case Opcode::kReadHeader:
      return "READ_HEADER";
    case Opcode::kAdminCreate:
      return "ADMIN_CREATE";
    case Opcode::kAdminList:
      return "ADMIN_LIST";
    case Opcode::kAdminDelete:
      return "ADMIN_DELETE";
    case Opcode::kAdminResize:
      return "ADMIN_RESIZE";
    case Opcode::kAdminStats:
      return "ADMIN_STATS";
  }
  return "opcode " + std::to_string(raw);
}

bool IsAdminOpcode(uint16_t raw) {
  return raw >= static_cast<uint16_t>(Opcode::kAdminCreate) &&
         raw <= static_cast<uint16_t>(Opcode::kAdminStats);
}

std::array<char, kFrameHeaderSize> EncodeFrameHeader(const FrameHeader& h) {
  Writer w;
  w.U32(kMagic);
  w.U16(kVersion);
  w.U16(h.opcode);
  w.U64(h.request_id);
  w.U16(static_cast<uint16_t>(h.status));
  w.U16(0);  // reserved
  w.U32(h.payload_size);
  std::string bytes = std::move(w).Take();
  std::array<char, kFrameHeaderSize> out;
  std::memcpy(out.data(), bytes.data(), out.size());
  return out;
}

Result<FrameHeader> DecodeFrameHeader(std::string_view bytes) {
  if (bytes.size() != kFrameHeaderSize) {
    return Status::ProtocolError(
        "frame header is " + std::to_string(bytes.size()) +
        " bytes, expected " + std::to_string(kFrameHeaderSize));
  }
  Reader r(bytes);
  FrameHeader h;
  EFS_ASSIGN_OR_RETURN(uint32_t magic, r.U32("magic"));
  if (magic != kMagic) return Reader::Error("magic", "not an EnclaveFS frame");
  EFS_ASSIGN_OR_RETURN(uint16_t version, r.U16("version"));
  if (version != kVersion) {
    return Reader::Error("version",
                         "unsupported version " + std::to_string(version) +
                             ", this build speaks " + std::to_string(kVersion));
  }
  EFS_ASSIGN_OR_RETURN(h.opcode, r.U16("opcode"));
  EFS_ASSIGN_OR_RETURN(h.request_id, r.U64("request_id"));
  EFS_ASSIGN_OR_RETURN(uint16_t status, r.U16("status"));
  if (status > static_cast<uint16_t>(StatusCode::kShuttingDown)) {
    return Reader::Error("status", "unknown code " + std::to_string(status));
  }
  h.status = static_cast<StatusCode>(status);
  EFS_ASSIGN_OR_RETURN(uint16_t reserved, r.U16("reserved"));
  if (reserved != 0) return Reader::Error("reserved", "must be 0");
  EFS_ASSIGN_OR_RETURN(h.payload_size, r.U32("payload_size"));
  if (h.payload_size > kMaxPayloadSize) {
    return Reader::Error("payload_size", std::to_string(h.payload_size) +
                                             " exceeds " +
                                             std::to_string(kMaxPayloadSize));
  }
  return h;
}

Status ValidateVolumeName(std::string_view name) {
  if (name.empty() || name.size() > kMaxVolumeNameSize) {
    return Status::InvalidArgument("volume name must be 1.." +
                                   std::to_string(kMaxVolumeNameSize) +
                                   " characters");
  }
  if (name.front() == '.') {
    return Status::InvalidArgument("volume name must not start with '.'");
  }
  for (char c : name) {
    if (!IsVolumeNameChar(c)) {
      return Status::InvalidArgument(
          "volume name may only contain [A-Za-z0-9._-]");
    }
  }
  return Status::Ok();
}

// ---- Encoders ----

std::string Encode(const OpenRequest& m) {
  Writer w;
  w.Str(m.volume);
  w.Str(m.token);
  w.U32(m.takeover ? kOpenFlagTakeover : 0);
  w.Bytes(std::string_view(reinterpret_cast<const char*>(m.client_id.data()),
                           m.client_id.size()));
  return std::move(w).Take();
}

std::string Encode(const OpenResponse& m) {
  Writer w;
  w.U64(m.epoch);
  w.U64(m.holder_since);
  return std::move(w).Take();
}

std::string Encode(const GetRequest& m) {
  Writer w;
  WriteKeys(w, m.keys);
  return std::move(w).Take();
}

// Writes the framing and notes where each value goes; Finish turns that
// into the parts. The framing is only read once it is complete, since
// appending to it may move it.
class GatheredEncoding::Builder {
 public:
  Writer w;

  void Value(std::string_view value) {
    w.U32(static_cast<uint32_t>(value.size()));
    values_.emplace_back(w.size(), value);
  }

  // A GetResponse: a count, then a presence byte and each present value.
  template <typename Values>
  void GetValues(const Values& values) {
    w.U32(static_cast<uint32_t>(values.size()));
    for (const auto& v : values) {
      w.U8(v ? 1 : 0);
      if (v) Value(*v);
    }
  }

  void Finish(GatheredEncoding& e) && {
    e.framing_ = std::move(w).Take();
    const std::string_view framing = e.framing_;
    e.parts_.reserve(2 * values_.size() + 1);
    size_t pos = 0;
    for (const auto& [cut, value] : values_) {
      e.parts_.push_back(framing.substr(pos, cut - pos));
      e.parts_.push_back(value);
      pos = cut;
    }
    e.parts_.push_back(framing.substr(pos));
    for (std::string_view part : e.parts_) e.size_ += part.size();
  }

 private:
  // Offset in the framing after which a value's bytes follow, and the value.
  std::vector<std::pair<size_t, std::string_view>> values_;
};

GatheredEncoding::GatheredEncoding(const GetResponse& m) {
  Builder b;
  b.GetValues(m.values);
  std::move(b).Finish(*this);
}

GatheredEncoding::GatheredEncoding(
    std::span<const std::optional<std::string_view>> values) {
  Builder b;
  b.GetValues(values);
  std::move(b).Finish(*this);
}

GatheredEncoding::GatheredEncoding(const CommitBatch& m) {
  Builder b;
  uint32_t flags = m.durable ? kCommitFlagDurable : 0;
  if (m.condition) {
    flags |= kCommitFlagHasCondition;
    if (m.condition->expected) flags |= kCommitFlagExpectsValue;
  }
  b.w.U32(flags);
  if (m.condition) {
    b.w.Str(m.condition->key);
    if (m.condition->expected) b.w.Str(*m.condition->expected);
  }
  b.w.U32(static_cast<uint32_t>(m.puts.size()));
  for (const auto& [key, value] : m.puts) {
    b.w.Str(key);
    b.Value(value);
  }
  WriteKeys(b.w, m.deletes);
  std::move(b).Finish(*this);
}

std::string GatheredEncoding::Join() const {
  std::string out;
  out.reserve(size_);
  for (std::string_view part : parts_) out.append(part);
  return out;
}

std::string Encode(const GetResponse& m) { return GatheredEncoding(m).Join(); }

std::string Encode(const CommitBatch& m) { return GatheredEncoding(m).Join(); }

std::string Encode(const StoreStats& m) {
  Writer w;
  w.U64(m.used_bytes);
  w.U64(m.block_count);
  w.U64(m.quota_bytes);
  return std::move(w).Take();
}

std::string Encode(const ListRequest& m) {
  Writer w;
  w.Str(m.start_after);
  w.U32(m.limit);
  return std::move(w).Take();
}

std::string Encode(const KeyPage& m) {
  Writer w;
  w.U8(m.more ? 1 : 0);
  WriteKeys(w, m.keys);
  return std::move(w).Take();
}

std::string Encode(const PingMessage& m) {
  Writer w;
  w.Str(m.payload);
  return std::move(w).Take();
}

std::string Encode(const VolumeRequest& m) {
  Writer w;
  w.Str(m.volume);
  w.U64(m.quota_bytes);
  return std::move(w).Take();
}

std::string Encode(const VolumeListResponse& m) {
  Writer w;
  w.U32(static_cast<uint32_t>(m.volumes.size()));
  for (const auto& v : m.volumes) {
    w.Str(v.name);
    w.U64(v.used_bytes);
    w.U64(v.quota_bytes);
    w.U64(v.block_count);
    w.U8(v.held ? 1 : 0);
  }
  return std::move(w).Take();
}

std::string Encode(const VolumeTraffic& m) {
  Writer w;
  for (uint64_t v : {m.requests, m.get_requests, m.commit_requests, m.keys_read,
                     m.bytes_received, m.bytes_sent}) {
    w.U64(v);
  }
  return std::move(w).Take();
}

// ---- Decoders ----

Result<OpenRequest> DecodeOpenRequest(std::string_view payload) {
  return DecodeAll<OpenRequest>(payload, [](Reader& r) -> Result<OpenRequest> {
    OpenRequest m;
    EFS_ASSIGN_OR_RETURN(m.volume, ReadVolumeName(r));
    EFS_ASSIGN_OR_RETURN(m.token, r.Str("token", kMaxTokenSize));
    if (m.token.size() < kMinTokenSize) {
      return Reader::Error(
          "token", "shorter than " + std::to_string(kMinTokenSize) + " bytes");
    }
    EFS_ASSIGN_OR_RETURN(uint32_t flags, r.U32("flags"));
    if ((flags & ~kOpenFlagTakeover) != 0) {
      return Reader::Error("flags", "unknown bits set");
    }
    m.takeover = (flags & kOpenFlagTakeover) != 0;
    EFS_RETURN_IF_ERROR(r.Bytes("client_id", m.client_id));
    // An all-zero id is what a client that forgot to draw one sends; two
    // such clients would pass for one and defeat the resume check.
    if (m.client_id == ClientId{}) {
      return Reader::Error("client_id", "must not be all zero");
    }
    return m;
  });
}

Result<OpenResponse> DecodeOpenResponse(std::string_view payload) {
  return DecodeAll<OpenResponse>(
      payload, [](Reader& r) -> Result<OpenResponse> {
        OpenResponse m;
        EFS_ASSIGN_OR_RETURN(m.epoch, r.U64("epoch"));
        EFS_ASSIGN_OR_RETURN(m.holder_since, r.U64("holder_since"));
        if (m.holder_since < 1 || m.holder_since > m.epoch) {
          return Reader::Error("holder_since", "must be 1..epoch");
        }
        return m;
      });
}

Result<GetRequest> DecodeGetRequest(std::string_view payload) {
  return DecodeAll<GetRequest>(payload, [](Reader& r) -> Result<GetRequest> {
    GetRequest m;
    EFS_ASSIGN_OR_RETURN(m.keys, ReadKeys(r, "keys", 1));
    return m;
  });
}

Result<GetResponseViews> DecodeGetResponseViews(std::string_view payload) {
  return DecodeAll<GetResponseViews>(
      payload, [](Reader& r) -> Result<GetResponseViews> {
        GetResponseViews values;
        EFS_ASSIGN_OR_RETURN(uint32_t count,
                             r.Count("values", kMinGetEntrySize));
        values.reserve(count);
        for (uint32_t i = 0; i < count; ++i) {
          EFS_ASSIGN_OR_RETURN(bool present, r.Bool("present"));
          if (!present) {
            values.emplace_back(std::nullopt);
            continue;
          }
          EFS_ASSIGN_OR_RETURN(std::string_view value, r.ValueView("value"));
          values.emplace_back(value);
        }
        return values;
      });
}

Result<GetResponse> DecodeGetResponse(std::string_view payload) {
  EFS_ASSIGN_OR_RETURN(GetResponseViews views, DecodeGetResponseViews(payload));
  GetResponse m;
  m.values.reserve(views.size());
  for (const auto& view : views) {
    if (view) {
      m.values.emplace_back(std::in_place, *view);
    } else {
      m.values.emplace_back(std::nullopt);
    }
  }
  return m;
}

Result<CommitBatchView> DecodeCommitRequestViews(std::string_view payload) {
  return DecodeAll<CommitBatchView>(
      payload, [](Reader& r) -> Result<CommitBatchView> {
        CommitBatchView m;
        EFS_ASSIGN_OR_RETURN(uint32_t flags, r.U32("flags"));
        if ((flags & ~kCommitKnownFlags) != 0) {
          return Reader::Error("flags", "unknown bits set");
        }
        const bool has_condition = (flags & kCommitFlagHasCondition) != 0;
        const bool expects_value = (flags & kCommitFlagExpectsValue) != 0;
        if (expects_value && !has_condition) {
          return Reader::Error("flags", "expected value without a condition");
        }
        m.durable = (flags & kCommitFlagDurable) != 0;
        if (has_condition) {
          CommitCondition c;
          EFS_ASSIGN_OR_RETURN(c.key, r.Key("condition key"));
          if (expects_value) {
            EFS_ASSIGN_OR_RETURN(c.expected, r.Value("condition value"));
          }
          m.condition = std::move(c);
        }
        EFS_ASSIGN_OR_RETURN(uint32_t put_count, r.Count("puts", kMinPutSize));
        m.puts.reserve(put_count);
        for (uint32_t i = 0; i < put_count; ++i) {
          EFS_ASSIGN_OR_RETURN(std::string_view key, r.KeyView("put key"));
          EFS_ASSIGN_OR_RETURN(std::string_view value,
                               r.ValueView("put value"));
          m.puts.emplace_back(key, value);
        }
        EFS_ASSIGN_OR_RETURN(m.deletes, ReadKeyViews(r, "deletes", 0));
        if (m.puts.size() + m.deletes.size() > kMaxKeysPerRequest) {
          return Reader::Error(
              "commit",
              "more than " + std::to_string(kMaxKeysPerRequest) + " keys");
        }
        Status valid = ValidateBatch(m);
        if (!valid.ok()) return Reader::Error("commit", valid.message());
        return m;
      });
}

Result<CommitBatch> DecodeCommitRequest(std::string_view payload) {
  EFS_ASSIGN_OR_RETURN(CommitBatchView view, DecodeCommitRequestViews(payload));
  CommitBatch m;
  m.puts.reserve(view.puts.size());
  for (const auto& [key, value] : view.puts) m.puts.emplace_back(key, value);
  m.deletes.assign(view.deletes.begin(), view.deletes.end());
  m.condition = std::move(view.condition);
  m.durable = view.durable;
  return m;
}

Result<StoreStats> DecodeStatResponse(std::string_view payload) {
  return DecodeAll<StoreStats>(payload, [](Reader& r) -> Result<StoreStats> {
    StoreStats m;
    EFS_ASSIGN_OR_RETURN(m.used_bytes, r.U64("used_bytes"));
    EFS_ASSIGN_OR_RETURN(m.block_count, r.U64("block_count"));
    EFS_ASSIGN_OR_RETURN(m.quota_bytes, r.U64("quota_bytes"));
    return m;
  });
}

Result<ListRequest> DecodeListRequest(std::string_view payload) {
  return DecodeAll<ListRequest>(payload, [](Reader& r) -> Result<ListRequest> {
    ListRequest m;
    EFS_ASSIGN_OR_RETURN(m.start_after, r.Str("start_after", kMaxKeySize));
    EFS_ASSIGN_OR_RETURN(m.limit, r.U32("limit"));
    if (m.limit < 1 || m.limit > kMaxKeysPerRequest) {
      return Reader::Error("limit",
                           "must be 1.." + std::to_string(kMaxKeysPerRequest));
    }
    return m;
  });
}

Result<KeyPage> DecodeListResponse(std::string_view payload) {
  return DecodeAll<KeyPage>(payload, [](Reader& r) -> Result<KeyPage> {
    KeyPage m;
    EFS_ASSIGN_OR_RETURN(m.more, r.Bool("more"));
    EFS_ASSIGN_OR_RETURN(m.keys, ReadKeys(r, "keys", 0));
    // Clients page with keys.back(); disorder would loop or skip keys.
    for (size_t i = 1; i < m.keys.size(); ++i) {
      if (!(m.keys[i - 1] < m.keys[i])) {
        return Reader::Error("keys", "not strictly ascending");
      }
    }
    return m;
  });
}

Result<PingMessage> DecodePing(std::string_view payload) {
  return DecodeAll<PingMessage>(payload, [](Reader& r) -> Result<PingMessage> {
    PingMessage m;
    EFS_ASSIGN_OR_RETURN(m.payload, r.Value("payload"));
    return m;
  });
}

Result<VolumeRequest> DecodeVolumeRequest(std::string_view payload) {
  return DecodeAll<VolumeRequest>(
      payload, [](Reader& r) -> Result<VolumeRequest> {
        VolumeRequest m;
        EFS_ASSIGN_OR_RETURN(m.volume, ReadVolumeName(r));
        EFS_ASSIGN_OR_RETURN(m.quota_bytes, r.U64("quota_bytes"));
        return m;
      });
}

Result<VolumeListResponse> DecodeVolumeListResponse(std::string_view payload) {
  return DecodeAll<VolumeListResponse>(
      payload, [](Reader& r) -> Result<VolumeListResponse> {
        VolumeListResponse m;
        EFS_ASSIGN_OR_RETURN(uint32_t count,
                             r.Count("volumes", kMinVolumeEntrySize));
        m.volumes.reserve(count);
        for (uint32_t i = 0; i < count; ++i) {
          VolumeEntry v;
          EFS_ASSIGN_OR_RETURN(v.name, ReadVolumeName(r));
          EFS_ASSIGN_OR_RETURN(v.used_bytes, r.U64("used_bytes"));
          EFS_ASSIGN_OR_RETURN(v.quota_bytes, r.U64("quota_bytes"));
          EFS_ASSIGN_OR_RETURN(v.block_count, r.U64("block_count"));
          EFS_ASSIGN_OR_RETURN(v.held, r.Bool("held"));
          m.volumes.push_back(std::move(v));
        }
        return m;
      });
}

Result<VolumeTraffic> DecodeVolumeTraffic(std::string_view payload) {
  return DecodeAll<VolumeTraffic>(
      payload, [](Reader& r) -> Result<VolumeTraffic> {
        VolumeTraffic m;
        EFS_ASSIGN_OR_RETURN(m.requests, r.U64("requests"));
        EFS_ASSIGN_OR_RETURN(m.get_requests, r.U64("get_requests"));
        EFS_ASSIGN_OR_RETURN(m.commit_requests, r.U64("commit_requests"));
        EFS_ASSIGN_OR_RETURN(m.keys_read, r.U64("keys_read"));
        EFS_ASSIGN_OR_RETURN(m.bytes_received, r.U64("bytes_received"));
        EFS_ASSIGN_OR_RETURN(m.bytes_sent, r.U64("bytes_sent"));
        return m;
      });
}

}  // namespace enclavefs::protocol
