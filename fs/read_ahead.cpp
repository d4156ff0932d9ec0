#include "fs/read_ahead.h"

namespace enclavefs {

ReadAhead::ReadAhead(size_t workers, FetchFn fetch) : fetch_(std::move(fetch)) {
  for (size_t i = 0; i < workers; ++i) {
    workers_.emplace_back([this] { WorkerLoop(); });
  }
}

ReadAhead::~ReadAhead() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    for (const auto& batch : queue_) {
      for (const auto& ptr : batch) in_flight_.erase(ptr.name);
    }
    queue_.clear();
  }
  work_cv_.notify_all();
  done_cv_.notify_all();
  for (auto& worker : workers_) worker.join();
}

void ReadAhead::Schedule(std::vector<BlockPtr> ptrs) {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    std::erase_if(ptrs, [this](const BlockPtr& ptr) {
      return !in_flight_.insert(ptr.name).second;
    });
    if (ptrs.empty()) return;
    queue_.push_back(std::move(ptrs));
  }
  work_cv_.notify_one();
}

void ReadAhead::WaitFor(const std::string& name) {
  std::unique_lock lock(mu_);
  done_cv_.wait(lock, [&] { return !in_flight_.contains(name); });
}

void ReadAhead::WorkerLoop() {
  std::unique_lock lock(mu_);
  while (true) {
    work_cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping
    std::vector<BlockPtr> batch = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    fetch_(batch);
    lock.lock();
    for (const auto& ptr : batch) in_flight_.erase(ptr.name);
    done_cv_.notify_all();
  }
}

}  // namespace enclavefs
