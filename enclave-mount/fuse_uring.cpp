#define FUSE_USE_VERSION 314
#include "enclave-mount/fuse_uring.h"

#include <fuse_lowlevel.h>
#include <liburing.h>
#include <linux/fuse.h>
#include <pthread.h>
#include <sched.h>
#include <spdlog/spdlog.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <fstream>
#include <string>

#include "blockstore/logging.h"

namespace enclavefs {
namespace {

// The io_uring part of the FUSE protocol (linux/fuse.h 7.42), which Debian
// 12's kernel headers predate.
constexpr uint64_t kFuseOverIoUring = uint64_t{1} << 41;
constexpr uint32_t kCmdRegister = 1;
constexpr uint32_t kCmdCommitAndFetch = 2;

struct RingEntInOut {
  uint64_t flags;
  uint64_t commit_id;  // to send back with the reply
  uint32_t payload_sz;
  uint32_t padding;
  uint64_t reserved;
};

struct RingHeader {
  char in_out[128];  // fuse_in_header in, fuse_out_header out
  char op_in[128];   // the opcode's own header (fuse_write_in, ...)
  RingEntInOut ent;
};
static_assert(sizeof(RingHeader) == 288);

struct RingCmdReq {  // in the SQE's 80-byte command area
  uint64_t flags;
  uint64_t commit_id;
  uint16_t qid;
  uint8_t padding[6];
};

// Room before the payload for fuse_in_header and the opcode's header, so
// that the request libfuse parses is contiguous without moving the payload.
constexpr size_t kPrefix = 256;

// One past the highest possible CPU: the kernel's number of queues.
unsigned PossibleCpus() {
  std::ifstream in("/sys/devices/system/cpu/possible");
  std::string text;
  if (in >> text) {
    const size_t dash = text.find_last_of("-,");
    try {
      return static_cast<unsigned>(std::stoul(
                 dash == std::string::npos ? text : text.substr(dash + 1))) +
             1;
    } catch (const std::exception&) {
    }
  }
  return static_cast<unsigned>(std::max(1, get_nprocs_conf()));
}

}  // namespace

thread_local FuseUring::Entry* FuseUring::current_ = nullptr;

struct FuseUring::Entry {
  unsigned qid = 0;
  int fd = -1;
  size_t payload_size = 0;
  io_uring ring{};
  bool ring_ready = false;
  alignas(64) RingHeader header{};
  std::unique_ptr<char[]> buffer;  // kPrefix, then the payload
  iovec iov[2]{};
  uint64_t unique = 0;  // of the request being handled
  bool replied = false;
  std::thread thread;

  char* payload() { return buffer.get() + kPrefix; }

  // Queues `cmd` for this entry: REGISTER, or COMMIT_AND_FETCH of `commit`.
  int Submit(uint32_t cmd, uint64_t commit) {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring);
    if (sqe == nullptr) return -EBUSY;
    std::memset(sqe, 0, 128);  // SQE128: the command area too
    io_uring_prep_rw(IORING_OP_URING_CMD, sqe, fd, iov, 2, 0);
    sqe->cmd_op = cmd;
    RingCmdReq req{};
    req.commit_id = commit;
    req.qid = static_cast<uint16_t>(qid);
    std::memcpy(sqe->cmd, &req, sizeof(req));
    const int n = io_uring_submit(&ring);
    return n == 1 ? 0 : (n < 0 ? n : -EIO);
  }

  ssize_t StoreReply(const iovec* in, int count) {
    size_t total = 0;
    for (int i = 0; i < count; ++i) total += in[i].iov_len;
    if (in[0].iov_len < sizeof(fuse_out_header) ||
        total - sizeof(fuse_out_header) > payload_size) {
      errno = EINVAL;
      return -1;
    }
    std::memcpy(header.in_out, in[0].iov_base, sizeof(fuse_out_header));
    char* out = payload();
    std::memcpy(
        out, static_cast<const char*>(in[0].iov_base) + sizeof(fuse_out_header),
        in[0].iov_len - sizeof(fuse_out_header));
    out += in[0].iov_len - sizeof(fuse_out_header);
    for (int i = 1; i < count; ++i) {
      std::memcpy(out, in[i].iov_base, in[i].iov_len);
      out += in[i].iov_len;
    }
    header.ent.payload_sz =
        static_cast<uint32_t>(total - sizeof(fuse_out_header));
    replied = true;
    return static_cast<ssize_t>(total);
  }
};

