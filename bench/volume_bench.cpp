// Volume benchmark: builds a volume of 1,000,000 small entries in an
// InMemoryBlockStore, then reports open time and RSS around Open (open reads
// only "header" and "root", so neither should depend on the volume size),
// the cost of a cold and a warm point lookup, and commit cost against the
// number of changed entries. Prints a Markdown table; no arguments needed
// (optional argv[1]: number of entries).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <random>
#include <string>

#include "blockstore/in_memory_block_store.h"
#include "fs/volume.h"
#include "fs/volume_keys.h"

namespace {

using Clock = std::chrono::steady_clock;
using enclavefs::Volume;

double MillisSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start)
      .count();
}

long RssKiB() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  }
  return -1;
}

std::string Key(uint64_t i) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "e%012llu",
                static_cast<unsigned long long>(i));
  return buf;
}

void Check(const enclavefs::Status& s, const char* what) {
  if (!s.ok()) {
    std::fprintf(stderr, "%s: %s\n", what, s.ToString().c_str());
    std::exit(1);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const uint64_t entries =
      argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 1000000;
  enclavefs::FormatParams params;
  params.cost = enclavefs::PwhashCost::ForTests();
  const auto source = enclavefs::KeySource::Passphrase("bench");
  auto created = enclavefs::CreateVolumeHeader(params, source);
  Check(created.status(), "create header");
  auto store = std::make_shared<enclavefs::InMemoryBlockStore>();
  Check(Volume::Format(*store, created->first, *created->second), "format");
  enclavefs::VolumeOptions options;
  options.commit_interval = std::chrono::milliseconds(0);
  // The largest allowed dirty limit, so the timed batches below commit only
  // when asked (each random update dirties about one 16 KiB leaf).
  options.dirty_limit_bytes = 256u << 20;

  auto unlock = [&] {
    auto keys = enclavefs::UnlockVolumeHeader(created->first, source);
    Check(keys.status(), "unlock");
    return std::move(keys).value();
  };
  {
    auto volume = Volume::Open(store, unlock(), options);
    Check(volume.status(), "open");
    const auto start = Clock::now();
    for (uint64_t i = 0; i < entries; ++i) {
      Check((*volume)->Put(Key(i), std::string(32, 'v')), "put");
    }
    Check((*volume)->Commit(true), "commit");
    const double ms = MillisSince(start);
    auto stats = store->Stat();
    std::printf(
        "| build: %llu puts + commits | %.0f ms (%.2f us/put) | %llu blocks, "
        "%.1f MiB |\n",
        static_cast<unsigned long long>(entries), ms, ms * 1000 / entries,
        static_cast<unsigned long long>(stats->block_count),
        stats->used_bytes / 1048576.0);
  }

  const long rss_before = RssKiB();
  auto start = Clock::now();
  auto opened = Volume::Open(store, unlock(), options);
  Check(opened.status(), "open");
  const double open_ms = MillisSince(start);
  const long rss_after = RssKiB();
  Volume& volume = **opened;
  std::printf(
      "| open (incl. key unlock) | %.2f ms | RSS %ld -> %ld KiB (+%ld KiB) |\n",
      open_ms, rss_before, rss_after, rss_after - rss_before);

  start = Clock::now();
  Check(volume.Get(Key(entries / 2)).status(), "cold get");
  std::printf("| first lookup (cold cache) | %.3f ms | |\n",
              MillisSince(start));
  start = Clock::now();
  Check(volume.Get(Key(entries / 2 + 1)).status(), "warm get");
  std::printf("| second lookup (warm path) | %.3f ms | |\n",
              MillisSince(start));

  std::mt19937_64 rng(1);
  for (uint64_t batch : {1, 10, 100, 1000}) {
    for (uint64_t i = 0; i < batch; ++i) {
      Check(volume.Put(Key(rng() % entries), std::string(32, 'w')), "update");
    }
    start = Clock::now();
    Check(volume.Commit(false), "commit");
    const double ms = MillisSince(start);
    std::printf(
        "| commit of %llu random updates | %.2f ms | %.2f us/update |\n",
        static_cast<unsigned long long>(batch), ms, ms * 1000 / batch);
  }
  return 0;
}
