#include "blockstore/frame_io.h"

#include <memory>
#include <vector>

namespace enclavefs {

Payload Payload::Uninitialized(size_t size) {
  Payload payload;
  if (size == 0) return payload;
  payload.buffer_ = std::make_shared_for_overwrite<char[]>(size);
  payload.size_ = size;
  return payload;
}

Result<Frame> ReadFrame(Connection& conn) {
  std::array<char, protocol::kFrameHeaderSize> raw;
  EFS_RETURN_IF_ERROR(conn.ReadFull(raw.data(), raw.size()));
  Frame frame;
  EFS_ASSIGN_OR_RETURN(
      frame.header,
      protocol::DecodeFrameHeader(std::string_view(raw.data(), raw.size())));
  // No pass zeroing the buffer first; and as a fresh allocation is
  // committed page by page while bytes arrive, a peer that announces a
  // 64 MiB payload and then stalls does not pin 64 MiB per socket.
  frame.payload = Payload::Uninitialized(frame.header.payload_size);
  Status read = conn.ReadFull(frame.payload.data(), frame.payload.size());
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
