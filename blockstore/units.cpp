#include "blockstore/units.h"

#include <spdlog/fmt/fmt.h>

#include <array>
#include <cctype>
#include <charconv>
#include <limits>

namespace enclavefs {
namespace {

std::string Lower(std::string_view text) {
  std::string out(text);
  for (char& c : out)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Splits "64KiB" into 64 and "kib". False if there is no leading number.
bool SplitNumber(std::string_view text, uint64_t& number, std::string& unit) {
  const char* end = text.data() + text.size();
  auto [rest, error] = std::from_chars(text.data(), end, number);
  if (error != std::errc() || rest == text.data()) return false;
  unit = Lower(std::string_view(rest, static_cast<size_t>(end - rest)));
  return true;
}

}  // namespace

Result<uint64_t> ParseSize(std::string_view text) {
  const Status bad = Status::InvalidArgument(
      "invalid size '" + std::string(text) +
      "' (expected a positive byte count with an optional K, M, G or T unit, "
      "e.g. 65536, 64KiB, 1G)");
  uint64_t number = 0;
  std::string unit;
  if (!SplitNumber(text, number, unit) || number == 0) return bad;
  if (unit.ends_with("ib")) {
    unit.resize(unit.size() - 2);
    if (unit.empty()) return bad;
  } else if (unit.ends_with('b')) {
    unit.pop_back();
  }
  constexpr std::string_view kUnits = "kmgt";
  unsigned shift = 0;
  if (!unit.empty()) {
    const size_t at = kUnits.find(unit);
    if (unit.size() != 1 || at == std::string_view::npos) return bad;
    shift = 10 * static_cast<unsigned>(at + 1);
  }
  if (number > (std::numeric_limits<uint64_t>::max() >> shift)) return bad;
  return number << shift;
}

Result<std::chrono::milliseconds> ParseDuration(std::string_view text) {
  const Status bad = Status::InvalidArgument(
      "invalid duration '" + std::string(text) +
      "' (expected a number with an optional ms, s or m unit, e.g. 500ms, 5s)");
  uint64_t number = 0;
  std::string unit;
  if (!SplitNumber(text, number, unit)) return bad;
  uint64_t scale = 0;
  if (unit == "ms") {
    scale = 1;
  } else if (unit.empty() || unit == "s") {
    scale = 1000;
  } else if (unit == "m") {
    scale = 60'000;
  } else {
    return bad;
  }
  // Bounded well below overflow of milliseconds' representation.
  if (number > (uint64_t{1} << 40) / scale) return bad;
  return std::chrono::milliseconds(static_cast<int64_t>(number * scale));
}

std::string HumanSize(uint64_t bytes) {
  constexpr std::array<const char*, 5> kNames = {"B", "KiB", "MiB", "GiB",
                                                 "TiB"};
  double value = static_cast<double>(bytes);
  size_t unit = 0;
  while (value >= 1024 && unit + 1 < kNames.size()) {
    value /= 1024;
    ++unit;
  }
  std::string text = fmt::format("{:.1f}", value);
  if (text.ends_with(".0")) text.resize(text.size() - 2);
  return text + " " + kNames[unit];
}

}  // namespace enclavefs
