// Parsing and printing of the sizes and durations both command lines accept
// ("64MiB", "5s"). Pure functions, safe from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "blockstore/status.h"

namespace enclavefs {

// "65536", "64K", "64KiB", "1g": a count of bytes with an optional binary
// unit (K, M, G, T; "iB"/"B" suffix optional, case-insensitive).
// InvalidArgument naming the accepted forms for anything else, for 0, and
// on overflow.
Result<uint64_t> ParseSize(std::string_view text);

// "0", "500ms", "5s", "2m": a duration in ms, s (the default) or m.
// InvalidArgument for anything else.
Result<std::chrono::milliseconds> ParseDuration(std::string_view text);

// 1536 -> "1.5 KiB"; whole values drop the ".0".
std::string HumanSize(uint64_t bytes);

}  // namespace enclavefs