FuseUring::FuseUring(fuse_session* session) : session_(session) {}

FuseUring::~FuseUring() { Stop(); }

ssize_t FuseUring::Read(int fd, void* buf, size_t len) {
  const ssize_t n = ::read(fd, buf, len);
  if (n < static_cast<ssize_t>(sizeof(fuse_in_header) + sizeof(fuse_init_in)))
    return n;
  const auto* in = static_cast<const fuse_in_header*>(buf);
  if (in->opcode != FUSE_INIT) return n;
  fuse_init_in init;
  std::memcpy(&init, static_cast<const char*>(buf) + sizeof(*in), sizeof(init));
  const bool offered = (init.flags & FUSE_INIT_EXT) != 0 &&
                       (init.flags2 & (kFuseOverIoUring >> 32)) != 0;
  if (offered) {
    init_unique_ = in->unique;
  } else {
    spdlog::info(
        "mount: the kernel does not offer FUSE over io_uring (that needs "
        "Linux 6.14 or later with /sys/module/fuse/parameters/enable_uring "
        "set to Y); serving through /dev/fuse");
  }
  return n;
}

ssize_t FuseUring::Writev(int fd, struct iovec* iov, int count) {
  if (count < 1 || iov[0].iov_len < sizeof(fuse_out_header))
    return ::writev(fd, iov, count);
  const auto* out = static_cast<const fuse_out_header*>(iov[0].iov_base);
  if (current_ != nullptr && out->unique != 0 &&
      out->unique == current_->unique) {
    return current_->StoreReply(iov, count);
  }
  const uint64_t init = init_unique_;
  if (init == 0 || out->unique != init || out->error != 0 || count < 2 ||
      iov[1].iov_len < sizeof(fuse_init_out)) {
    return ::writev(fd, iov, count);
  }
  init_unique_ = 0;
  // Once the kernel has the amended reply it holds every new request until
  // all queues have an entry, so the rings must exist before it is sent.
  auto* reply = static_cast<fuse_init_out*>(iov[1].iov_base);
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  // The kernel's largest request (its max_payload_sz); 32 pages is its
  // default when the reply sets no max_pages.
  const size_t pages = std::max<size_t>(reply->max_pages, 32);
  if (!Prepare(fuse_session_fd(session_),
               std::max({size_t{FUSE_MIN_READ_BUFFER}, size_t{reply->max_write},
                         pages * page}))) {
    return ::writev(fd, iov, count);
  }
  reply->flags |= FUSE_INIT_EXT;
  reply->flags2 |= static_cast<uint32_t>(kFuseOverIoUring >> 32);
  const ssize_t n = ::writev(fd, iov, count);
  Release(n >= 0);
  return n;
}

bool FuseUring::Prepare(int fd, size_t payload_size) {
  std::lock_guard lock(mu_);
  if (phase_ != Phase::kIdle) return false;
  const unsigned cpus = PossibleCpus();
  const unsigned per_cpu = std::clamp(kMaxEntries / cpus, 1u, kEntriesPerCpu);
  std::string failure;
  try {
    for (unsigned cpu = 0; cpu < cpus && failure.empty(); ++cpu) {
      for (unsigned i = 0; i < per_cpu; ++i) {
        auto entry = std::make_unique<Entry>();
        Entry& e = *entry;
        e.qid = cpu;
        e.fd = fd;
        e.payload_size = payload_size;
        e.buffer =
            std::make_unique_for_overwrite<char[]>(kPrefix + payload_size);
        e.iov[0] = {&e.header, sizeof(e.header)};
        e.iov[1] = {e.payload(), payload_size};
        if (int rc = io_uring_queue_init(4, &e.ring, IORING_SETUP_SQE128);
            rc < 0) {
          failure = std::string("io_uring_queue_init: ") + std::strerror(-rc);
          break;
        }
        e.ring_ready = true;
        entries_.push_back(std::move(entry));
        e.thread = std::thread([this, &e] { Serve(e); });
      }
    }
  } catch (const std::exception& ex) {  // bad_alloc, thread creation
    failure = ex.what();
  }
  if (failure.empty()) {
    phase_ = Phase::kPrepared;
    spdlog::info("mount: FUSE over io_uring, {} queues of {} entries", cpus,
                 per_cpu);
    return true;
  }
  phase_ = Phase::kStopping;  // the threads started end at once
  released_.notify_all();
  spdlog::warn(
      "mount: cannot set up FUSE over io_uring ({}); serving "
      "through /dev/fuse",
      failure);
  return false;
}

