// RawSocketBench: the loopback TCP baseline a push/pull result is judged by.
//
// Plain blocking POSIX sockets on 127.0.0.1 with TCP_NODELAY, no Asio, no
// framing, no checksum, no allocation per call: one connection per
// (worker, server) pair, a client thread per pair that writes a message of
// the pair's size and waits for a tiny ack before writing the next (depth 1,
// like PsClient's synchronous calls), and a server thread per pair that reads
// the whole message into a buffer of that size and writes the ack.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "bench/timed_loop.h"
#include "common/status.h"

namespace cairn {

struct RawSocketOptions {
  int workers = 1;                      // client threads per server
  // Bytes a worker sends server s per call, one entry per server: a value's
  // slice sizes. Default: one server, 1 MiB.
  std::vector<uint64_t> message_bytes = {uint64_t{1} << 20};
  uint32_t ack_bytes = 8;               // the reply to each message
};

// Connections stay open between measurements, so several rounds can be
// interleaved with other workloads. Not thread-safe: one Measure at a time.
class RawSocketBench {
 public:
  // Connects every pair and starts its server thread. Unavailable if a
  // socket cannot be set up; InvalidArgument for empty options.
  static StatusOr<std::unique_ptr<RawSocketBench>> Start(const RawSocketOptions& options);
  ~RawSocketBench();  // closes every pair and joins the server threads

  // Runs every pair at once; each call counts its message's bytes.
  StatusOr<Measurement> Measure(const TimedLoopOptions& timing);

 private:
  class Pair;
  RawSocketBench() = default;
  std::vector<std::unique_ptr<Pair>> pairs_;
  std::vector<TimedTask> tasks_;  // one per pair
};

}  // namespace cairn
