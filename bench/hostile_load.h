// HostileLoad: connections that attack one server's front door while the
// load bench's legitimate clients use it (cairn bench load).
//
// Peers are dealt in turn to the kinds asked for, by default all five:
//   idle               connects and sends nothing; the handshake deadline
//                      should close it.
//   trickle-handshake  reads the server hello, then sends a client hello one
//                      byte every trickle_interval (a slowloris on the
//                      handshake); the handshake deadline should close it.
//   wrong-secret       completes the handshake with a secret that is not the
//                      job's, and reconnects each time the server closes it.
//                      A server proof sent to one of these is counted as
//                      `unexpected`: it would mean the check let it in.
//   trickle-frame      authenticates with the job's secret (a misbehaving
//                      holder of it), then sends a frame one byte every
//                      trickle_interval; the frame deadline should close it.
//   claim-huge         authenticates likewise, sends a well-formed frame
//                      header that claims `claimed_bytes` of data, and stalls.
// After the server closes a peer, it reconnects after reconnect_delay, so
// each kind keeps its pressure up for the whole window. The two
// authenticated kinds need the secret: without it they could not get past
// the handshake to send a frame at all.
//
// Everything runs on one thread of its own, a poll() loop over non-blocking
// sockets (bench/raw_client.h), between Begin and End.
//
// Thread-safety: Begin, End and stats are called from one controlling
// thread; stats may be read while the peers run.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "bench/latency_histogram.h"
#include "common/secret.h"
#include "common/status.h"

namespace cairn {

enum class HostileKind { kIdle, kTrickleHandshake, kWrongSecret, kTrickleFrame, kClaimHuge };
constexpr int kHostileKinds = 5;
const char* HostileKindName(HostileKind kind);
// A name above; InvalidArgument otherwise.
StatusOr<HostileKind> ParseHostileKind(const std::string& name);
std::vector<HostileKind> AllHostileKinds();
// Of `peers` dealt in turn to `kinds`, how many are of `kind`.
int PeersOfKind(int peers, const std::vector<HostileKind>& kinds, HostileKind kind);

struct HostileOptions {
  uint16_t port = 0;                                 // the server's, on 127.0.0.1
  int peers = 500;                                   // dealt in turn to the kinds
  std::vector<HostileKind> kinds = AllHostileKinds();
  std::shared_ptr<const Secret> secret;              // the job's: for the authenticated kinds (required)
  std::chrono::milliseconds trickle_interval{1000};  // between the bytes of a trickle
  std::chrono::milliseconds reconnect_delay{50};     // after the server closes a peer
  uint64_t claimed_bytes = uint64_t{1} << 30;        // data a claim-huge header claims (1 GiB)
};

// What one kind's peers saw, summed over every window so far.
struct HostileKindStats {
  uint64_t connects = 0;           // connections begun
  uint64_t connect_failures = 0;   // refused or reset before the server said anything
  uint64_t authenticated = 0;      // handshakes done with the job's secret (authenticated kinds)
  uint64_t closed_by_server = 0;   // the server closed (or reset) the connection
  uint64_t closed_at_end = 0;      // still open when a window ended
  uint64_t unexpected = 0;         // a reply the kind should never get (a proof to a wrong secret)
  LatencyHistogram held_us;        // connect to the server's close, each closed_by_server

  double HeldPercentile(double p) const { return held_us.Percentile(p) / 1e6; }  // seconds; 0 when none closed
};

class HostileLoad {
 public:
  // InvalidArgument without a secret, a port, peers or kinds.
  static StatusOr<std::unique_ptr<HostileLoad>> Make(HostileOptions options);
  ~HostileLoad();  // End()

  // Connects every peer and drives them until End. No-op while running.
  void Begin();
  // Stops the peers and closes their sockets. No-op unless running.
  void End();
  // Counters by kind (indexed by HostileKind), so far.
  std::vector<HostileKindStats> stats() const;

 private:
  class Peer;
  explicit HostileLoad(HostileOptions options);
  void Run();

  // Constant after construction.
  const HostileOptions options_;
  std::shared_ptr<const Secret> wrong_secret_;
  std::string claim_header_;   // the claim-huge peers' frame header
  std::string trickle_frame_;  // the trickle-frame peers' frame

  std::thread thread_;          // runs Run between Begin and End
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  std::vector<HostileKindStats> stats_;  // guarded by mu_
};

}  // namespace cairn
