// Test support for RemoteBlockStore tests: a temp dir, and an in-process
// BlockServer over a unix socket on a RocksDB store in that dir.
//
// Ownership: InProcessHost owns its store, server and temp dir; the
// destructor stops the server and removes the dir. Not thread safe.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>

#include "blockstore/remote_block_store.h"
#include "blockstore/rocksdb_volumes.h"
#include "host-server/block_server.h"

namespace enclavefs::remote_test {

inline constexpr char kTestToken[] = "test-token-0123456789";

class TempDir {
 public:
  TempDir() {
    std::string pattern = "/tmp/efs-remote-XXXXXX";
    if (mkdtemp(pattern.data()) == nullptr) ADD_FAILURE() << "mkdtemp failed";
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

class InProcessHost {
 public:
  // Opens a store under a fresh temp dir and serves it on
  // unix:<dir>/host.sock. Check ok() before use.
  explicit InProcessHost(BlockServerOptions options = {}) {
    auto volumes = RocksDbVolumes::Open(dir_.path() + "/store");
    if (!volumes.ok()) {
      start_status_ = volumes.status();
      return;
    }
    volumes_ = std::move(volumes).value();
    Address address;
    address.kind = Address::Kind::kUnix;
    address.path = dir_.path() + "/host.sock";
    options.listen = {address};
    server_ = std::make_unique<BlockServer>(*volumes_, std::move(options));
    start_status_ = server_->Start();
  }
  ~InProcessHost() {
    server_.reset();
    volumes_.reset();
  }

  const Status& start_status() const { return start_status_; }
  Address address() const { return server_->listen_addresses().front(); }
  const std::string& dir() const { return dir_.path(); }
  RocksDbVolumes& volumes() { return *volumes_; }
  BlockServer& server() { return *server_; }
  void Stop() { server_->Stop(); }

  // Options for a client of `volume` with short, test-friendly backoff.
  RemoteOptions ClientOptions(const std::string& volume) const {
    RemoteOptions options;
    options.address = address();
    options.volume = volume;
    options.token = kTestToken;
    options.reconnect_deadline = std::chrono::seconds(10);
    options.initial_backoff = std::chrono::milliseconds(5);
    options.max_backoff = std::chrono::milliseconds(100);
    return options;
  }

 private:
  TempDir dir_;
  std::unique_ptr<RocksDbVolumes> volumes_;
  std::unique_ptr<BlockServer> server_;
  Status start_status_;
};

}  // namespace enclavefs::remote_test