void FuseUring::Release(bool go) {
  std::lock_guard lock(mu_);
  if (phase_ != Phase::kPrepared) return;
  phase_ = go ? Phase::kRunning : Phase::kStopping;
  released_.notify_all();
}

void FuseUring::Serve(Entry& e) {
  {
    std::unique_lock lock(mu_);
    released_.wait(lock, [&] { return phase_ != Phase::kPrepared; });
    if (phase_ != Phase::kRunning) return;
  }
  NameThisThread("efs-ring-" + std::to_string(e.qid));
  cpu_set_t cpus;
  CPU_ZERO(&cpus);
  CPU_SET(e.qid, &cpus);
  if (int rc = pthread_setaffinity_np(pthread_self(), sizeof(cpus), &cpus);
      rc != 0) {
    spdlog::warn("io_uring queue {}: cannot pin to its CPU: {}", e.qid,
                 std::strerror(rc));
  }
  // A REGISTER the kernel refuses completes with an error and puts the
  // connection back on /dev/fuse.
  if (int rc = e.Submit(kCmdRegister, 0); rc < 0) {
    spdlog::error("io_uring queue {}: register: {}", e.qid, std::strerror(-rc));
    return;
  }
  while (!stopping_) {
    io_uring_cqe* cqe = nullptr;
    __kernel_timespec wait{.tv_sec = 1, .tv_nsec = 0};
    const int rc = io_uring_wait_cqe_timeout(&e.ring, &cqe, &wait);
    if (rc == -ETIME || rc == -EINTR) continue;
    if (rc < 0) {
      spdlog::error("io_uring queue {}: wait: {}", e.qid, std::strerror(-rc));
      break;
    }
    const int res = cqe->res;
    io_uring_cqe_seen(&e.ring, cqe);
    if (res < 0) {
      // ENOTCONN: the connection ended (unmount); anything else: the kernel
      // refused the entry.
      if (res != -ENOTCONN && res != -ECONNABORTED && res != -ECANCELED) {
        spdlog::error("io_uring queue {}: {}", e.qid, std::strerror(-res));
      }
      break;
    }
    Process(e);
    ++served_;
    if (int s = e.Submit(kCmdCommitAndFetch, e.header.ent.commit_id); s < 0) {
      spdlog::error("io_uring queue {}: commit: {}", e.qid, std::strerror(-s));
      break;
    }
  }
}

void FuseUring::Process(Entry& e) {
  fuse_in_header in;
  std::memcpy(&in, e.header.in_out, sizeof(in));
  const size_t payload = e.header.ent.payload_sz;
  e.unique = in.unique;
  e.replied = false;
  const size_t fixed = sizeof(in) + payload;
  if (in.len >= fixed && in.len - fixed <= sizeof(e.header.op_in) &&
      payload <= e.payload_size) {
    const size_t op_size = in.len - fixed;
    char* start = e.payload() - op_size - sizeof(in);
    std::memcpy(start, &in, sizeof(in));
    std::memcpy(start + sizeof(in), e.header.op_in, op_size);
    fuse_buf buf{};
    buf.mem = start;
    buf.size = in.len;
    current_ = &e;
    fuse_session_process_buf(session_, &buf);
    current_ = nullptr;
  } else {
    spdlog::error("io_uring queue {}: malformed request (opcode {}, len {})",
                  e.qid, in.opcode, in.len);
  }
  if (!e.replied) {
    fuse_out_header out{};
    out.len = sizeof(out);
    out.error = -EIO;
    out.unique = in.unique;
    std::memcpy(e.header.in_out, &out, sizeof(out));
    e.header.ent.payload_sz = 0;
  }
}

void FuseUring::Stop() {
  stopping_ = true;
  bool ran = false;
  {
    std::lock_guard lock(mu_);
    ran = phase_ == Phase::kRunning;
    phase_ = Phase::kStopping;  // from here on entries_ does not change
    released_.notify_all();
  }
  for (auto& e : entries_) {
    if (e->thread.joinable()) e->thread.join();
    if (e->ring_ready) io_uring_queue_exit(&e->ring);
    e->ring_ready = false;
  }
  if (ran) {
    spdlog::info("FUSE over io_uring served {} requests", served_.load());
  }
}

}  // namespace enclavefs
