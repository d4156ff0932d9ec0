#include <gtest/gtest.h>

#include <condition_variable>
#include <future>
#include <mutex>
#include <set>
#include <thread>

#include "host-server/block_server.h"
#include "tests/host-server/test_support.h"

namespace enclavefs {
namespace {

using protocol::Opcode;
using testing::RawClient;
using testing::TempDir;

// Holds requests of one opcode on the worker until opened: makes "in
// flight" a deterministic state instead of a race.
class Gate {
 public:
  explicit Gate(Opcode gated) : gated_(gated) {}
  void Pass(Opcode op) {
    if (op != gated_) return;
    std::unique_lock lock(mu_);
    ++waiting_;
    cv_.notify_all();
    cv_.wait(lock, [this] { return open_; });
  }
  void AwaitWaiting(int count) {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return waiting_ >= count; });
  }
  void Open() {
    std::lock_guard lock(mu_);
    open_ = true;
    cv_.notify_all();
  }

 private:
  const Opcode gated_;
  std::mutex mu_;
  std::condition_variable cv_;
  int waiting_ = 0;
  bool open_ = false;
};

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto opened = RocksDbVolumes::Open(dir_.Sub("store"));
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    volumes_ = std::move(*opened);
    ASSERT_TRUE(volumes_->CreateVolume("vol", 1 << 20).ok());
  }
  void TearDown() override {
    if (gate_) gate_->Open();  // never leave a worker parked
    if (server_) server_->Stop();
  }

  void StartServer(std::optional<Opcode> gated = std::nullopt) {
    BlockServerOptions options;
    options.listen = {testing::UnixAddress(dir_.Sub("client.sock"))};
    options.admin = testing::UnixAddress(dir_.Sub("admin.sock"));
    options.worker_threads = 4;
    if (gated) {
      gate_ = std::make_unique<Gate>(*gated);
      options.before_request = [gate = gate_.get()](Opcode op) {
        gate->Pass(op);
      };
    }
    server_ = std::make_unique<BlockServer>(*volumes_, std::move(options));
    Status started = server_->Start();
    ASSERT_TRUE(started.ok()) << started.ToString();
  }

  std::unique_ptr<RawClient> Client() {
    return RawClient::Connect(server_->listen_addresses().at(0));
  }
  std::unique_ptr<RawClient> Admin() {
    return RawClient::Connect(*server_->admin_address());
  }
  // A client holding `volume`.
  std::unique_ptr<RawClient> OpenedClient(const std::string& volume = "vol") {
    auto client = Client();
    if (!client) return nullptr;
    auto reply = client->Open(volume);
    if (!reply.ok() || reply->header.status != StatusCode::kOk) return nullptr;
    return client;
  }
  // Retries OPEN until the previous holder's lease is gone (released
  // asynchronously after its disconnect); the bound only avoids hanging.
  StatusCode OpenWhenReleased(RawClient& client) {
    StatusCode code = StatusCode::kBusy;
    for (int i = 0; i < 500 && code == StatusCode::kBusy; ++i) {
      auto reply = client.Open("vol");
      if (!reply.ok()) return reply.status().code();
      code = reply->header.status;
      if (code == StatusCode::kBusy) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    }
    return code;
  }

  TempDir dir_;
  std::unique_ptr<RocksDbVolumes> volumes_;
  std::unique_ptr<Gate> gate_;
  std::unique_ptr<BlockServer> server_;
};

CommitBatch Puts(std::vector<std::pair<std::string, std::string>> puts) {
  CommitBatch batch;
  batch.puts = std::move(puts);
  return batch;
}

