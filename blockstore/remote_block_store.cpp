#include "blockstore/remote_block_store.h"

#include <sodium.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <condition_variable>
#include <future>
#include <thread>
#include <unordered_set>
#include <utility>
#include <vector>

namespace enclavefs {
namespace {

using Clock = std::chrono::steady_clock;

// Keys per GET request for values of up to `max_value_size` bytes: about
// kGetChunkBytes of values but at least 16 keys (pipelined chunks of a large
// Get), and never more than fit one reply frame. The slack covers the fixed
// encoding overhead.
constexpr size_t kGetChunkBytes = 1 << 20;
constexpr size_t kGetResponseSlack = 64 * 1024;
constexpr size_t kGetValueFraming = 5;  // a presence byte and a u32 length
size_t GetChunkKeys(size_t max_value_size) {
  const size_t value = std::clamp<size_t>(max_value_size, 1, kMaxValueSize);
  const size_t fit = (protocol::kMaxPayloadSize - kGetResponseSlack) /
                     (value + kGetValueFraming);
  return std::min<size_t>({protocol::kMaxKeysPerRequest, fit,
                           std::max<size_t>(16, kGetChunkBytes / value)});
}

// The last reconnect attempt before the deadline still gets this long.
constexpr std::chrono::milliseconds kMinAttemptTimeout{100};

// True if `status` (from a call on `client`) means the session is gone and
// a reconnect may help. Errors the host answered with are final.
bool NeedsReconnect(const Status& status, RpcClient& client) {
  if (status.code() == StatusCode::kShuttingDown) {
    client.Shutdown();  // the host is going away; do not wait for it
    return true;
  }
  return status.code() == StatusCode::kUnavailable && client.broken();
}

// Busy is transient while the host drains our previous connection.
bool IsRetryableOpenError(const Status& status) {
  return status.code() == StatusCode::kUnavailable ||
         status.code() == StatusCode::kBusy ||
         status.code() == StatusCode::kShuttingDown;
}

struct OpenedSession {
  std::shared_ptr<RpcClient> client;
  protocol::OpenResponse granted;
};

Result<std::unique_ptr<RpcClient>> ConnectClient(
    const Address& address, std::chrono::milliseconds timeout,
    std::chrono::milliseconds stall_warning = RpcClient::kDefaultStallWarning) {
  Result<std::unique_ptr<Connection>> conn = Connect(address, timeout);
  if (!conn.ok()) {
    return Status::Unavailable("cannot reach host at " + address.ToString() +
                               ": " + conn.status().message());
  }
  return std::make_unique<RpcClient>(std::move(conn).value(), stall_warning);
}

std::chrono::milliseconds RemainingUntil(Clock::time_point deadline) {
  return std::max(
      std::chrono::milliseconds(1),
      std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()));
}

// A handshake call: a host that accepts but never answers (e.g. one that is
// shutting down) must not hang the caller, so give up after `timeout`.
Result<Payload> CallWithin(RpcClient& client, protocol::Opcode op,
                           std::string_view payload,
                           std::chrono::milliseconds timeout) {
  std::future<Result<Payload>> reply = client.CallAsync(op, payload);
  if (reply.wait_for(timeout) != std::future_status::ready) {
    client.Shutdown();
    return Status::Unavailable("host at " + client.peer() +
                               " did not answer within " +
                               std::to_string(timeout.count()) + " ms");
  }
  return reply.get();
}

// Connects and sends OPEN, all within `timeout`.
Result<OpenedSession> OpenSession(const RemoteOptions& options,
                                  const protocol::ClientId& client_id,
                                  bool takeover,
                                  std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  EFS_ASSIGN_OR_RETURN(
      std::shared_ptr<RpcClient> client,
      ConnectClient(options.address, timeout, options.stall_warning));
  protocol::OpenRequest request{options.volume, options.token, takeover,
                                client_id};
  Result<Payload> reply =
      CallWithin(*client, protocol::Opcode::kOpen, protocol::Encode(request),
                 RemainingUntil(deadline));
  const std::string context = "cannot open volume '" + options.volume +
                              "' at " + options.address.ToString();
  if (!reply.ok()) {
    Status status = reply.status();
    switch (status.code()) {
      case StatusCode::kBusy:
        return Status::Busy(context +
                            ": it is held by another client (takeover would "
                            "fence that client)");
      case StatusCode::kPermissionDenied:
        return Status::PermissionDenied(context + ": wrong access token");
      case StatusCode::kNotFound:
        return Status::NotFound(context + ": no such volume");
      default:
        return status.WithContext(context);
    }
  }
  EFS_ASSIGN_OR_RETURN(protocol::OpenResponse granted,
                       protocol::DecodeOpenResponse(reply->view()));
  return OpenedSession{std::move(client), granted};
}

// Whether a re-open that granted `granted` may resume a lease at
// `old_epoch`: only if the host's unbroken run of epochs granted to our
// client id, holder_since..epoch, reaches back to old_epoch itself. Every
// epoch after ours then went to us, and the host has not broken the run
// since: it does that when a crash may have lost our non-durable commits
// (the next grant then starts a new run, holder_since == old_epoch + 1).
// Usually epoch == old_epoch + 1; more when the reply to an earlier re-open
// of ours was lost (that OPEN still took an epoch). A check of only the
// previous holder would not do: another client at old + 1, then our lost
// re-open at old + 2, would make us the previous holder of old + 3 and hide
// the other client.
bool ResumesLease(uint64_t old_epoch, const protocol::OpenResponse& granted) {
  return granted.epoch > old_epoch && granted.holder_since <= old_epoch;
}

// The values of one Get reply, as views into its payload (no copy), after
// checking there is one per key asked for.
Result<SharedGetResult> DecodeValues(Result<Payload> reply,
                                     size_t expected_count) {
  if (!reply.ok()) return reply.status();
  EFS_ASSIGN_OR_RETURN(protocol::GetResponseViews views,
                       protocol::DecodeGetResponseViews(reply->view()));
  if (views.size() != expected_count) {
    return Status::ProtocolError("host answered " +
                                 std::to_string(views.size()) + " values for " +
                                 std::to_string(expected_count) + " keys");
  }
  SharedGetResult values;
  values.reserve(views.size());
  for (const auto& view : views) {
    if (!view) {
      values.emplace_back(std::nullopt);
      continue;
    }
    char* begin = reply->data() + (view->data() - reply->view().data());
    values.emplace_back(SharedValue{reply->buffer(), {begin, view->size()}});
  }
  return values;
}

std::optional<std::string> CopyValue(const std::optional<SharedValue>& value) {
  if (!value) return std::nullopt;
  return std::string(value->bytes.data(), value->bytes.size());
}

// The keys a commit reads or writes: its puts, deletes and condition key.
std::vector<std::string> KeysTouched(const CommitBatch& batch) {
  std::vector<std::string> keys;
  keys.reserve(batch.puts.size() + batch.deletes.size() + 1);
  for (const auto& put : batch.puts) keys.push_back(put.first);
  keys.insert(keys.end(), batch.deletes.begin(), batch.deletes.end());
  // The condition key usually is also a put key; it is held once.
  if (batch.condition &&
      std::find(keys.begin(), keys.end(), batch.condition->key) == keys.end()) {
    keys.push_back(batch.condition->key);
  }
  return keys;
}

}  // namespace

