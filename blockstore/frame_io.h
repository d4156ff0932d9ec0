// Frame I/O: reading and writing whole protocol frames on a Connection.
//
// Shared by the host server, the RPC client and the admin client so that
// framing rules live in one place. Not thread safe per Connection: callers
// serialize writers (and readers) themselves.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "blockstore/protocol.h"
#include "blockstore/transport.h"

namespace enclavefs {

// A frame's payload. The bytes are received straight into it, without
// zeroing the buffer first, and the buffer is shared, so views into it (the
// values of a Get reply) may outlive the Payload. Copying a Payload shares
// the buffer; writing through data() is seen by all copies.
class Payload {
 public:
  Payload() = default;
  // `size` bytes of unspecified content, for the caller to fill.
  static Payload Uninitialized(size_t size);

  char* data() { return buffer_.get(); }
  size_t size() const { return size_; }
  std::string_view view() const { return {buffer_.get(), size_}; }
  // Keeps the bytes alive, for views that outlive this Payload.
  const std::shared_ptr<char[]>& buffer() const { return buffer_; }

 private:
  std::shared_ptr<char[]> buffer_;
  size_t size_ = 0;
};

struct Frame {
  protocol::FrameHeader header;
  Payload payload;
};

// Reads one frame. Unavailable if the connection fails or closes (a clean
// close before any byte of the frame says "connection closed");
// ProtocolError if the header is malformed (the payload is not read then).
Result<Frame> ReadFrame(Connection& conn);

// Writes header (with payload_size set from `payload`) and payload in one
// WriteFull. ResourceExhausted (nothing written) if the payload exceeds
// protocol::kMaxPayloadSize; Unavailable if the connection fails.
Status WriteFrame(Connection& conn, protocol::FrameHeader header,
                  std::string_view payload);
// The same for a payload that is the concatenation of `payload_parts`,
// written with one gathered send loop instead of being joined first.
Status WriteFrame(Connection& conn, protocol::FrameHeader header,
                  std::span<const std::string_view> payload_parts);

}  // namespace enclavefs