TEST_F(ServerTest,
       givenOpenVolume_whenEveryClientOpcodeIsUsed_thenRoundTripsWork) {
  StartServer();
  auto client = Client();
  ASSERT_TRUE(client);
  auto open = client->Open("vol");
  ASSERT_TRUE(open.ok());
  ASSERT_EQ(open->header.status, StatusCode::kOk) << open->payload.view();
  auto epoch = protocol::DecodeOpenResponse(open->payload.view());
  ASSERT_TRUE(epoch.ok());
  EXPECT_EQ(epoch->epoch, volumes_->GetVolume("vol")->epoch);
  EXPECT_EQ(epoch->holder_since, epoch->epoch);  // first lease of this client

  auto commit = client->Commit(Puts({{"k1", "v1"}, {"k2", "value2"}}));
  ASSERT_TRUE(commit.ok());
  EXPECT_EQ(commit->header.status, StatusCode::kOk) << commit->payload.view();

  auto get = client->Get({"k2", "missing", "k1"});
  ASSERT_TRUE(get.ok());
  auto values = protocol::DecodeGetResponse(get->payload.view());
  ASSERT_TRUE(values.ok());
  EXPECT_EQ(values->values, (GetResult{"value2", std::nullopt, "v1"}));

  auto stat = client->Call(Opcode::kStat);
  ASSERT_TRUE(stat.ok());
  auto stats = protocol::DecodeStatResponse(stat->payload.view());
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->block_count, 2u);
  EXPECT_EQ(stats->used_bytes, std::string("k1v1k2value2").size());
  EXPECT_EQ(stats->quota_bytes, 1u << 20);

  auto list = client->Call(Opcode::kList,
                           protocol::Encode(protocol::ListRequest{"k1", 10}));
  ASSERT_TRUE(list.ok());
  auto page = protocol::DecodeListResponse(list->payload.view());
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->keys, std::vector<std::string>{"k2"});
  EXPECT_FALSE(page->more);

  auto ping = client->Call(Opcode::kPing,
                           protocol::Encode(protocol::PingMessage{"hello"}));
  ASSERT_TRUE(ping.ok());
  EXPECT_EQ(protocol::DecodePing(ping->payload.view())->payload, "hello");

  auto close = client->Call(Opcode::kClose);
  ASSERT_TRUE(close.ok());
  EXPECT_EQ(close->header.status, StatusCode::kOk);
  EXPECT_FALSE(server_->volume_manager().IsHeld("vol"));
  // The connection stays usable after CLOSE.
  EXPECT_EQ(
      client->Call(Opcode::kPing, protocol::Encode(protocol::PingMessage{}))
          ->header.status,
      StatusCode::kOk);
}

TEST_F(
    ServerTest,
    givenHeldVolume_whenSecondConnectionOpens_thenBusyUntilFirstDisconnects) {
  StartServer();
  auto first = OpenedClient();
  ASSERT_TRUE(first);
  auto second = Client();
  auto refused = second->Open("vol");
  ASSERT_TRUE(refused.ok());
  EXPECT_EQ(refused->header.status, StatusCode::kBusy);
  EXPECT_NE(refused->payload.view().find("busy"), std::string::npos);

  first.reset();
  EXPECT_EQ(OpenWhenReleased(*second), StatusCode::kOk);
}

TEST_F(ServerTest, givenHeldVolume_whenTakenOver_thenOldConnectionIsFenced) {
  StartServer();
  auto first = OpenedClient();
  ASSERT_TRUE(first);
  auto second = Client();
  auto taken = second->Open("vol", /*takeover=*/true);
  ASSERT_TRUE(taken.ok());
  EXPECT_EQ(taken->header.status, StatusCode::kOk);

  EXPECT_EQ(first->Commit(Puts({{"stale", "v"}}))->header.status,
            StatusCode::kFenced);
  EXPECT_EQ(first->Get({"stale"})->header.status, StatusCode::kFenced);
  EXPECT_EQ(second->Commit(Puts({{"k", "v"}}))->header.status, StatusCode::kOk);
  EXPECT_EQ(
      protocol::DecodeGetResponse(second->Get({"stale", "k"})->payload.view())
          ->values,
      (GetResult{std::nullopt, "v"}));
  // The stale holder leaving must not drop the new lease.
  first.reset();
  auto third = Client();
  EXPECT_EQ(third->Open("vol")->header.status, StatusCode::kBusy);
}

TEST_F(ServerTest,
       givenWrongToken_whenOpen_thenPermissionDeniedAndConnectionKept) {
  StartServer();
  ASSERT_TRUE(OpenedClient());  // binds the token, then disconnects
  auto client = Client();
  auto reply = client->Call(
      Opcode::kOpen,
      protocol::Encode(protocol::OpenRequest{"vol", "wrong-token-0123456789",
                                             false, testing::kClientId}));
  ASSERT_TRUE(reply.ok());
  EXPECT_EQ(reply->header.status, StatusCode::kPermissionDenied);
  EXPECT_EQ(OpenWhenReleased(*client), StatusCode::kOk);
}