// Commits sharing a key take turns; others run concurrently. Close() refuses
// new holders and waits for the current ones.
class RemoteBlockStore::KeyLocks {
 public:
  // Holds one commit's keys until destroyed.
  class Held {
   public:
    Held(KeyLocks& owner, std::vector<std::string> keys)
        : owner_(&owner), keys_(std::move(keys)) {}
    Held(Held&& other) noexcept
        : owner_(std::exchange(other.owner_, nullptr)),
          keys_(std::move(other.keys_)) {}
    Held& operator=(Held&&) = delete;
    ~Held() {
      if (owner_ != nullptr) owner_->Unlock(keys_);
    }

   private:
    KeyLocks* owner_;
    std::vector<std::string> keys_;
  };

  // Blocks until no holder has any of `keys` (distinct), then holds them.
  // Unavailable once Close() has begun.
  Result<Held> Lock(std::vector<std::string> keys, const std::string& volume) {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] {
      return closed_ || std::none_of(keys.begin(), keys.end(),
                                     [&](const std::string& key) {
                                       return held_.contains(key);
                                     });
    });
    if (closed_) {
      return Status::Unavailable("volume '" + volume + "' was closed");
    }
    held_.insert(keys.begin(), keys.end());
    ++holders_;
    return Held(*this, std::move(keys));
  }

  // Refuses new holders, then waits until every current one is done.
  void CloseAndDrain() {
    std::unique_lock lock(mu_);
    closed_ = true;
    cv_.notify_all();
    cv_.wait(lock, [this] { return holders_ == 0; });
  }

 private:
  void Unlock(const std::vector<std::string>& keys) {
    {
      std::lock_guard lock(mu_);
      for (const auto& key : keys) held_.erase(key);
      --holders_;
    }
    cv_.notify_all();
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::unordered_set<std::string> held_;  // GUARDED_BY(mu_)
  size_t holders_ = 0;                    // GUARDED_BY(mu_)
  bool closed_ = false;                   // GUARDED_BY(mu_)
};

