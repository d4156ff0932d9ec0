// Frame I/O: reading and writing whole protocol frames on a Connection.
//
// Shared by the host server, the RPC client and the admin client so that
// framing rules live in one place. Not thread safe per Connection: callers
// serialize writers (and readers) themselves.
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "blockstore/protocol.h"
#include "blockstore/transport.h"

namespace enclavefs {

struct Frame {
  protocol::FrameHeader header;
  std::string payload;
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
