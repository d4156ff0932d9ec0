#include "blockstore/frame_io.h"

#include <algorithm>
#include <vector>

namespace enclavefs {
namespace {

// The payload's address space is reserved up front, so growing it never
// copies what has arrived (an 8 MiB upload batch used to be copied 7 MiB
// worth while doubling). Memory is touched only a chunk ahead of the bytes
// actually received, so a peer that announces a 64 MiB payload and then
// stalls cannot pin 64 MiB per socket.
constexpr size_t kChunk = 1 << 20;

Status ReadPayload(Connection& conn, size_t size, std::string& out) {
  out.reserve(size);
  size_t done = 0;
  while (done < size) {
    const size_t target = std::min(size, done + kChunk);
    out.resize(target);
    EFS_RETURN_IF_ERROR(conn.ReadFull(out.data() + done, target - done));
    done = target;
  }
  return Status::Ok();
}

}  // namespace

Result<Frame> ReadFrame(Connection& conn) {
  std::array<char, protocol::kFrameHeaderSize> raw;
  EFS_RETURN_IF_ERROR(conn.ReadFull(raw.data(), raw.size()));
  Frame frame;
  EFS_ASSIGN_OR_RETURN(
      frame.header,
      protocol::DecodeFrameHeader(std::string_view(raw.data(), raw.size())));
  Status read = ReadPayload(conn, frame.header.payload_size, frame.payload);
  if (!read.ok()) return read.WithContext("reading frame payload");
  return frame;
}

Status WriteFrame(Connection& conn, protocol::FrameHeader header,
                  std::string_view payload) {
  return WriteFrame(conn, header, std::span(&payload, 1));
}

Status WriteFrame(Connection& conn, protocol::FrameHeader header,
                  std::span<const std::string_view> payload_parts) {
  size_t size = 0;
  for (std::string_view part : payload_parts) size += part.size();
  if (size > protocol::kMaxPayloadSize) {
    return Status::ResourceExhausted("payload of " + std::to_string(size) +
                                     " bytes exceeds the frame limit of " +
                                     std::to_string(protocol::kMaxPayloadSize));
  }
  header.payload_size = static_cast<uint32_t>(size);
  const auto raw = protocol::EncodeFrameHeader(header);
  std::vector<std::string_view> parts;
  parts.reserve(payload_parts.size() + 1);
  parts.emplace_back(raw.data(), raw.size());
  parts.insert(parts.end(), payload_parts.begin(), payload_parts.end());
  return conn.WriteGathered(parts);
}

}  // namespace enclavefs