RemoteBlockStore::RemoteBlockStore(RemoteOptions options,
                                   const protocol::ClientId& client_id)
    : options_(std::move(options)),
      get_chunk_keys_(GetChunkKeys(options_.max_value_size)),
      client_id_(client_id),
      key_locks_(std::make_unique<KeyLocks>()) {}

RemoteBlockStore::~RemoteBlockStore() = default;

Result<std::unique_ptr<RemoteBlockStore>> RemoteBlockStore::Open(
    RemoteOptions options) {
  EFS_RETURN_IF_ERROR(protocol::ValidateVolumeName(options.volume));
  if (sodium_init() < 0) return Status::IOError("libsodium failed to start");
  protocol::ClientId client_id;
  // Never all zero in practice (2^-128); the host would refuse it.
  randombytes_buf(client_id.data(), client_id.size());
  EFS_ASSIGN_OR_RETURN(OpenedSession opened,
                       OpenSession(options, client_id, options.takeover,
                                   options.connect_timeout));
  std::unique_ptr<RemoteBlockStore> store(
      new RemoteBlockStore(std::move(options), client_id));
  store->session_ = Session{std::move(opened.client), 1};
  store->epoch_ = opened.granted.epoch;
  spdlog::info("opened volume '{}' at {} (epoch {})", store->options_.volume,
               store->options_.address.ToString(), store->epoch_);
  return store;
}

uint64_t RemoteBlockStore::epoch() const {
  std::lock_guard lock(mu_);
  return epoch_;
}

Result<RemoteBlockStore::Session> RemoteBlockStore::CurrentSession() const {
  std::lock_guard lock(mu_);
  if (!dead_.ok()) return dead_;
  return session_;
}

