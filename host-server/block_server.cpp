#include "host-server/block_server.h"

#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <span>
#include <string>
#include <utility>
#include <variant>

#include "blockstore/frame_io.h"
#include "blockstore/logging.h"

namespace enclavefs {

namespace {

using protocol::Opcode;

// A peer that stops reading must not pin a worker forever.
constexpr int kSendTimeoutSeconds = 30;

using RequestBody =
    std::variant<std::monostate, protocol::OpenRequest, protocol::GetRequest,
                 CommitBatchView, protocol::ListRequest, protocol::PingMessage,
                 protocol::VolumeRequest>;

template <typename T>
Result<RequestBody> Lift(Result<T> decoded) {
  if (!decoded.ok()) return decoded.status();
  return RequestBody(std::move(decoded).value());
}

Result<RequestBody> DecodeBody(Opcode op, std::string_view payload) {
  switch (op) {
    case Opcode::kOpen:
      return Lift(protocol::DecodeOpenRequest(payload));
    case Opcode::kGet:
      return Lift(protocol::DecodeGetRequest(payload));
    case Opcode::kCommit:
      return Lift(protocol::DecodeCommitRequestViews(payload));
    case Opcode::kList:
      return Lift(protocol::DecodeListRequest(payload));
    case Opcode::kPing:
      return Lift(protocol::DecodePing(payload));
    case Opcode::kReadHeader:
    case Opcode::kAdminCreate:
    case Opcode::kAdminDelete:
    case Opcode::kAdminResize:
    case Opcode::kAdminStats:
      return Lift(protocol::DecodeVolumeRequest(payload));
    case Opcode::kStat:
    case Opcode::kClose:
    case Opcode::kAdminList:
      break;
  }
  if (!payload.empty()) {
    return Status::ProtocolError("this request takes no payload");
  }
  return RequestBody();
}

// How many keys a request asks for, for the traffic counters.
uint64_t KeysRead(const RequestBody& body) {
  const auto* get = std::get_if<protocol::GetRequest>(&body);
  return get ? get->keys.size() : 0;
}

bool NeedsLease(Opcode op) {
  return op == Opcode::kGet || op == Opcode::kCommit || op == Opcode::kStat ||
         op == Opcode::kList;
}

}  // namespace

struct BlockServer::Request {
  RequestBody body;
  // The frame's payload, which a commit's keys and values point into.
  std::shared_ptr<char[]> payload;
};

// Runs queued tasks on a fixed set of threads. The destructor finishes the
// queue, then joins.
class BlockServer::WorkerPool {
 public:
  explicit WorkerPool(size_t threads) {
    for (size_t i = 0; i < threads; ++i)
      threads_.emplace_back([this] {
        NameThisThread("host-worker");
        Run();
      });
  }
  ~WorkerPool() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    for (std::thread& t : threads_) t.join();
  }
  void Submit(std::function<void()> task) {
    {
      std::lock_guard lock(mu_);
      tasks_.push_back(std::move(task));
    }
    cv_.notify_one();
  }

 private:
  void Run() {
    while (true) {
      std::function<void()> task;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [this] { return stopping_ || !tasks_.empty(); });
        if (tasks_.empty()) return;
        task = std::move(tasks_.front());
        tasks_.pop_front();
      }
      task();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;  // GUARDED_BY(mu_)
  bool stopping_ = false;                    // GUARDED_BY(mu_)
  std::vector<std::thread> threads_;
};

// One connection. The reader thread owns `volume` and `store`; workers get
// the store captured at dispatch time.
struct BlockServer::Session {
  Session(SessionId session_id, bool is_admin, std::unique_ptr<Connection> c)
      : id(session_id), admin(is_admin), peer(c->peer()), conn(std::move(c)) {}

