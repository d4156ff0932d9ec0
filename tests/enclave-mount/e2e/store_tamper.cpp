// store_tamper: test-only tool playing a malicious host. It opens an
// enclavefs-host RocksDB store offline (the host must be stopped), finds the
// sealed data blocks of one volume and flips one byte of one of them.
//
//   store_tamper --store DIR --volume NAME [--index N]
//
// A data block is recognised by its sealed layout (docs/format.md): byte 0
// is the magic/version 0xE1, byte 1 the kind (4 = data block), and every
// data block has the same size, the largest of the volume's classes. N
// (default 0) picks among them in key order. Prints the chosen key in hex
// and exits 0; 1 if nothing matched or the store failed.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "blockstore/rocksdb_volumes.h"

namespace enclavefs {
namespace {

constexpr unsigned char kSealedMagic = 0xE1;
constexpr unsigned char kDataKind = 4;

int Fail(const std::string& message) {
  std::fprintf(stderr, "store_tamper: %s\n", message.c_str());
  return 1;
}

std::string Hex(const std::string& bytes) {
  std::string out;
  char buf[3];
  for (unsigned char c : bytes) {
    std::snprintf(buf, sizeof(buf), "%02x", c);
    out += buf;
  }
  return out;
}

bool IsSealedData(const std::string& value) {
  return value.size() > 2 &&
         static_cast<unsigned char>(value[0]) == kSealedMagic &&
         static_cast<unsigned char>(value[1]) == kDataKind;
}

int Tamper(const std::string& dir, const std::string& volume, size_t index) {
  auto volumes = RocksDbVolumes::Open(dir);
  if (!volumes.ok()) return Fail(volumes.status().ToString());
  auto store = (*volumes)->OpenVolume(volume);
  if (!store.ok()) return Fail(store.status().ToString());

  // Data blocks: (key, size); values are read page by page.
  std::vector<std::pair<std::string, size_t>> data;
  size_t largest = 0;
  std::string after;
  while (true) {
    auto page = (*store)->ListKeys(after, 256);
    if (!page.ok()) return Fail(page.status().ToString());
    if (page->keys.empty()) break;
    auto values = (*store)->Get(page->keys);
    if (!values.ok()) return Fail(values.status().ToString());
    for (size_t i = 0; i < page->keys.size(); ++i) {
      const auto& value = (*values)[i];
      if (!value) continue;
      if (!IsSealedData(*value)) continue;
      largest = std::max(largest, value->size());
      data.emplace_back(page->keys[i], value->size());
    }
    if (!page->more) break;
    after = page->keys.back();
  }
  // Every data block has the same sealed size; anything else is not one.
  std::erase_if(data, [&](const auto& d) { return d.second != largest; });
  if (index >= data.size()) {
    return Fail("volume has " + std::to_string(data.size()) +
                " data blocks of the largest size; index " +
                std::to_string(index) + " is out of range");
  }
  const std::string& key = data[index].first;
  auto value = (*store)->GetOne(key);
  if (!value.ok()) return Fail(value.status().ToString());
  // A ciphertext byte in the middle: authentication must catch it.
  (*value)[value->size() / 2] ^= 0x01;
  CommitBatch batch;
  batch.puts.emplace_back(key, std::move(value).value());
  batch.durable = true;
  if (Status s = (*store)->Commit(batch); !s.ok()) return Fail(s.ToString());
  std::printf("tampered data block %s (%zu bytes)\n", Hex(key).c_str(),
              data[index].second);
  return 0;
}

}  // namespace
}  // namespace enclavefs

int main(int argc, char** argv) {
  CLI::App app{"flip one byte of one sealed data block in a host store"};
  std::string store;
  std::string volume;
  size_t index = 0;
  app.add_option("--store", store, "enclavefs-host store directory")
      ->required();
  app.add_option("--volume", volume, "volume name")->required();
  app.add_option("--index", index, "which data block, in key order");
  CLI11_PARSE(app, argc, argv);
  return enclavefs::Tamper(store, volume, index);
}