Status RemoteBlockStore::Reconnect(uint64_t failed_generation,
                                   Clock::time_point deadline) {
  std::lock_guard reconnecting(reconnect_mu_);
  uint64_t old_epoch;
  {
    std::lock_guard lock(mu_);
    if (!dead_.ok()) return dead_;
    if (session_.generation != failed_generation) return Status::Ok();
    old_epoch = epoch_;
  }
  if (!unreachable_.ok() && Clock::now() < retry_after_) return unreachable_;
  const std::string where =
      "volume '" + options_.volume + "' at " + options_.address.ToString();
  std::chrono::milliseconds backoff = options_.initial_backoff;
  Status last;
  int attempt = 0;
  while (true) {
    ++attempt;
    Result<OpenedSession> opened = OpenSession(
        options_, client_id_, /*takeover=*/false,
        std::min(options_.connect_timeout,
                 std::max(RemainingUntil(deadline), kMinAttemptTimeout)));
    if (opened.ok()) {
      std::lock_guard lock(mu_);
      const protocol::OpenResponse& granted = opened->granted;
      if (!ResumesLease(old_epoch, granted)) {
        // Someone else held the volume since we lost the connection; our
        // view of it is stale. Release the lease we just took before
        // reporting, so a client that opens next does not find it busy.
        (void)opened->client->Call(protocol::Opcode::kClose,
                                   std::string_view());
        dead_ = Status::Fenced(
            where + " was claimed by another client, or the host lost " +
            "commits in a crash (epoch " + std::to_string(old_epoch) + " -> " +
            std::to_string(granted.epoch) + ", ours since " +
            std::to_string(granted.holder_since) + ")");
        spdlog::warn("reconnect: {}", dead_.message());
        return dead_;
      }
      unreachable_ = Status::Ok();
      session_ = Session{std::move(opened->client), failed_generation + 1};
      epoch_ = granted.epoch;
      spdlog::info("reconnected to {} on attempt {} (epoch {})", where, attempt,
                   epoch_);
      return Status::Ok();
    }
    last = opened.status();
    if (!IsRetryableOpenError(last)) {
      spdlog::warn("reconnect to {} failed: {}", where, last.ToString());
      return last;
    }
    const auto now = Clock::now();
    if (now >= deadline) break;
    const auto pause = std::min<Clock::duration>(backoff, deadline - now);
    // One warning per round; the attempts after the first are routine.
    if (attempt == 1) {
      spdlog::warn("cannot reach {}: {}; retrying for up to {} ms", where,
                   last.ToString(), RemainingUntil(deadline).count());
    } else {
      spdlog::debug("reconnect attempt {} to {} failed: {}", attempt, where,
                    last.ToString());
    }
    std::this_thread::sleep_for(pause);
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
  spdlog::warn("giving up reconnecting to {} after {} attempts: {}", where,
               attempt, last.ToString());
  unreachable_ = Status::Unavailable(
      "cannot reconnect to " + where + " within " +
      std::to_string(options_.reconnect_deadline.count()) + " ms (next try " +
      std::to_string(options_.retry_pause.count()) +
      " ms after that): " + last.ToString());
  retry_after_ = Clock::now() + options_.retry_pause;
  return unreachable_;
}

Status RemoteBlockStore::RestoreConnection() {
  EFS_ASSIGN_OR_RETURN(Session session, CurrentSession());
  if (!session.client->broken()) return Status::Ok();
  return Reconnect(session.generation,
                   Clock::now() + options_.reconnect_deadline);
}

template <typename T, typename Fn>
Result<T> RemoteBlockStore::WithRetry(Fn call) {
  std::optional<Clock::time_point> deadline;
  while (true) {
    EFS_ASSIGN_OR_RETURN(Session session, CurrentSession());
    Result<T> result = call(*session.client);
    if (result.ok() || !NeedsReconnect(result.status(), *session.client)) {
      return result;
    }
    if (!deadline) deadline = Clock::now() + options_.reconnect_deadline;
    EFS_RETURN_IF_ERROR(Reconnect(session.generation, *deadline));
  }
}

Result<SharedGetResult> RemoteBlockStore::GetOnce(
    RpcClient& client, std::span<const std::string> keys) {
  // All chunks go out before the first reply is awaited: that is the
  // pipelining. CallAsync blocks only when kMaxInFlight are outstanding.
  std::vector<std::future<Result<Payload>>> replies;
  replies.reserve((keys.size() + get_chunk_keys_ - 1) / get_chunk_keys_);
  for (size_t begin = 0; begin < keys.size(); begin += get_chunk_keys_) {
    const size_t end = std::min(keys.size(), begin + get_chunk_keys_);
    protocol::GetRequest request;
    request.keys.assign(keys.begin() + begin, keys.begin() + end);
    replies.push_back(
        client.CallAsync(protocol::Opcode::kGet, protocol::Encode(request)));
  }
  SharedGetResult out;
  out.reserve(keys.size());
  Status first_error;
  for (size_t i = 0; i < replies.size(); ++i) {
    const size_t count =
        std::min(get_chunk_keys_, keys.size() - i * get_chunk_keys_);
    Result<SharedGetResult> values =
        DecodeValues(client.Await(replies[i], protocol::Opcode::kGet), count);
    if (!values.ok()) {
      if (first_error.ok()) first_error = values.status();
      continue;
    }
    for (auto& value : *values) out.push_back(std::move(value));
  }
  if (!first_error.ok()) return first_error;
  return out;
}

Result<SharedGetResult> RemoteBlockStore::GetShared(
    std::span<const std::string> keys) {
  for (const auto& key : keys) EFS_RETURN_IF_ERROR(ValidateKey(key));
  if (keys.empty()) return SharedGetResult{};
  return WithRetry<SharedGetResult>(
      [&](RpcClient& client) { return GetOnce(client, keys); });
}

Result<GetResult> RemoteBlockStore::Get(std::span<const std::string> keys) {
  EFS_ASSIGN_OR_RETURN(SharedGetResult shared, GetShared(keys));
  GetResult out;
  out.reserve(shared.size());
  for (const auto& value : shared) out.push_back(CopyValue(value));
  return out;
}

Result<bool> RemoteBlockStore::WasApplied(const CommitBatch& batch) {
  if (!batch.condition) return false;
  const CommitCondition& condition = *batch.condition;
  std::optional<std::optional<std::string>> new_value;
  for (const auto& [key, value] : batch.puts) {
    if (key == condition.key) new_value.emplace(value);
  }
  for (const auto& key : batch.deletes) {
    if (key == condition.key) new_value.emplace(std::nullopt);
  }
  // A batch that leaves its condition key alone still meets the condition
  // after being applied, so resending it is harmless.
  if (!new_value) return false;
  const std::string keys[] = {condition.key};
  EFS_ASSIGN_OR_RETURN(GetResult current, Get(keys));
  // Checked first: if the new value equals the expected one, resending is
  // the idempotent choice.
  if (current[0] == condition.expected) return false;
  if (current[0] == *new_value) return true;
  return Status::Conflict(
      "condition key changed while the connection to the host was down");
}

Status RemoteBlockStore::Commit(const CommitBatch& batch) {
  EFS_RETURN_IF_ERROR(ValidateBatch(batch));
  // The values go from the batch straight to the socket.
  const protocol::GatheredEncoding payload(batch);
  if (payload.size() > protocol::kMaxPayloadSize) {
    return Status::InvalidArgument("batch encodes to " +
                                   std::to_string(payload.size()) +
                                   " bytes, over the protocol limit of " +
                                   std::to_string(protocol::kMaxPayloadSize));
  }
  EFS_ASSIGN_OR_RETURN(KeyLocks::Held held,
                       key_locks_->Lock(KeysTouched(batch), options_.volume));
  std::optional<Clock::time_point> deadline;
  bool outcome_unknown = false;
  while (true) {
    if (outcome_unknown) {
      EFS_ASSIGN_OR_RETURN(bool applied, WasApplied(batch));
      if (applied) {
        spdlog::info("commit whose reply was lost had been applied");
        return Status::Ok();
      }
    }
    EFS_ASSIGN_OR_RETURN(Session session, CurrentSession());
    Result<Payload> reply =
        session.client->Call(protocol::Opcode::kCommit, payload.parts());
    if (reply.ok()) return Status::Ok();
    if (!NeedsReconnect(reply.status(), *session.client)) {
      return reply.status();
    }
    // ShuttingDown is an answer: that attempt was not applied. A broken
    // connection leaves it open whether the host applied it.
    if (reply.status().code() != StatusCode::kShuttingDown) {
      outcome_unknown = true;
    }
    if (!deadline) deadline = Clock::now() + options_.reconnect_deadline;
    EFS_RETURN_IF_ERROR(Reconnect(session.generation, *deadline));
  }
}

Result<StoreStats> RemoteBlockStore::Stat() {
  return WithRetry<StoreStats>([](RpcClient& client) -> Result<StoreStats> {
    EFS_ASSIGN_OR_RETURN(Payload reply, client.Call(protocol::Opcode::kStat,
                                                    std::string_view()));
    return protocol::DecodeStatResponse(reply.view());
  });
}

Result<KeyPage> RemoteBlockStore::ListKeys(std::string_view start_after,
                                           size_t limit) {
  if (limit == 0) return Status::InvalidArgument("list limit must be >= 1");
  protocol::ListRequest request;
  request.start_after = std::string(start_after);
  request.limit = static_cast<uint32_t>(
      std::min<size_t>(limit, protocol::kMaxKeysPerRequest));
  const std::string payload = protocol::Encode(request);
  return WithRetry<KeyPage>([&](RpcClient& client) -> Result<KeyPage> {
    EFS_ASSIGN_OR_RETURN(Payload reply,
                         client.Call(protocol::Opcode::kList, payload));
    return protocol::DecodeListResponse(reply.view());
  });
}

Status RemoteBlockStore::Ping() {
  const std::string payload = protocol::Encode(protocol::PingMessage{"ping"});
  return WithRetry<bool>([&](RpcClient& client) -> Result<bool> {
           EFS_ASSIGN_OR_RETURN(Payload reply,
                                client.Call(protocol::Opcode::kPing, payload));
           EFS_ASSIGN_OR_RETURN(protocol::PingMessage echo,
                                protocol::DecodePing(reply.view()));
           if (echo.payload != "ping") {
             return Status::ProtocolError("ping answered with other bytes");
           }
           return true;
         })
      .status();
}

Status RemoteBlockStore::Close() {
  key_locks_->CloseAndDrain();  // let running commits finish
  Session session;
  {
    std::lock_guard lock(mu_);
    if (!dead_.ok()) return Status::Ok();
    session = std::move(session_);
    dead_ = Status::Unavailable("volume '" + options_.volume + "' was closed");
  }
  Result<Payload> reply =
      session.client->Call(protocol::Opcode::kClose, std::string_view());
  // A dropped connection has released the lease just as well.
  if (!reply.ok() && !session.client->broken()) return reply.status();
  return Status::Ok();
}

Result<std::optional<std::string>> ReadPublicHeader(
    const Address& address, const std::string& volume,
    std::chrono::milliseconds timeout) {
  EFS_RETURN_IF_ERROR(protocol::ValidateVolumeName(volume));
  EFS_ASSIGN_OR_RETURN(std::unique_ptr<RpcClient> client,
                       ConnectClient(address, timeout));
  Result<Payload> reply =
      CallWithin(*client, protocol::Opcode::kReadHeader,
                 protocol::Encode(protocol::VolumeRequest{volume, 0}), timeout);
  EFS_ASSIGN_OR_RETURN(SharedGetResult values,
                       DecodeValues(std::move(reply), 1));
  return CopyValue(values[0]);
}

}  // namespace enclavefs
