#include "host-server/admin_client.h"

#include <utility>

#include "blockstore/frame_io.h"

namespace enclavefs {

using protocol::Opcode;

Result<std::unique_ptr<AdminClient>> AdminClient::Connect(
    const Address& address, std::chrono::milliseconds timeout) {
  EFS_ASSIGN_OR_RETURN(auto conn, enclavefs::Connect(address, timeout));
  return std::unique_ptr<AdminClient>(new AdminClient(std::move(conn)));
}

AdminClient::AdminClient(std::unique_ptr<Connection> conn)
    : conn_(std::move(conn)) {}

Result<std::string> AdminClient::Call(Opcode op, std::string_view payload) {
  const protocol::FrameHeader request{.opcode = static_cast<uint16_t>(op),
                                      .request_id = next_request_id_++};
  EFS_RETURN_IF_ERROR(WriteFrame(*conn_, request, payload));
  EFS_ASSIGN_OR_RETURN(Frame reply, ReadFrame(*conn_));
  if (reply.header.request_id != request.request_id ||
      reply.header.opcode != request.opcode) {
    return Status::ProtocolError("admin reply does not match the request");
  }
  if (reply.header.status != StatusCode::kOk) {
    return Status(reply.header.status, std::string(reply.payload.view()));
  }
  return std::string(reply.payload.view());
}

Status AdminClient::CreateVolume(const std::string& name,
                                 uint64_t quota_bytes) {
  return Call(Opcode::kAdminCreate,
              protocol::Encode(protocol::VolumeRequest{name, quota_bytes}))
      .status();
}

Result<std::vector<protocol::VolumeEntry>> AdminClient::ListVolumes() {
  EFS_ASSIGN_OR_RETURN(std::string payload, Call(Opcode::kAdminList, ""));
  EFS_ASSIGN_OR_RETURN(auto list, protocol::DecodeVolumeListResponse(payload));
  return std::move(list.volumes);
}

Status AdminClient::DeleteVolume(const std::string& name) {
  return Call(Opcode::kAdminDelete,
              protocol::Encode(protocol::VolumeRequest{name, 0}))
      .status();
}

Status AdminClient::ResizeVolume(const std::string& name,
                                 uint64_t quota_bytes) {
  return Call(Opcode::kAdminResize,
              protocol::Encode(protocol::VolumeRequest{name, quota_bytes}))
      .status();
}

Result<protocol::VolumeTraffic> AdminClient::VolumeStats(
    const std::string& name) {
  EFS_ASSIGN_OR_RETURN(
      std::string payload,
      Call(Opcode::kAdminStats,
           protocol::Encode(protocol::VolumeRequest{name, 0})));
  return protocol::DecodeVolumeTraffic(payload);
}

Result<std::unique_ptr<LocalVolumeAdmin>> LocalVolumeAdmin::Open(
    const std::string& store_dir) {
  EFS_ASSIGN_OR_RETURN(auto volumes, RocksDbVolumes::Open(store_dir));
  return std::unique_ptr<LocalVolumeAdmin>(
      new LocalVolumeAdmin(std::move(volumes)));
}

LocalVolumeAdmin::LocalVolumeAdmin(std::unique_ptr<RocksDbVolumes> volumes)
    : volumes_(std::move(volumes)), manager_(*volumes_) {}

Status LocalVolumeAdmin::CreateVolume(const std::string& name,
                                      uint64_t quota_bytes) {
  return manager_.CreateVolume(name, quota_bytes);
}

Result<std::vector<protocol::VolumeEntry>> LocalVolumeAdmin::ListVolumes() {
  return manager_.ListVolumes();
}

Status LocalVolumeAdmin::DeleteVolume(const std::string& name) {
  return manager_.DeleteVolume(name);
}

Status LocalVolumeAdmin::ResizeVolume(const std::string& name,
                                      uint64_t quota_bytes) {
  return manager_.ResizeVolume(name, quota_bytes);
}

Result<std::unique_ptr<VolumeAdmin>> OpenVolumeAdmin(
    const std::string& store_dir, const std::string& admin_socket) {
  Address address;
  address.path = admin_socket;
  auto remote = AdminClient::Connect(address);
  if (remote.ok()) return std::unique_ptr<VolumeAdmin>(std::move(*remote));
  auto local = LocalVolumeAdmin::Open(store_dir);
  if (local.ok()) return std::unique_ptr<VolumeAdmin>(std::move(*local));
  // RocksDB's lock is the only sign of a live server whose socket is gone.
  if (local.status().message().find("in use") != std::string::npos) {
    return Status::Unavailable(
        "store is in use by a running server, but its "
        "admin socket " +
        admin_socket + " does not answer");
  }
  return local.status();
}

}  // namespace enclavefs
