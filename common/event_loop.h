// EventLoop: the process's one asio::io_context and the threads that run it.
//
// Servers, transports and benchmarks in a process share one EventLoop; each
// connection serializes its own handlers on a strand of it. Destruction stops
// the loop and joins its threads, so it must outlive everything using it.
#pragma once

#include <optional>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

namespace cairn {

class EventLoop {
 public:
  // Starts `threads` threads (at least 1) running the io_context.
  explicit EventLoop(int threads);
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  boost::asio::io_context& io() { return io_; }
  // Stops the io_context and joins the threads. Idempotent.
  void Stop();

 private:
  boost::asio::io_context io_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
  std::vector<std::thread> threads_;
};

}  // namespace cairn