  // Sends one reply frame whose payload is the concatenation of `payload`
  // (or the error message). A failed write leaves the stream unusable, so
  // the connection is shut down.
  void Reply(const protocol::FrameHeader& request, const Status& status,
             std::span<const std::string_view> payload = {}) {
    protocol::FrameHeader header{.opcode = request.opcode,
                                 .request_id = request.request_id,
                                 .status = status.code()};
    const std::string_view message = status.message();
    std::span<const std::string_view> body =
        status.ok() ? payload : std::span(&message, 1);
    // Counted before the write, so a client that has its reply already sees
    // it in the counters.
    if (TrafficCounters* counters = traffic.load()) {
      uint64_t bytes = protocol::kFrameHeaderSize;
      for (std::string_view part : body) bytes += part.size();
      counters->CountReply(bytes);
    }
    std::lock_guard lock(write_mu);
    if (!WriteFrame(*conn, header, body).ok()) Kill();
  }
  void Reply(const protocol::FrameHeader& request, const Status& status,
             std::string_view payload) {
    Reply(request, status, std::span(&payload, 1));
  }

  // Ends reads (and writes) so the reader thread winds down.
  void Kill() {
    std::lock_guard lock(mu);
    if (conn) conn->Shutdown();
  }
  // Ends reads only, so in-flight requests can still be answered.
  void StopReading() {
    std::lock_guard lock(mu);
    if (conn) ::shutdown(conn->fd(), SHUT_RD);
  }
  // Takes an in-flight slot; false if all kMaxInFlight are taken.
  bool StartRequest() {
    std::lock_guard lock(mu);
    if (unanswered >= protocol::kMaxInFlight) return false;
    ++unanswered;
    ++running;
    return true;
  }
  // Frees the slot before the reply goes out: the client may send its next
  // request the moment it reads the reply.
  void Answer(const protocol::FrameHeader& request,
              const Result<ReplyBody>& reply) {
    {
      std::lock_guard lock(mu);
      --unanswered;
    }
    if (!reply.ok()) {
      Reply(request, reply.status());
    } else if (const auto* get = std::get_if<PinnedValues>(&*reply)) {
      const protocol::GatheredEncoding encoding(get->values);
      Reply(request, Status::Ok(), encoding.parts());
    } else {
      Reply(request, Status::Ok(), std::get<std::string>(*reply));
    }
    std::lock_guard lock(mu);
    if (--running == 0) drained.notify_all();
  }
  void WaitDrained() {
    std::unique_lock lock(mu);
    drained.wait(lock, [this] { return running == 0; });
  }

  const SessionId id;
  const bool admin;
  const std::string peer;
  std::unique_ptr<Connection> conn;  // reset (under mu) only once drained
  std::mutex write_mu;
  std::mutex mu;
  std::condition_variable drained;
  uint32_t unanswered = 0;  // GUARDED_BY(mu); bounded by kMaxInFlight
  uint32_t running = 0;     // GUARDED_BY(mu); tasks not yet finished
  bool opened = false;      // a lease was granted on this connection
  std::string volume;
  std::shared_ptr<RocksDbBlockStore> store;
  // The opened volume's counters: owned here, published to the workers
  // through `traffic` (null before OPEN and on admin sessions).
  std::shared_ptr<TrafficCounters> traffic_owner;
  std::atomic<TrafficCounters*> traffic{nullptr};
  std::thread reader;
  std::atomic<bool> finished{false};
  // Set when another connection took the lease over. The connection stays
  // open so its client learns why (Fenced) instead of seeing a bare drop.
  std::atomic<bool> fenced{false};
};

BlockServer::BlockServer(RocksDbVolumes& volumes, BlockServerOptions options)
    : volumes_(volumes),
      options_(std::move(options)),
      manager_(volumes, [this](SessionId session, const std::string&) {
        OnTakeover(session);
      }) {}

BlockServer::~BlockServer() { Stop(); }

