#include "common/event_loop.h"

namespace cairn {

EventLoop::EventLoop(int threads) : work_(boost::asio::make_work_guard(io_)) {
  if (threads < 1) threads = 1;
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { io_.run(); });
}

EventLoop::~EventLoop() { Stop(); }

void EventLoop::Stop() {
  work_.reset();
  io_.stop();
  for (std::thread& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
}

}  // namespace cairn
