#pragma once
// The background workers of one cache: background refreshes (stale-while-
// revalidate, early expiration) and loads that outlive their caller's timeout.
//
// - Bounded: at most `threads` workers, started on first use, and at most
//   `queue` jobs waiting; a full queue refuses new work rather than grow.
// - Shutdown (the destructor, or stop()) drops the jobs not yet started and
//   waits for the running ones, so a refresh never runs against a destroyed cache.

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace cachet {

struct ExecutorOptions {
  std::size_t threads = 2;    // workers, started when the first job arrives
  std::size_t queue = 1024;   // jobs waiting for a worker; more are refused
};

class Executor {
 public:
  using Job = std::function<void()>;

  explicit Executor(ExecutorOptions options = {})
      : options_{std::max<std::size_t>(options.threads, 1), std::max<std::size_t>(options.queue, 1)} {}
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;
  ~Executor() { stop(); }

  // Queues `job` unless the queue is full or the executor stopped (false).
  bool try_submit(Job job) { return submit_until(std::move(job), std::chrono::steady_clock::time_point::min()); }

  // Queues `job`, waiting until `deadline` for room in the queue; false if none came.
  bool submit_until(Job job, std::chrono::steady_clock::time_point deadline) {
    std::unique_lock lock(mutex_);
    if (!room_.wait_until(lock, deadline, [&] { return stopping_ || jobs_.size() < options_.queue; })) return false;
    if (stopping_) return false;
    jobs_.push_back(std::move(job));
    if (workers_.size() < options_.threads && jobs_.size() > idle_) workers_.emplace_back([this] { work(); });
    work_.notify_one();
    return true;
  }

  // Waits until no job is queued or running (for tests and orderly hand-overs).
  void wait_idle() {
    std::unique_lock lock(mutex_);
    idle_cv_.wait(lock, [&] { return jobs_.empty() && running_ == 0; });
  }

  // Drops queued jobs, waits for running ones, joins the workers. Idempotent.
  void stop() {
    std::vector<std::thread> workers;
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
      jobs_.clear();
      workers.swap(workers_);
    }
    work_.notify_all();
    room_.notify_all();
    for (auto& t : workers) t.join();
  }

  std::size_t queued() const {
    std::lock_guard lock(mutex_);
    return jobs_.size();
  }
  std::size_t threads() const {
    std::lock_guard lock(mutex_);
    return workers_.size();
  }

 private:
  void work() {
    std::unique_lock lock(mutex_);
    for (;;) {
      ++idle_;
      work_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
      --idle_;
      if (jobs_.empty()) return;  // stopping
      Job job = std::move(jobs_.front());
      jobs_.pop_front();
      ++running_;
      room_.notify_one();
      lock.unlock();
      try {
        job();
      } catch (...) {  // a job reports its own failures; one that throws must not end the worker
      }
      job = nullptr;  // destroy its captures before the next wait
      lock.lock();
      --running_;
      if (jobs_.empty() && running_ == 0) idle_cv_.notify_all();
    }
  }

  ExecutorOptions options_;
  mutable std::mutex mutex_;
  std::condition_variable work_, room_, idle_cv_;
  std::deque<Job> jobs_;
  std::vector<std::thread> workers_;
  std::size_t idle_ = 0, running_ = 0;
  bool stopping_ = false;
};

}  // namespace cachet
