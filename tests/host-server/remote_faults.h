// Fault injection for RemoteBlockStore tests: a frame proxy that can cut
// connections at chosen points, and a gate that holds requests of one opcode
// on the host.
//
// Ownership: FrameProxy owns its listener, links and pump threads and joins
// them in its destructor. Thread safety: all methods may be called from any
// thread.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "blockstore/frame_io.h"
#include "blockstore/protocol.h"
#include "blockstore/transport.h"

namespace enclavefs::remote_test {

// Bounds waits for events that must happen, so a bug fails instead of hangs.
constexpr auto kHangGuard = std::chrono::seconds(30);

// Forwards whole frames between clients and the host, and can drop the
// connection at chosen points: everything at once, around one COMMIT, or
// after the host answered one OPEN.
class FrameProxy {
 public:
  enum class Fault {
    kNone,
    kDropCommitRequest,
    kDropCommitReply,
    kDropOpenReply,  // the host granted the lease; the client never learns
  };

  FrameProxy(Address listen, Address upstream)
      : upstream_(std::move(upstream)) {
    auto listener = Listen(listen);
    EXPECT_TRUE(listener.ok()) << listener.status().ToString();
    if (!listener.ok()) return;
    listener_ = std::move(listener).value();
    acceptor_ = std::thread([this] { AcceptLoop(); });
  }
  ~FrameProxy() {
    if (listener_) listener_->Close();
    if (acceptor_.joinable()) acceptor_.join();
    DropAll();
    for (auto& link : links_) {
      for (auto& pump : link->pumps) pump.join();
    }
  }

  Address address() const { return listener_->address(); }
  // The next frame matching `fault` is not forwarded; its link is cut.
  void Arm(Fault fault) { fault_ = fault; }
  int faults_fired() const { return fired_; }

  void DropAll() {
    std::lock_guard lock(mu_);
    for (auto& link : links_) link->Cut();
  }

 private:
  struct Link {
    std::unique_ptr<Connection> client;
    std::unique_ptr<Connection> host;
    std::vector<std::thread> pumps;
    void Cut() {
      client->Shutdown();
      host->Shutdown();
    }
  };

  void AcceptLoop() {
    while (true) {
      auto client = listener_->Accept();
      if (!client.ok()) return;
      auto host = Connect(upstream_);
      if (!host.ok()) continue;  // the client sees its connection close
      auto link = std::make_unique<Link>();
      link->client = std::move(client).value();
      link->host = std::move(host).value();
      Link* raw = link.get();
      std::lock_guard lock(mu_);
      raw->pumps.emplace_back([this, raw] {
        Pump(*raw, *raw->client, *raw->host, /*to_host=*/true);
      });
      raw->pumps.emplace_back([this, raw] {
        Pump(*raw, *raw->host, *raw->client, /*to_host=*/false);
      });
      links_.push_back(std::move(link));
    }
  }

  // Whether `fault` is about a frame with `opcode` going this way.
  static bool Matches(Fault fault, uint16_t opcode, bool to_host) {
    const auto is = [&](protocol::Opcode op) {
      return opcode == static_cast<uint16_t>(op);
    };
    switch (fault) {
      case Fault::kDropCommitRequest:
        return to_host && is(protocol::Opcode::kCommit);
      case Fault::kDropCommitReply:
        return !to_host && is(protocol::Opcode::kCommit);
      case Fault::kDropOpenReply:
        return !to_host && is(protocol::Opcode::kOpen);
      case Fault::kNone:
        break;
    }
    return false;
  }

  void Pump(Link& link, Connection& from, Connection& to, bool to_host) {
    while (true) {
      auto frame = ReadFrame(from);
      if (!frame.ok()) break;
      Fault armed = fault_;
      if (Matches(armed, frame->header.opcode, to_host) &&
          fault_.compare_exchange_strong(armed, Fault::kNone)) {
        ++fired_;
        break;
      }
      if (!WriteFrame(to, frame->header, frame->payload.view()).ok()) break;
    }
    link.Cut();
  }

  Address upstream_;
  std::unique_ptr<Listener> listener_;
  std::thread acceptor_;
  std::atomic<Fault> fault_{Fault::kNone};
  std::atomic<int> fired_{0};
  std::mutex mu_;
  std::vector<std::unique_ptr<Link>> links_;  // GUARDED_BY(mu_)
};

// Holds requests of one opcode on the server (in its before_request hook)
// while armed.
class RequestGate {
 public:
  void Arm(protocol::Opcode op) {
    std::lock_guard lock(mu_);
    armed_ = op;
  }
  void Release() {
    std::lock_guard lock(mu_);
    armed_.reset();
    cv_.notify_all();
  }
  // Waits until `count` requests in total have been held. If that does not
  // happen within a generous bound (a hang guard, not a timing), releases
  // the gate so the failing test can unwind, and returns false.
  [[nodiscard]] bool WaitForHeld(int count) {
    std::unique_lock lock(mu_);
    if (cv_.wait_for(lock, kHangGuard, [&] { return held_ >= count; })) {
      return true;
    }
    armed_.reset();
    cv_.notify_all();
    return false;
  }
  int held() {
    std::lock_guard lock(mu_);
    return held_;
  }
  void OnRequest(protocol::Opcode op) {
    std::unique_lock lock(mu_);
    if (armed_ != op) return;
    ++held_;
    cv_.notify_all();
    cv_.wait(lock, [this] { return !armed_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::optional<protocol::Opcode> armed_;  // GUARDED_BY(mu_)
  int held_ = 0;                           // GUARDED_BY(mu_)
};

}  // namespace enclavefs::remote_test
