// FaultTransport: a Transport that passes calls on to another one and injects
// the faults a test plans, as leveldb's FaultInjectionTestEnv wraps Env.
//
// The plan is a list of rules set by the test; each names the calls it
// matches (a server, a request type, or any) and fires on the Nth matching
// call made after it was set, then is spent:
//
//   DropReply  the request goes to the server (and is applied there); its
//              reply is thrown away and the caller gets Unavailable, as if
//              the connection died just before the reply came back. The
//              error is delivered once the reply is in, so the server has
//              finished the request by then.
//   DelayReply the reply is held for `delay` after it comes in. Past the
//              call's deadline the caller gets DeadlineExceeded naming the
//              server, at the deadline; the late reply is thrown away.
//   Duplicate  the request is sent a second time (a copy of the same frame,
//              so a push keeps its worker, incarnation and sequence) once
//              the first reply is in, as a retry after a lost reply would
//              be; the caller gets the second reply, which for a push the
//              server answers from its push log. The first reply is thrown
//              away: the caller's callback still runs exactly once.
//   Cut        the next `calls` calls to a server fail with Unavailable
//              without being sent, as over a cut connection. Calls that a
//              cut fails are not counted by the rules above.
//
// Rules are checked in the order they were set. A call takes at most one
// fault: a rule that comes due on a call an earlier rule took fires on its
// next matching call instead. Everything is deterministic: no randomness,
// no timing other than the delays asked for.
//
// Every call still keeps the Transport contract: its callback runs exactly
// once, by the deadline. Callbacks of faulted calls run on this transport's
// timer thread or on the inner transport's threads; those of calls no rule
// touches are the inner transport's own.
//
// reconnects() is the inner transport's count plus one for each connection
// loss simulated: a dropped reply, and a cut once its last call has failed
// (so a PsClient asks the servers who they are, as after a real reconnect).
//
// Thread-safe: calls and plan changes may come from any thread. Destroying
// the transport fails the faulted calls still pending with Cancelled; when
// it returns, every faulted call's callback has run. Calls no rule touched
// are the inner transport's: if it is owned it is destroyed here, which
// cancels them (see AsioTransport); a borrowed one answers them in its time.
// A callback must not destroy the transport it was called by.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <thread>

#include "common/frame.h"
#include "common/transport.h"

namespace cairn {

// Which calls a rule applies to.
struct FaultMatch {
  int server = -1;                // -1: every server
  std::optional<FrameType> type;  // unset: every request type
};

// The calls each kind of fault was applied to, over the transport's life.
struct FaultCounts {
  uint64_t dropped = 0;     // DropReply (the reply is thrown away if one comes)
  uint64_t delayed = 0;     // DelayReply, delivered in time or not
  uint64_t duplicated = 0;  // Duplicate (the copy goes only if the first reply comes)
  uint64_t cut = 0;         // Cut: failed without being sent
};

class FaultTransport : public Transport {
 public:
  // Borrows `inner`, which must outlive this transport.
  explicit FaultTransport(Transport* inner);
  // Owns `inner`; it is destroyed with this transport.
  explicit FaultTransport(std::unique_ptr<Transport> inner);
  ~FaultTransport() override;

  FaultTransport(const FaultTransport&) = delete;
  FaultTransport& operator=(const FaultTransport&) = delete;

  int num_servers() const override;
  void Call(int server, OutFrame frame, Deadline deadline, Callback done) override;
  uint64_t reconnects() const override;

  // The plan (see the file comment). `nth` counts from 1: the next matching
  // call. A non-positive `nth` or `calls` adds nothing.
  void DropReply(FaultMatch match, int nth = 1);
  void DelayReply(FaultMatch match, std::chrono::milliseconds delay, int nth = 1);
  void Duplicate(FaultMatch match, int nth = 1);
  // Adds to a cut already in place for `server`.
  void Cut(int server, int calls);
  // Forgets every rule and cut not yet applied; faults already applied run
  // their course.
  void ClearFaults();

  FaultCounts counts() const;
  // Rules not yet fired plus calls still to be failed by cuts: 0 once the
  // whole plan has been applied.
  int pending_faults() const;

 private:
  struct Core;
  std::unique_ptr<Transport> owned_;  // null if the inner transport is borrowed
  std::shared_ptr<Core> core_;        // shared with callbacks that may outlive this object
  std::thread timer_thread_;          // runs delayed deliveries and deadlines
};

}  // namespace cairn