TEST_F(ServerTest, givenSmallQuota_whenCommitExceedsIt_thenQuotaExceededCode) {
  ASSERT_TRUE(volumes_->CreateVolume("tiny", 64).ok());
  StartServer();
  auto client = OpenedClient("tiny");
  ASSERT_TRUE(client);
  auto reply = client->Commit(Puts({{"big", std::string(100, 'x')}}));
  ASSERT_TRUE(reply.ok());
  EXPECT_EQ(reply->header.status, StatusCode::kQuotaExceeded);
  EXPECT_FALSE(reply->payload.view().empty());
  EXPECT_EQ(client->Get({"big"})->header.status, StatusCode::kOk);
}

// ---- Protocol violations: each closes its own connection only. ----

struct Violation {
  std::string name;
  // Sends the bad input on a fresh connection.
  std::function<void(RawClient&)> send;
  bool opened_first;  // the connection holds "vol" before misbehaving
  bool expect_error_reply;
};

class ViolationTest : public ServerTest,
                      public ::testing::WithParamInterface<Violation> {};

TEST_P(ViolationTest, givenBadInput_whenSent_thenOnlyThatConnectionIsClosed) {
  ASSERT_TRUE(volumes_->CreateVolume("other", 1 << 20).ok());
  StartServer();
  auto bystander = OpenedClient("other");
  ASSERT_TRUE(bystander);

  auto bad = GetParam().opened_first ? OpenedClient() : Client();
  ASSERT_TRUE(bad);
  GetParam().send(*bad);
  if (GetParam().expect_error_reply) {
    auto reply = bad->Read();
    ASSERT_TRUE(reply.ok()) << reply.status().ToString();
    EXPECT_EQ(reply->header.status, StatusCode::kProtocolError);
    EXPECT_EQ(reply->header.request_id, 77u);
    EXPECT_FALSE(reply->payload.view().empty());
  }
  EXPECT_TRUE(bad->ClosedByPeer());

  auto commit = bystander->Commit(Puts({{"k", "v"}}));
  ASSERT_TRUE(commit.ok());
  EXPECT_EQ(commit->header.status, StatusCode::kOk);
  // The misbehaving connection's lease is gone with it.
  auto next = Client();
  EXPECT_EQ(OpenWhenReleased(*next), StatusCode::kOk);
}

std::string Header(uint32_t magic, uint16_t opcode, uint32_t payload_size) {
  auto raw = protocol::EncodeFrameHeader(
      {.opcode = opcode, .request_id = 77, .payload_size = payload_size});
  std::string bytes(raw.data(), raw.size());
  for (int i = 0; i < 4; ++i) bytes[i] = static_cast<char>(magic >> (8 * i));
  return bytes;
}

INSTANTIATE_TEST_SUITE_P(
    AllViolations, ViolationTest,
    ::testing::Values(
        Violation{
            "GarbageBytes",
            [](RawClient& c) { (void)c.SendBytes(std::string(64, '\x5a')); },
            false, false},
        Violation{
            "WrongMagic",
            [](RawClient& c) { (void)c.SendBytes(Header(0xdeadbeef, 6, 0)); },
            true, false},
        Violation{"OversizedPayload",
                  [](RawClient& c) {
                    (void)c.SendBytes(Header(protocol::kMagic, 6,
                                             protocol::kMaxPayloadSize + 1));
                  },
                  true, false},
        Violation{"VersionOneFrame",
                  [](RawClient& c) {
                    std::string bytes = Header(protocol::kMagic, 6, 0);
                    bytes[4] = 1;  // version, u16 LE
                    bytes[5] = 0;
                    (void)c.SendBytes(bytes);
                  },
                  true, false},
        Violation{"TruncatedFrame",
                  [](RawClient& c) {
                    (void)c.SendBytes(Header(protocol::kMagic, 6, 100) + "abc");
                    c.HalfClose();
                  },
                  true, false},
        Violation{"UnknownOpcode",
                  [](RawClient& c) { (void)c.SendRawOpcode(0x77, 77, ""); },
                  true, true},
        Violation{"MalformedPayload",
                  [](RawClient& c) {
                    (void)c.Send(Opcode::kGet, 77, "\x01\x02\x03");
                  },
                  true, true},
        Violation{"RequestBeforeOpen",
                  [](RawClient& c) { (void)c.Send(Opcode::kStat, 77, ""); },
                  false, true},
        Violation{"SecondOpen",
                  [](RawClient& c) {
                    (void)c.Send(Opcode::kOpen, 77,
                                 protocol::Encode(protocol::OpenRequest{
                                     "other", std::string(testing::kToken),
                                     false, testing::kClientId}));
                  },
                  true, true},
        Violation{"AdminOpcodeOnClientSocket",
                  [](RawClient& c) {
                    (void)c.Send(
                        Opcode::kAdminDelete, 77,
                        protocol::Encode(protocol::VolumeRequest{"vol"}));
                  },
                  true, true}),
    [](const ::testing::TestParamInfo<Violation>& info) {
      return info.param.name;
    });

