// FuseUring: FUSE requests over io_uring (Linux 6.14 and later), with one
// request queue per CPU, under libfuse 3.14, which predates it.
//
// Why: over /dev/fuse every request wakes a daemon thread that the scheduler
// often runs on another CPU, and the reply wakes the caller back there. On a
// VM, waking an idle vCPU costs tens of microseconds, more than most
// requests' work (docs/performance.md, "Every FUSE request costs a cross-CPU
// wake-up"). Over io_uring the kernel queues a request on the queue of the
// CPU its caller runs on; each queue here is served by threads pinned to
// that CPU, so the request and its reply stay on one CPU.
//
// How it plugs in: it is the session's custom I/O (fuse_session_custom_io).
// The session's /dev/fuse loop keeps running: INIT, FORGET and INTERRUPT
// always come that way, and so does everything until the rings are ready.
// When the kernel offers io_uring in INIT, the rings and their threads (one
// per ring entry, up to kEntriesPerCpu per possible CPU) are set up first; only
// if that worked is the INIT reply amended to accept io_uring. After the reply
// each thread registers its entry, hands every request it gets to
// fuse_session_process_buf, and sends the handler's reply, caught in
// Writev, back with the fetch of its next request. Notifications still go
// to /dev/fuse. The kernel offers io_uring from Linux 6.14 when
// /sys/module/fuse/parameters/enable_uring is Y; otherwise, or if the rings
// cannot be set up, requests go through /dev/fuse as without this class.
// The daemon never changes that kernel setting itself.
//
// Ownership and threads: owned by FuseServer. Read and Writev may be called
// from any thread; a reply is routed to a ring only from the thread that
// received its request (every handler here replies before returning). Stop
// ends and joins the ring threads; call it after the session loop returned
// and before the session is destroyed.
#pragma once

#include <sys/types.h>
#include <sys/uio.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

struct fuse_session;  // libfuse

namespace enclavefs {

class FuseUring {
 public:
  // Ring entries, and so threads, per CPU: requests handled at once on one
  // CPU. A handler may wait for the host, so one would stall its CPU's
  // callers behind it. Fewer on machines with many CPUs, so that all
  // queues together have at most kMaxEntries (each holds a buffer of the
  // largest request, 1 MiB here, touched only as far as requests fill it).
  static constexpr unsigned kEntriesPerCpu = 4;
  static constexpr unsigned kMaxEntries = 64;

  explicit FuseUring(fuse_session* session);
  ~FuseUring();  // Stop()
  FuseUring(const FuseUring&) = delete;
  FuseUring& operator=(const FuseUring&) = delete;

  // The session's custom I/O (fuse_custom_io's read and writev): read(2)
  // and writev(2) on /dev/fuse, except that the INIT exchange is watched
  // and a reply to a ring request is stored in its ring entry.
  ssize_t Read(int fd, void* buf, size_t len);
  ssize_t Writev(int fd, struct iovec* iov, int count);

  // Ends and joins the ring threads and says how many requests they
  // served. Idempotent.
  void Stop();

 private:
  struct Entry;
  // The ring entry whose request this thread is handling, if any.
  static thread_local Entry* current_;

  // Creates the rings and their threads, which wait for Release. False
  // (after saying why) if any part failed; nothing is left running then.
  bool Prepare(int fd, size_t payload_size);
  // Lets the prepared threads register (`go`) or end.
  void Release(bool go);
  void Serve(Entry& entry);
  // Hands the request in `entry` to libfuse and stores its reply there.
  void Process(Entry& entry);

  fuse_session* const session_;
  // INIT's, once seen offering io_uring; 0 before, or if not offered.
  std::atomic<uint64_t> init_unique_{0};
  std::atomic<uint64_t> served_{0};
  std::atomic<bool> stopping_{false};

  std::mutex mu_;
  std::condition_variable released_;
  enum class Phase { kIdle, kPrepared, kRunning, kStopping };
  Phase phase_ = Phase::kIdle;                   // GUARDED_BY(mu_)
  std::vector<std::unique_ptr<Entry>> entries_;  // GUARDED_BY(mu_)
};

}  // namespace enclavefs
