// Transport: how a worker sends requests to parameter servers.
//
// One implementation speaks TCP through Asio (AsioTransport); tests wrap it to
// inject faults (FaultTransport). Every call has a deadline, and its callback
// runs exactly once: with the reply frame, or with an error by the deadline.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include "common/frame.h"
#include "common/status.h"

namespace cairn {

using Clock = std::chrono::steady_clock;
using Deadline = Clock::time_point;

inline Deadline DeadlineAfter(std::chrono::milliseconds d) { return Clock::now() + d; }

class Transport {
 public:
  using Callback = std::function<void(StatusOr<InFrame>)>;

  virtual ~Transport() = default;
  virtual int num_servers() const = 0;

  // Sends `frame` (its request_id is assigned here; Seal() is done here) to
  // server `server`, and calls `done` once with the reply or an error.
  // `done` runs on a transport thread: it must not block.
  virtual void Call(int server, OutFrame frame, Deadline deadline, Callback done) = 0;

  // Connections opened to servers after a lost one, over the transport's
  // life: a change tells a client to ask whether a server restarted.
  virtual uint64_t reconnects() const { return 0; }
};

// Calls sent at once and answered later: Start sends every (server, frame)
// without waiting; Wait blocks until every reply (or error) is in and returns
// them in the order given. Calls to one server go out in the order given, on
// its one connection. Wait may be called once; a group dropped unwaited lets
// its calls run to their end unobserved. Movable, not copyable.
class CallGroup {
 public:
  static CallGroup Start(Transport& transport, std::vector<std::pair<int, OutFrame>> calls, Deadline deadline);
  std::vector<StatusOr<InFrame>> Wait();

 private:
  struct State;
  explicit CallGroup(std::shared_ptr<State> state) : state_(std::move(state)) {}
  std::shared_ptr<State> state_;
};

// CallGroup::Start(...).Wait(): blocks the calling thread.
std::vector<StatusOr<InFrame>> CallAll(Transport& transport, std::vector<std::pair<int, OutFrame>> calls,
                                       Deadline deadline);

}  // namespace cairn