TEST_F(
    ServerTest,
    givenMaxRequestsInFlight_whenOneMoreArrives_thenProtocolErrorAndPendingOnesAnswered) {
  StartServer(Opcode::kPing);
  auto client = Client();
  ASSERT_TRUE(client);
  const std::string ping = protocol::Encode(protocol::PingMessage{"p"});
  for (uint64_t id = 1; id <= protocol::kMaxInFlight; ++id) {
    ASSERT_TRUE(client->Send(Opcode::kPing, id, ping).ok());
  }
  ASSERT_TRUE(client->Send(Opcode::kPing, 77, ping).ok());
  auto refused = client->Read();
  ASSERT_TRUE(refused.ok()) << refused.status().ToString();
  EXPECT_EQ(refused->header.request_id, 77u);
  EXPECT_EQ(refused->header.status, StatusCode::kProtocolError);

  gate_->Open();
  std::set<uint64_t> answered;
  for (uint32_t i = 0; i < protocol::kMaxInFlight; ++i) {
    auto reply = client->Read();
    ASSERT_TRUE(reply.ok()) << reply.status().ToString();
    EXPECT_EQ(reply->header.status, StatusCode::kOk);
    answered.insert(reply->header.request_id);
  }
  EXPECT_EQ(answered.size(), protocol::kMaxInFlight);
  EXPECT_TRUE(client->ClosedByPeer());
}

TEST_F(
    ServerTest,
    givenSlowFirstRequest_whenPipelined_thenLaterReplyOvertakesWithMatchingIds) {
  StartServer(Opcode::kStat);
  auto client = OpenedClient();
  ASSERT_TRUE(client);
  ASSERT_TRUE(client->Send(Opcode::kStat, 100, "").ok());
  gate_->AwaitWaiting(1);
  ASSERT_TRUE(client
                  ->Send(Opcode::kPing, 101,
                         protocol::Encode(protocol::PingMessage{"fast"}))
                  .ok());
  auto first = client->Read();
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->header.request_id, 101u);
  EXPECT_EQ(protocol::DecodePing(first->payload.view())->payload, "fast");

  gate_->Open();
  auto second = client->Read();
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->header.request_id, 100u);
  EXPECT_EQ(second->header.opcode, static_cast<uint16_t>(Opcode::kStat));
  EXPECT_TRUE(protocol::DecodeStatResponse(second->payload.view()).ok());
}

TEST_F(ServerTest,
       givenManyPipelinedGets_whenAnswered_thenEachIdGetsItsOwnValue) {
  StartServer();
  auto client = OpenedClient();
  ASSERT_TRUE(client);
  constexpr int kKeys = 40;
  CommitBatch batch;
  for (int i = 0; i < kKeys; ++i) {
    batch.puts.emplace_back("key" + std::to_string(i),
                            "value" + std::to_string(i));
  }
  ASSERT_EQ(client->Commit(batch)->header.status, StatusCode::kOk);
  for (int i = 0; i < kKeys; ++i) {
    ASSERT_TRUE(client
                    ->Send(Opcode::kGet, 1000 + i,
                           protocol::Encode(protocol::GetRequest{
                               {"key" + std::to_string(i)}}))
                    .ok());
  }
  std::set<uint64_t> seen;
  for (int i = 0; i < kKeys; ++i) {
    auto reply = client->Read();
    ASSERT_TRUE(reply.ok());
    const uint64_t n = reply->header.request_id - 1000;
    auto values = protocol::DecodeGetResponse(reply->payload.view());
    ASSERT_TRUE(values.ok());
    EXPECT_EQ(values->values, (GetResult{"value" + std::to_string(n)}));
    seen.insert(n);
  }
  EXPECT_EQ(seen.size(), static_cast<size_t>(kKeys));
}

