// ConnectBench: what the connection handshake costs on its own.
//
// One client thread opens a connection to a one-server LocalCluster on
// 127.0.0.1, runs the handshake (bench/raw_client.h, the same codec an
// AsioTransport runs) and closes it, then the next: with the job's secret
// against a server that requires it, and without one against a server
// started insecure. The insecure handshake still exchanges the same three
// messages (zero MACs, common/handshake.h), so the difference is the HMACs
// and their checks, not a round trip. The two servers run on one EventLoop
// thread each and are measured in alternating blocks, so both see the same
// machine.
#pragma once

#include <cstdint>
#include <vector>

#include "bench/timed_loop.h"
#include "common/status.h"

namespace cairn {

struct ConnectBenchOptions {
  int connects = 2000;      // measured per mode
  int block = 100;          // connects in a row before switching modes
  int warmup = 50;          // per mode, not counted
  bool authenticated = true;  // measure the handshake with the secret
  bool insecure = true;       // and without
};

// One mode: `m.calls` connects over `m.seconds`, each connect-to-close
// latency, and this process's CPU (client and server both) over the blocks.
struct ConnectCost {
  bool authenticated = false;
  Measurement m;
  double per_second() const { return m.seconds > 0 ? static_cast<double>(m.calls) / m.seconds : 0.0; }
};

// The modes asked for, authenticated first. The first failed connect or
// handshake is returned.
StatusOr<std::vector<ConnectCost>> RunConnectBench(const ConnectBenchOptions& options);

}  // namespace cairn
