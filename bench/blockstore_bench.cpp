// Block store throughput: puts (durable and not) and gets of 4 KiB, 64 KiB
// and 1 MiB values, for RocksDbBlockStore in process and for
// RemoteBlockStore through an in-process BlockServer on a unix socket. Both
// backends share one RocksDB store (one volume each) and run the same
// workload: 4 threads on one store object, one value per commit or get.
// BM_FrameCeiling measures what the socket and framing alone allow for gets.
// docs/performance.md records the results and the command line.
#include <benchmark/benchmark.h>
#include <spdlog/spdlog.h>
#include <stdlib.h>
#include <sys/socket.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>

#include "blockstore/frame_io.h"
#include "blockstore/remote_block_store.h"
#include "blockstore/rocksdb_volumes.h"
#include "blockstore/rpc_client.h"
#include "host-server/block_server.h"

namespace enclavefs {
namespace {

enum class Backend { kInProcess, kRemote };

constexpr uint64_t kQuota = 1ull << 40;
constexpr int kGetKeysPerSize = 32;

[[noreturn]] void Die(const Status& status) {
  spdlog::critical("benchmark setup failed: {}", status.ToString());
  std::abort();
}

// The store, the server and both client stores, built once per process and
// torn down (temp dir removed) at exit.
class Backends {
 public:
  static Backends& Get() {
    static Backends instance;
    return instance;
  }

  BlockStore& store(Backend backend) {
    if (backend == Backend::kInProcess) return *local_;
    return *remote_;
  }

  // Writes kGetKeysPerSize values of `size` bytes once per backend and size.
  void EnsureGetKeys(Backend backend, size_t size) {
    std::lock_guard lock(mu_);
    if (!populated_.insert({backend, size}).second) return;
    for (int i = 0; i < kGetKeysPerSize; ++i) {
      CommitBatch batch;
      batch.puts.emplace_back(GetKey(size, i), std::string(size, 'g'));
      Status committed = store(backend).Commit(batch);
      if (!committed.ok()) Die(committed);
    }
  }

  static std::string GetKey(size_t size, int i) {
    return "get-" + std::to_string(size) + "-" + std::to_string(i);
  }

 private:
  Backends() {
    spdlog::set_level(spdlog::level::warn);
    std::string pattern = "/tmp/efs-bench-XXXXXX";
    if (mkdtemp(pattern.data()) == nullptr) {
      Die(Status::IOError("mkdtemp failed"));
    }
    dir_ = pattern;
    auto volumes = RocksDbVolumes::Open(dir_ + "/store");
    if (!volumes.ok()) Die(volumes.status());
    volumes_ = std::move(volumes).value();
    for (const char* name : {"local", "remote"}) {
      Status created = volumes_->CreateVolume(name, kQuota);
      if (!created.ok()) Die(created);
    }
    auto local = volumes_->OpenVolume("local");
    if (!local.ok()) Die(local.status());
    local_ = std::move(local).value();

    BlockServerOptions options;
    Address address;
    address.path = dir_ + "/host.sock";
    options.listen = {address};
    server_ = std::make_unique<BlockServer>(*volumes_, std::move(options));
    Status started = server_->Start();
    if (!started.ok()) Die(started);
    RemoteOptions remote;
    remote.address = server_->listen_addresses().front();
    remote.volume = "remote";
    remote.token = "bench-token-0123456789";
    auto opened = RemoteBlockStore::Open(remote);
    if (!opened.ok()) Die(opened.status());
    remote_ = std::move(opened).value();
  }
  ~Backends() {
    remote_.reset();
    server_.reset();
    local_.reset();
    volumes_.reset();
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  std::string dir_;
  std::unique_ptr<RocksDbVolumes> volumes_;
  std::unique_ptr<RocksDbBlockStore> local_;
  std::unique_ptr<BlockServer> server_;
  std::unique_ptr<RemoteBlockStore> remote_;
  std::mutex mu_;
  std::set<std::pair<Backend, size_t>> populated_;  // GUARDED_BY(mu_)
};

// Each iteration commits one fresh key of state.range(0) bytes.
template <Backend kBackend, bool kDurable>
void BM_Put(benchmark::State& state) {
  const size_t size = static_cast<size_t>(state.range(0));
  BlockStore& store = Backends::Get().store(kBackend);
  const std::string prefix = "put-" + std::to_string(size) + "-" +
                             std::to_string(kDurable) + "-t" +
                             std::to_string(state.thread_index()) + "-";
  CommitBatch batch;
  batch.durable = kDurable;
  batch.puts.emplace_back("", std::string(size, 'p'));
  uint64_t n = 0;
  for (auto _ : state) {
    batch.puts[0].first = prefix + std::to_string(n++);
    Status committed = store.Commit(batch);
    if (!committed.ok()) {
      state.SkipWithError(committed.ToString().c_str());
      break;
    }
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * size));
}

// Each iteration reads one of kGetKeysPerSize values of state.range(0) bytes.
template <Backend kBackend>
void BM_Get(benchmark::State& state) {
  const size_t size = static_cast<size_t>(state.range(0));
  Backends& backends = Backends::Get();
  backends.EnsureGetKeys(kBackend, size);
  BlockStore& store = backends.store(kBackend);
  std::string key[1];
  int i = state.thread_index();
  for (auto _ : state) {
    key[0] = Backends::GetKey(size, i++ % kGetKeysPerSize);
    auto values = store.Get(key);
    if (!values.ok() || !values->front() || values->front()->size() != size) {
      state.SkipWithError("get returned a wrong value");
      break;
    }
    benchmark::DoNotOptimize(values);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * size));
}

// The ceiling for remote gets: RpcClient calls over a unix socketpair to a
// responder thread that answers every request at once with a prebuilt GET
// response of one value. Same framing, same client threads and pipelining,
// no RocksDB, no server worker pool, no decoding of the request or reply.
class FrameCeiling {
 public:
  // One responder per value size, built on first use, torn down at exit.
  static FrameCeiling& ForSize(size_t size) {
    static std::mutex mu;
    static std::map<size_t, std::unique_ptr<FrameCeiling>> by_size;
    std::lock_guard lock(mu);
    auto& ceiling = by_size[size];
    if (!ceiling) ceiling.reset(new FrameCeiling(size));
    return *ceiling;
  }
  ~FrameCeiling() {
    client_.reset();  // closes its end; the responder sees EOF
    responder_.join();
  }