TEST_F(
    ServerTest,
    givenSeveralClientsOnSeveralVolumes_whenCommittingAtOnce_thenAllDataLands) {
  constexpr int kClients = 4;
  constexpr int kCommits = 25;
  for (int c = 0; c < kClients; ++c) {
    ASSERT_TRUE(volumes_->CreateVolume("v" + std::to_string(c), 1 << 20).ok());
  }
  StartServer();
  std::vector<std::future<int>> workers;
  for (int c = 0; c < kClients; ++c) {
    workers.push_back(std::async(std::launch::async, [this, c] {
      auto client = OpenedClient("v" + std::to_string(c));
      if (!client) return -1;
      int ok = 0;
      for (int i = 0; i < kCommits; ++i) {
        auto reply = client->Commit(
            Puts({{"k" + std::to_string(i), std::to_string(c * 1000 + i)}}));
        ok += reply.ok() && reply->header.status == StatusCode::kOk;
      }
      return ok;
    }));
  }
  for (auto& worker : workers) EXPECT_EQ(worker.get(), kCommits);
  for (int c = 0; c < kClients; ++c) {
    auto store = volumes_->OpenVolume("v" + std::to_string(c));
    ASSERT_TRUE(store.ok());
    EXPECT_EQ((*store)->Stat()->block_count, static_cast<uint64_t>(kCommits));
    EXPECT_EQ((*store)->GetOne("k7").value(), std::to_string(c * 1000 + 7));
  }
}

TEST_F(
    ServerTest,
    givenCommitInFlight_whenClientDisconnects_thenLeaseOutlivesItAndOutcomeIsVisible) {
  StartServer(Opcode::kCommit);
  auto first = OpenedClient();
  ASSERT_TRUE(first);
  ASSERT_TRUE(first
                  ->Send(Opcode::kCommit, 5,
                         protocol::Encode(Puts({{"inflight", "done"}})))
                  .ok());
  gate_->AwaitWaiting(1);
  first.reset();

  auto second = Client();
  auto busy = second->Open("vol");
  ASSERT_TRUE(busy.ok());
  EXPECT_EQ(busy->header.status, StatusCode::kBusy);

  gate_->Open();
  ASSERT_EQ(OpenWhenReleased(*second), StatusCode::kOk);
  auto values =
      protocol::DecodeGetResponse(second->Get({"inflight"})->payload.view());
  ASSERT_TRUE(values.ok());
  EXPECT_EQ(values->values, (GetResult{"done"}));
}

TEST_F(ServerTest,
       givenCommitInFlight_whenServerStops_thenCommitIsAnsweredFirst) {
  StartServer(Opcode::kCommit);
  auto client = OpenedClient();
  ASSERT_TRUE(client);
  ASSERT_TRUE(
      client
          ->Send(Opcode::kCommit, 9, protocol::Encode(Puts({{"late", "yes"}})))
          .ok());
  gate_->AwaitWaiting(1);
  std::thread stopper([this] { server_->Stop(); });
  gate_->Open();
  auto reply = client->Read();
  stopper.join();
  ASSERT_TRUE(reply.ok()) << reply.status().ToString();
  EXPECT_EQ(reply->header.request_id, 9u);
  EXPECT_EQ(reply->header.status, StatusCode::kOk);
  EXPECT_TRUE(client->ClosedByPeer());
  EXPECT_EQ((*volumes_->OpenVolume("vol"))->GetOne("late").value(), "yes");
}

TEST_F(ServerTest, givenNoOpen_whenReadHeader_thenHeaderValueOrNotFound) {
  StartServer();
  auto reader = Client();
  auto read_header = [&](const std::string& volume) {
    return reader->Call(Opcode::kReadHeader,
                        protocol::Encode(protocol::VolumeRequest{volume}));
  };
  auto absent = read_header("vol");
  ASSERT_TRUE(absent.ok());
  ASSERT_EQ(absent->header.status, StatusCode::kOk);
  EXPECT_EQ(protocol::DecodeGetResponse(absent->payload.view())->values,
            (GetResult{std::nullopt}));

  auto writer = OpenedClient();
  ASSERT_TRUE(writer);
  const std::string key(protocol::kPublicHeaderKey);
  ASSERT_EQ(writer->Commit(Puts({{key, "sealed-header"}}))->header.status,
            StatusCode::kOk);
  auto present = read_header("vol");
  ASSERT_TRUE(present.ok());
  EXPECT_EQ(protocol::DecodeGetResponse(present->payload.view())->values,
            (GetResult{"sealed-header"}));

  EXPECT_EQ(read_header("missing")->header.status, StatusCode::kNotFound);
  // Still no lease on the reader's connection.
  EXPECT_EQ(reader->Open("vol")->header.status, StatusCode::kBusy);
}