Status BlockServer::Start() {
  if (started_) return Status::InvalidArgument("server already started");
  std::vector<std::unique_ptr<Listener>> listeners;
  for (const Address& address : options_.listen) {
    auto listener = Listen(address);
    if (!listener.ok()) {
      return listener.status().WithContext("cannot listen on " +
                                           address.ToString());
    }
    listeners.push_back(std::move(listener).value());
  }
  std::unique_ptr<Listener> admin_listener;
  if (options_.admin) {
    auto listener = Listen(*options_.admin);
    if (!listener.ok()) {
      return listener.status().WithContext("cannot listen on admin socket " +
                                           options_.admin->ToString());
    }
    admin_listener = std::move(listener).value();
  }
  started_ = true;
  listeners_ = std::move(listeners);
  admin_listener_ = std::move(admin_listener);
  pool_ = std::make_unique<WorkerPool>(
      std::max<size_t>(1, options_.worker_threads));
  for (auto& listener : listeners_) {
    spdlog::info("listening on {}", listener->address().ToString());
    accept_threads_.emplace_back([this, l = listener.get()] {
      NameThisThread("host-accept");
      AcceptLoop(*l, /*admin=*/false);
    });
  }
  if (admin_listener_) {
    spdlog::info("admin socket on {}", admin_listener_->address().ToString());
    accept_threads_.emplace_back([this] {
      NameThisThread("host-admin");
      AcceptLoop(*admin_listener_, /*admin=*/true);
    });
  }
  return Status::Ok();
}

void BlockServer::Stop() {
  if (!started_ || stopping_.exchange(true)) return;
  spdlog::info("shutting down: no new connections or requests");
  for (auto& listener : listeners_) listener->Close();
  if (admin_listener_) admin_listener_->Close();
  for (std::thread& t : accept_threads_) t.join();
  accept_threads_.clear();

  std::vector<std::shared_ptr<Session>> sessions;
  {
    std::lock_guard lock(sessions_mu_);
    sessions.swap(sessions_);
  }
  for (auto& session : sessions) session->StopReading();
  for (auto& session : sessions) session->reader.join();
  pool_.reset();
  Status synced = volumes_.MakeDurable();
  if (!synced.ok()) spdlog::error("sync at shutdown: {}", synced.ToString());
  spdlog::info("shutdown complete");
}

std::vector<Address> BlockServer::listen_addresses() const {
  std::vector<Address> out;
  for (const auto& listener : listeners_) out.push_back(listener->address());
  return out;
}

std::optional<Address> BlockServer::admin_address() const {
  if (!admin_listener_) return std::nullopt;
  return admin_listener_->address();
}

