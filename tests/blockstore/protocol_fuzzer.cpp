// libFuzzer target for the wire codecs. The first input byte picks a decoder;
// the rest is the untrusted input. Besides the sanitizers catching memory
// errors, it checks the round-trip property: anything a decoder accepts must
// re-encode to exactly the same bytes (the encoding is canonical), and
// decoding those again must give the same encoding.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "blockstore/protocol.h"

namespace enclavefs::protocol {
namespace {

template <typename Decode>
void CheckRoundTrip(std::string_view input, Decode decode) {
  auto first = decode(input);
  if (!first.ok()) return;
  const std::string encoded = Encode(*first);
  if (encoded != input) std::abort();
  auto second = decode(encoded);
  if (!second.ok() || Encode(*second) != encoded) std::abort();
}

void CheckHeader(std::string_view input) {
  auto first = DecodeFrameHeader(input);
  if (!first.ok()) return;
  const auto raw = EncodeFrameHeader(*first);
  if (std::string_view(raw.data(), raw.size()) != input) std::abort();
}

}  // namespace
}  // namespace enclavefs::protocol

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace enclavefs::protocol;
  if (size == 0) return 0;
  const std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 12) {
    case 0:
      CheckHeader(in);
      break;
    case 1:
      CheckRoundTrip(in, DecodeOpenRequest);
      break;
    case 2:
      CheckRoundTrip(in, DecodeOpenResponse);
      break;
    case 3:
      CheckRoundTrip(in, DecodeGetRequest);
      break;
    case 4:
      CheckRoundTrip(in, DecodeGetResponse);
      break;
    case 5:
      CheckRoundTrip(in, DecodeCommitRequest);
      break;
    case 6:
      CheckRoundTrip(in, DecodeStatResponse);
      break;
    case 7:
      CheckRoundTrip(in, DecodeListRequest);
      break;
    case 8:
      CheckRoundTrip(in, DecodeListResponse);
      break;
    case 9:
      CheckRoundTrip(in, DecodePing);
      break;
    case 10:
      CheckRoundTrip(in, DecodeVolumeRequest);
      break;
    case 11:
      CheckRoundTrip(in, DecodeVolumeListResponse);
      break;
  }
  return 0;
}
