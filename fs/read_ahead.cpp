#include "fs/read_ahead.h"

#include "blockstore/logging.h"

namespace enclavefs {

ReadAhead::ReadAhead(size_t workers, FetchFn fetch) : fetch_(std::move(fetch)) {
  for (size_t i = 0; i < workers; ++i) {
    workers_.emplace_back([this] {
      NameThisThread("efs-readahead");
      WorkerLoop();
    });
  }
}

ReadAhead::~ReadAhead() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    for (const auto& batch : queue_) Finish(batch);
    queue_.clear();
  }
  work_cv_.notify_all();
  for (auto& worker : workers_) worker.join();
}

void ReadAhead::Schedule(std::vector<BlockPtr> ptrs) {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    auto fetched = std::make_shared<Fetched>();
    std::erase_if(ptrs, [&](const BlockPtr& ptr) {
      return !in_flight_.emplace(ptr.name, fetched).second;
    });
    if (ptrs.empty()) return;
    queue_.push_back(Batch{std::move(ptrs), std::move(fetched)});
  }
  work_cv_.notify_one();
}

void ReadAhead::WaitFor(const std::string& name) {
  std::unique_lock lock(mu_);
  auto it = in_flight_.find(name);
  if (it == in_flight_.end()) return;
  std::shared_ptr<Fetched> fetched = it->second;
  fetched->cv.wait(lock, [&] { return fetched->done; });
}

void ReadAhead::Finish(const Batch& batch) {
  for (const auto& ptr : batch.ptrs) in_flight_.erase(ptr.name);
  batch.fetched->done = true;
  batch.fetched->cv.notify_all();
}

void ReadAhead::WorkerLoop() {
  std::unique_lock lock(mu_);
  while (true) {
    work_cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping
    Batch batch = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    fetch_(batch.ptrs);
    lock.lock();
    Finish(batch);
  }
}

}  // namespace enclavefs
