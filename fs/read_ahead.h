// ReadAhead: background fetches of the data blocks a sequential reader will
// ask for next, so the host round trip and the decryption of block i+1 overlap
// the reader's use of block i.
//
// The owner (Volume) queues batches of block pointers; each worker thread
// takes one batch at a time and runs the owner's fetch function on it (one
// host Get, verification, insertion into the cache). A reader that misses
// the cache calls WaitFor first, so it never fetches a block that a worker is
// already bringing in. Each batch has its own condition variable, so a
// finished batch wakes only the readers waiting for one of its blocks.
//
// Thread safety: every method is safe to call concurrently. The destructor
// drops queued batches, waits for running ones and joins the workers, so the
// fetch function must stay callable until then.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "fs/btree.h"

namespace enclavefs {

class ReadAhead {
 public:
  using FetchFn = std::function<void(const std::vector<BlockPtr>&)>;

  ReadAhead(size_t workers, FetchFn fetch);
  ~ReadAhead();
  ReadAhead(const ReadAhead&) = delete;
  ReadAhead& operator=(const ReadAhead&) = delete;

  // Queues a fetch of `ptrs`, less the blocks already queued or running.
  void Schedule(std::vector<BlockPtr> ptrs);
  // Returns once no fetch of block `name` is queued or running.
  void WaitFor(const std::string& name);

 private:
  struct Fetched {
    std::condition_variable cv;  // notified once `done` is set
    bool done = false;           // GUARDED_BY(mu_)
  };
  struct Batch {
    std::vector<BlockPtr> ptrs;
    std::shared_ptr<Fetched> fetched;
  };

  void WorkerLoop();
  // Ends the batch's wait: its blocks are cached or failed. REQUIRES mu_.
  void Finish(const Batch& batch);

  const FetchFn fetch_;
  std::mutex mu_;
  std::condition_variable work_cv_;  // a batch was queued, or stopping
  std::deque<Batch> queue_;          // GUARDED_BY(mu_)
  // Each queued or running block's batch; GUARDED_BY(mu_).
  std::unordered_map<std::string, std::shared_ptr<Fetched>> in_flight_;
  bool stopping_ = false;  // GUARDED_BY(mu_)
  std::vector<std::thread> workers_;
};

}  // namespace enclavefs
