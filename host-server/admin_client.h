// VolumeAdmin: volume management for the enclavefs-host CLI, either through
// a running server's admin socket (AdminClient) or, when no server runs,
// directly on the store (LocalVolumeAdmin). OpenVolumeAdmin picks one.
//
// Ownership: LocalVolumeAdmin owns the opened store; AdminClient owns its
// connection. Thread safety: none; one request at a time.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "blockstore/protocol.h"
#include "blockstore/rocksdb_volumes.h"
#include "blockstore/transport.h"
#include "host-server/volume_manager.h"

namespace enclavefs {

class VolumeAdmin {
 public:
  virtual ~VolumeAdmin() = default;
  // AlreadyExists, InvalidArgument (name, zero quota) on failure.
  virtual Status CreateVolume(const std::string& name,
                              uint64_t quota_bytes) = 0;
  // Sorted by name.
  virtual Result<std::vector<protocol::VolumeEntry>> ListVolumes() = 0;
  // NotFound if absent; Busy while a client holds the volume.
  virtual Status DeleteVolume(const std::string& name) = 0;
  // NotFound if absent; InvalidArgument for a zero quota.
  virtual Status ResizeVolume(const std::string& name,
                              uint64_t quota_bytes) = 0;
};

// Speaks the admin opcodes over a server's admin socket. Transport failures
// come back as Unavailable; server refusals keep the server's code and
// message.
class AdminClient : public VolumeAdmin {
 public:
  // Unavailable if nothing answers at `address` within `timeout`.
  static Result<std::unique_ptr<AdminClient>> Connect(
      const Address& address,
      std::chrono::milliseconds timeout = std::chrono::seconds(2));

  Status CreateVolume(const std::string& name, uint64_t quota_bytes) override;
  Result<std::vector<protocol::VolumeEntry>> ListVolumes() override;
  Status DeleteVolume(const std::string& name) override;
  Status ResizeVolume(const std::string& name, uint64_t quota_bytes) override;
  // The volume's traffic counters, which live only in the server's memory
  // (hence not part of VolumeAdmin). NotFound if the volume does not exist.
  Result<protocol::VolumeTraffic> VolumeStats(const std::string& name);

 private:
  explicit AdminClient(std::unique_ptr<Connection> conn);
  // Sends one request and waits for its reply; returns the reply payload.
  Result<std::string> Call(protocol::Opcode op, std::string_view payload);

  std::unique_ptr<Connection> conn_;
  uint64_t next_request_id_ = 1;
};

// Works on the store directly; nothing is ever held since no server runs.
class LocalVolumeAdmin : public VolumeAdmin {
 public:
  // Fails like RocksDbVolumes::Open (IOError if another process has it).
  static Result<std::unique_ptr<LocalVolumeAdmin>> Open(
      const std::string& store_dir);

  Status CreateVolume(const std::string& name, uint64_t quota_bytes) override;
  Result<std::vector<protocol::VolumeEntry>> ListVolumes() override;
  Status DeleteVolume(const std::string& name) override;
  Status ResizeVolume(const std::string& name, uint64_t quota_bytes) override;

 private:
  explicit LocalVolumeAdmin(std::unique_ptr<RocksDbVolumes> volumes);
  std::unique_ptr<RocksDbVolumes> volumes_;
  VolumeManager manager_;
};

// The admin socket if it accepts a connection, else the store itself. If the
// store is locked by a server whose socket does not answer, fails with
// Unavailable saying so.
Result<std::unique_ptr<VolumeAdmin>> OpenVolumeAdmin(
    const std::string& store_dir, const std::string& admin_socket);

}  // namespace enclavefs