  RpcClient& client() { return *client_; }

 private:
  explicit FrameCeiling(size_t size)
      : reply_(
            protocol::Encode(protocol::GetResponse{{std::string(size, 'g')}})) {
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
      Die(Status::IOError("socketpair failed"));
    }
    server_end_ = std::make_unique<Connection>(fds[1], "responder");
    client_ = std::make_unique<RpcClient>(
        std::make_unique<Connection>(fds[0], "client"));
    responder_ = std::thread([this] { Respond(); });
  }
  void Respond() {
    while (true) {
      Result<Frame> request = ReadFrame(*server_end_);
      if (!request.ok()) return;
      if (!WriteFrame(*server_end_, request->header, reply_).ok()) return;
    }
  }

  const std::string reply_;
  std::unique_ptr<Connection> server_end_;
  std::unique_ptr<RpcClient> client_;
  std::thread responder_;
};

// Each iteration is one GET round trip of one state.range(0)-byte value.
void BM_FrameCeiling(benchmark::State& state) {
  const size_t size = static_cast<size_t>(state.range(0));
  RpcClient& client = FrameCeiling::ForSize(size).client();
  const std::string request = protocol::Encode(
      protocol::GetRequest{{Backends::GetKey(size, state.thread_index())}});
  for (auto _ : state) {
    Result<Payload> reply = client.Call(protocol::Opcode::kGet, request);
    if (!reply.ok() || reply->size() < size) {
      state.SkipWithError("ceiling responder failed");
      break;
    }
    benchmark::DoNotOptimize(reply);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * size));
}

void Sizes(benchmark::internal::Benchmark* b) {
  b->Arg(4 << 10)->Arg(64 << 10)->Arg(1 << 20);
  b->Threads(4)->UseRealTime()->MinTime(0.5);
}

BENCHMARK_TEMPLATE(BM_Put, Backend::kInProcess, false)->Apply(Sizes);
BENCHMARK_TEMPLATE(BM_Put, Backend::kRemote, false)->Apply(Sizes);
BENCHMARK_TEMPLATE(BM_Put, Backend::kInProcess, true)->Apply(Sizes);
BENCHMARK_TEMPLATE(BM_Put, Backend::kRemote, true)->Apply(Sizes);
BENCHMARK_TEMPLATE(BM_Get, Backend::kInProcess)->Apply(Sizes);
BENCHMARK_TEMPLATE(BM_Get, Backend::kRemote)->Apply(Sizes);
BENCHMARK(BM_FrameCeiling)->Apply(Sizes);

}  // namespace
}  // namespace enclavefs

BENCHMARK_MAIN();
