#include "blockstore/rpc_client.h"

#include <spdlog/spdlog.h>

#include <optional>
#include <utility>

#include "blockstore/frame_io.h"
#include "blockstore/logging.h"

namespace enclavefs {

RpcClient::RpcClient(std::unique_ptr<Connection> conn,
                     std::chrono::milliseconds stall_warning)
    : conn_(std::move(conn)), stall_warning_(stall_warning), reader_([this] {
        NameThisThread("efs-rpc-reader");
        ReadLoop();
      }) {}

RpcClient::~RpcClient() {
  Break(Status::Unavailable("client closed"));
  reader_.join();
}

bool RpcClient::broken() const {
  std::lock_guard lock(mu_);
  return broken_;
}

void RpcClient::Shutdown() { Break(Status::Unavailable("shut down")); }

Result<Payload> RpcClient::Call(protocol::Opcode op, std::string_view payload) {
  std::future<Result<Payload>> reply = CallAsync(op, payload);
  return Await(reply, op);
}

Result<Payload> RpcClient::Call(protocol::Opcode op,
                                std::span<const std::string_view> parts) {
  std::future<Result<Payload>> reply = CallAsync(op, parts);
  return Await(reply, op);
}

Result<Payload> RpcClient::Await(std::future<Result<Payload>>& reply,
                                 protocol::Opcode op) const {
  std::chrono::milliseconds waited{0};
  while (reply.wait_for(stall_warning_) != std::future_status::ready) {
    waited += stall_warning_;
    spdlog::warn(
        "no reply from the host at {} to a {} request for {} s; "
        "still waiting",
        peer(), protocol::OpcodeName(static_cast<uint16_t>(op)),
        std::chrono::duration<double>(waited).count());
  }
  return reply.get();
}

std::future<Result<Payload>> RpcClient::CallAsync(protocol::Opcode op,
                                                  std::string_view payload) {
  return CallAsync(op, std::span(&payload, 1));
}

std::future<Result<Payload>> RpcClient::CallAsync(
    protocol::Opcode op, std::span<const std::string_view> parts) {
  protocol::FrameHeader header;
  header.opcode = static_cast<uint16_t>(op);
  std::future<Result<Payload>> future;
  {
    std::unique_lock lock(mu_);
    slot_freed_.wait(lock, [this] {
      return broken_ || pending_.size() < protocol::kMaxInFlight;
    });
    if (broken_) {
      std::promise<Result<Payload>> failed;
      failed.set_value(broken_reason_);
      return failed.get_future();
    }
    header.request_id = next_id_++;
    // Registered before the write so that even an instant response finds it.
    Pending& pending = pending_[header.request_id];
    pending.opcode = header.opcode;
    future = pending.promise.get_future();
  }
  Status written;
  {
    std::lock_guard lock(write_mu_);
    written = WriteFrame(*conn_, header, parts);
  }
  if (!written.ok()) Break(written);
  return future;
}

void RpcClient::ReadLoop() {
  while (true) {
    Result<Frame> frame = ReadFrame(*conn_);
    if (!frame.ok()) {
      Break(frame.status());
      return;
    }
    const protocol::FrameHeader& header = frame->header;
    std::optional<std::promise<Result<Payload>>> promise;
    {
      std::lock_guard lock(mu_);
      auto it = pending_.find(header.request_id);
      if (it != pending_.end() && it->second.opcode == header.opcode) {
        promise = std::move(it->second.promise);
        pending_.erase(it);
      }
    }
    if (!promise) {
      // Matching by id is all the pipelining rests on; a peer that gets it
      // wrong cannot be trusted with the other pending calls either.
      Break(Status::ProtocolError("response for unknown request id " +
                                  std::to_string(header.request_id)));
      return;
    }
    slot_freed_.notify_one();
    if (header.status == StatusCode::kOk) {
      promise->set_value(std::move(frame->payload));
    } else {
      promise->set_value(
          Status(header.status, std::string(frame->payload.view())));
    }
  }
}

void RpcClient::Break(const Status& reason) {
  std::unordered_map<uint64_t, Pending> failed;
  Status status;
  {
    std::lock_guard lock(mu_);
    if (broken_) return;
    broken_ = true;
    broken_reason_ = Status::Unavailable("connection to " + conn_->peer() +
                                         " lost: " + reason.ToString());
    status = broken_reason_;
    failed.swap(pending_);
  }
  spdlog::debug("rpc: {}", status.message());
  conn_->Shutdown();
  slot_freed_.notify_all();
  for (auto& [id, pending] : failed) pending.promise.set_value(status);
}

}  // namespace enclavefs