TEST_F(
    ServerTest,
    givenAdminSocket_whenManagingVolumes_thenChangesApplyAndHeldDeleteIsRefused) {
  StartServer();
  auto admin = Admin();
  ASSERT_TRUE(admin);
  auto call = [&](Opcode op, const std::string& volume, uint64_t quota) {
    return admin->Call(
        op, protocol::Encode(protocol::VolumeRequest{volume, quota}));
  };
  EXPECT_EQ(call(Opcode::kAdminCreate, "fresh", 4096)->header.status,
            StatusCode::kOk);
  EXPECT_EQ(call(Opcode::kAdminCreate, "fresh", 4096)->header.status,
            StatusCode::kAlreadyExists);
  EXPECT_EQ(call(Opcode::kAdminResize, "fresh", 8192)->header.status,
            StatusCode::kOk);
  EXPECT_EQ(volumes_->GetVolume("fresh")->quota_bytes, 8192u);

  auto holder = OpenedClient();
  ASSERT_TRUE(holder);
  auto listed = admin->Call(Opcode::kAdminList);
  ASSERT_TRUE(listed.ok());
  auto list = protocol::DecodeVolumeListResponse(listed->payload.view());
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->volumes.size(), 2u);
  EXPECT_EQ(list->volumes[0].name, "fresh");
  EXPECT_FALSE(list->volumes[0].held);
  EXPECT_EQ(list->volumes[1].name, "vol");
  EXPECT_TRUE(list->volumes[1].held);

  auto refused = call(Opcode::kAdminDelete, "vol", 0);
  EXPECT_EQ(refused->header.status, StatusCode::kBusy);
  EXPECT_NE(refused->payload.view().find("held"), std::string::npos);
  EXPECT_EQ(call(Opcode::kAdminResize, "vol", 2 << 20)->header.status,
            StatusCode::kOk);
  EXPECT_EQ(call(Opcode::kAdminDelete, "fresh", 0)->header.status,
            StatusCode::kOk);
  EXPECT_EQ(call(Opcode::kAdminDelete, "fresh", 0)->header.status,
            StatusCode::kNotFound);
}

TEST_F(ServerTest,
       givenAdminSocket_whenClientOpcodeSent_thenProtocolErrorAndClosed) {
  StartServer();
  auto admin = Admin();
  ASSERT_TRUE(admin);
  EXPECT_EQ(
      admin->Call(Opcode::kPing, protocol::Encode(protocol::PingMessage{}))
          ->header.status,
      StatusCode::kOk);
  auto refused = admin->Open("vol");
  ASSERT_TRUE(refused.ok());
  EXPECT_EQ(refused->header.status, StatusCode::kProtocolError);
  EXPECT_TRUE(admin->ClosedByPeer());
  EXPECT_FALSE(server_->volume_manager().IsHeld("vol"));
}

TEST_F(ServerTest, givenAddressInUse_whenStart_thenErrorNamesTheAddress) {
  StartServer();
  BlockServerOptions options;
  options.listen = {server_->listen_addresses().at(0)};
  BlockServer clash(*volumes_, options);
  Status status = clash.Start();
  EXPECT_FALSE(status.ok());
  EXPECT_NE(status.message().find("client.sock"), std::string::npos);
}

TEST_F(ServerTest, givenTcpPortZero_whenStarted_thenBoundPortIsReported) {
  BlockServerOptions options;
  options.listen = {*ParseAddress("tcp:127.0.0.1:0")};
  server_ = std::make_unique<BlockServer>(*volumes_, options);
  ASSERT_TRUE(server_->Start().ok());
  const Address bound = server_->listen_addresses().at(0);
  EXPECT_NE(bound.port, 0u);
  auto client = RawClient::Connect(bound);
  ASSERT_TRUE(client);
  EXPECT_EQ(client->Open("vol")->header.status, StatusCode::kOk);
}

}  // namespace
}  // namespace enclavefs