void BlockServer::AcceptLoop(Listener& listener, bool admin) {
  while (true) {
    auto accepted = listener.Accept();
    if (!accepted.ok()) {
      if (stopping_ || accepted.status().code() == StatusCode::kShuttingDown) {
        return;
      }
      spdlog::warn("accept on {}: {}", listener.address().ToString(),
                   accepted.status().ToString());
      // Typically out of file descriptors: back off instead of spinning.
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    ReapFinishedSessions();
    std::unique_ptr<Connection> conn = std::move(accepted).value();
    timeval timeout{.tv_sec = kSendTimeoutSeconds, .tv_usec = 0};
    ::setsockopt(conn->fd(), SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    auto session =
        std::make_shared<Session>(next_session_id_++, admin, std::move(conn));
    std::lock_guard lock(sessions_mu_);
    if (stopping_) return;
    spdlog::info("session {}: {} connection from {}", session->id,
                 admin ? "admin" : "client", session->peer);
    session->reader = std::thread([this, session] {
      NameThisThread("host-session");
      ServeSession(session);
    });
    sessions_.push_back(std::move(session));
  }
}

void BlockServer::ReapFinishedSessions() {
  std::lock_guard lock(sessions_mu_);
  std::erase_if(sessions_, [](const std::shared_ptr<Session>& session) {
    if (!session->finished) return false;
    session->reader.join();
    return true;
  });
}

void BlockServer::OnTakeover(SessionId id) {
  std::lock_guard lock(sessions_mu_);
  for (auto& session : sessions_) {
    if (session->id == id) {
      spdlog::info("session {}: {} lost its lease to a takeover", id,
                   session->peer);
      session->fenced = true;
    }
  }
}

void BlockServer::ServeSession(const std::shared_ptr<Session>& session) {
  Session& s = *session;
  while (!stopping_) {
    auto frame = ReadFrame(*s.conn);
    if (!frame.ok()) {
      if (frame.status().code() == StatusCode::kProtocolError) {
        spdlog::warn("session {}: protocol violation from {}: {}", s.id, s.peer,
                     frame.status().message());
      }
      break;
    }
    Status handled = HandleFrame(session, std::move(frame).value());
    if (!handled.ok()) {
      spdlog::warn("session {}: protocol violation from {}: {}", s.id, s.peer,
                   handled.message());
      break;
    }
  }
  // In-flight requests finish first, so that a client that reconnects sees
  // the outcome of a commit that was running when this one went away.
  s.WaitDrained();
  if (s.store) manager_.Release(s.volume, s.id);
  {
    std::lock_guard lock(s.mu);
    s.conn.reset();
  }
  spdlog::info("session {}: {} disconnected", s.id, s.peer);
  s.finished = true;
}

Status BlockServer::HandleFrame(const std::shared_ptr<Session>& session,
                                Frame frame) {
  Session& s = *session;
  const protocol::FrameHeader& header = frame.header;
  auto violation = [&](std::string message) {
    Status status = Status::ProtocolError(std::move(message));
    s.Reply(header, status);
    return status;
  };
  if (!protocol::IsKnownOpcode(header.opcode)) {
    return violation("unknown opcode " + std::to_string(header.opcode));
  }
  const auto op = static_cast<Opcode>(header.opcode);
  const bool admin_op = protocol::IsAdminOpcode(header.opcode);
  if (s.admin ? !admin_op && op != Opcode::kPing : admin_op) {
    return violation("opcode " + std::to_string(header.opcode) +
                     " is not allowed on this socket");
  }
  auto body = DecodeBody(op, frame.payload.view());
  if (!body.ok()) return violation(body.status().message());
  const uint64_t frame_bytes =
      protocol::kFrameHeaderSize + frame.payload.size();
  if (TrafficCounters* counters = s.traffic.load()) {
    counters->CountRequest(op, KeysRead(*body), frame_bytes);
  }

  if (op == Opcode::kOpen) {
    if (s.opened) return violation("second OPEN on one connection");
    const auto& open = std::get<protocol::OpenRequest>(*body);
    auto lease = manager_.Acquire(open.volume, open.token, open.takeover, s.id,
                                  open.client_id);
    if (!lease.ok()) {
      spdlog::warn("session {}: OPEN {} refused for {}: {}", s.id, open.volume,
                   s.peer, lease.status().ToString());
      s.Reply(header, lease.status());
      return Status::Ok();
    }
    spdlog::info(
        "session {}: {} opened volume {} (epoch {}, holder since {}{})", s.id,
        s.peer, open.volume, lease->epoch, lease->holder_since,
        open.takeover ? ", takeover" : "");
    s.opened = true;
    s.volume = open.volume;
    s.store = std::move(lease->store);
    s.traffic_owner = manager_.Traffic(open.volume);
    s.traffic = s.traffic_owner.get();
    s.traffic_owner->CountRequest(op, 0, frame_bytes);
    s.Reply(header, Status::Ok(),
            protocol::Encode(protocol::OpenResponse{
                .epoch = lease->epoch, .holder_since = lease->holder_since}));
    return Status::Ok();
  }
  if (NeedsLease(op) || op == Opcode::kClose) {
    if (!s.store) return violation("no volume is open on this connection");
  }
  if (op == Opcode::kClose) {
    // Requests sent before CLOSE still run under the lease.
    s.WaitDrained();
    manager_.Release(s.volume, s.id);
    spdlog::info("session {}: {} closed volume {}", s.id, s.peer, s.volume);
    s.store.reset();
    s.Reply(header, Status::Ok());
    return Status::Ok();
  }
  if (!s.StartRequest()) {
    return violation("more than " + std::to_string(protocol::kMaxInFlight) +
                     " requests in flight");
  }
  pool_->Submit(
      [this, session, header, op, store = s.store,
       request = Request{std::move(body).value(), frame.payload.buffer()}] {
        if (options_.before_request) options_.before_request(op);
        Result<ReplyBody> reply =
            NeedsLease(op) && session->fenced
                ? Status::Fenced("volume " + session->volume +
                                 " was taken over by another client")
                : Execute(op, request, store.get());
        session->Answer(header, reply);
      });
  return Status::Ok();
}

Result<BlockServer::ReplyBody> BlockServer::Execute(Opcode op,
                                                    const Request& request,
                                                    RocksDbBlockStore* store) {
  const RequestBody& body = request.body;
  switch (op) {
    case Opcode::kGet: {
      EFS_ASSIGN_OR_RETURN(
          PinnedValues values,
          store->GetPinned(std::get<protocol::GetRequest>(body).keys));
      return ReplyBody(std::move(values));
    }
    case Opcode::kCommit:
      EFS_RETURN_IF_ERROR(store->Commit(std::get<CommitBatchView>(body)));
      return ReplyBody();
    case Opcode::kStat: {
      EFS_ASSIGN_OR_RETURN(StoreStats stats, store->Stat());
      return ReplyBody(protocol::Encode(stats));
    }
    case Opcode::kList: {
      const auto& list = std::get<protocol::ListRequest>(body);
      EFS_ASSIGN_OR_RETURN(KeyPage page,
                           store->ListKeys(list.start_after, list.limit));
      return ReplyBody(protocol::Encode(page));
    }
    case Opcode::kPing:
      return ReplyBody(protocol::Encode(std::get<protocol::PingMessage>(body)));
    case Opcode::kReadHeader: {
      const auto& volume = std::get<protocol::VolumeRequest>(body).volume;
      EFS_ASSIGN_OR_RETURN(auto header_store, volumes_.OpenVolume(volume));
      const std::string key(protocol::kPublicHeaderKey);
      EFS_ASSIGN_OR_RETURN(PinnedValues values,
                           header_store->GetPinned(std::span(&key, 1)));
      return ReplyBody(std::move(values));
    }
    case Opcode::kAdminList: {
      EFS_ASSIGN_OR_RETURN(auto volumes, manager_.ListVolumes());
      return ReplyBody(
          protocol::Encode(protocol::VolumeListResponse{std::move(volumes)}));
    }
    case Opcode::kAdminCreate:
    case Opcode::kAdminDelete:
    case Opcode::kAdminResize:
      return ExecuteAdmin(op, std::get<protocol::VolumeRequest>(body));
    case Opcode::kAdminStats: {
      const auto& volume = std::get<protocol::VolumeRequest>(body).volume;
      EFS_ASSIGN_OR_RETURN(protocol::VolumeTraffic traffic,
                           manager_.TrafficOf(volume));
      return ReplyBody(protocol::Encode(traffic));
    }
    case Opcode::kOpen:
    case Opcode::kClose:
      break;  // handled by the reader thread
  }
  return Status::ProtocolError("unexpected opcode");
}

Result<BlockServer::ReplyBody> BlockServer::ExecuteAdmin(
    Opcode op, const protocol::VolumeRequest& request) {
  Status status;
  std::string action;
  switch (op) {
    case Opcode::kAdminCreate:
      status = manager_.CreateVolume(request.volume, request.quota_bytes);
      action = fmt::format("create {} (quota {})", request.volume,
                           request.quota_bytes);
      break;
    case Opcode::kAdminDelete:
      status = manager_.DeleteVolume(request.volume);
      action = "delete " + request.volume;
      break;
    default:
      status = manager_.ResizeVolume(request.volume, request.quota_bytes);
      action = fmt::format("resize {} (quota {})", request.volume,
                           request.quota_bytes);
      break;
  }
  if (!status.ok()) {
    spdlog::warn("admin {} refused: {}", action, status.ToString());
    return status;
  }
  spdlog::info("admin {}", action);
  return ReplyBody();
}

}  // namespace enclavefs
