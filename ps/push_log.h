// PushLog: applies each retried push once.
//
// A push is named by its PushKey. A client (one worker process) picks a
// random incarnation when it starts and numbers its pushes 1, 2, 3, ...;
// several may be in flight at once, so they can arrive out of order. When a
// push's reply is lost with its connection, the client sends it again with
// the same key, maybe on a new connection. The server asks Begin what to do
// with each push that arrives:
//
//   kApply    the first copy of this key: apply it, then call Finish(key, status)
//             with the result (and reply to it as usual);
//   kDone     a copy was applied (or refused) before: reply with *status, do
//             not apply;
//   kWaiting  the first copy is still being applied (a sync step waiting for
//             the other workers, say): PushLog keeps `reply` and Finish calls
//             it with the first copy's result.
//
// So every copy of a push gets the same answer, and the push takes effect at
// most once.
//
// Memory is bounded. For each client, (worker, incarnation), the results of
// its last `window` finished pushes are kept (8 bytes for an OK result, more
// for an error and its message: about 32 KiB a client and 32 MiB in all with
// the default options); a push with a sequence below all of those that is
// not in flight is answered kDone with Aborted: it cannot be told apart from
// one already applied. A first copy arriving that
// late would need `window` later pushes of the same client to finish before
// it, so with a window far above a client's pushes in flight this only
// refuses retries older than any call deadline. At most `max_clients`
// clients are remembered: a new one evicts the least recently seen client
// with nothing in flight. An evicted client is forgotten, so a retry from it
// would be applied again; max_clients must exceed the number of clients that
// push within one call deadline (workers x restarts), which the default
// does by far. Clients with pushes in flight are never evicted, so the count
// can exceed max_clients while more than that many have pushes in flight.
//
// Thread-safe: every call may come from any thread. Replies run on the
// thread that calls Finish or Clear, without PushLog's lock held, so a reply
// may call back into the PushLog.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <map>
#include <mutex>
#include <utility>
#include <vector>

#include "common/mutex.h"
#include "common/status.h"

namespace cairn {

// Names one push. A key with incarnation 0 or sequence 0 opts out of
// de-duplication (clients that predate it send zeros).
struct PushKey {
  int32_t worker = -1;
  uint64_t incarnation = 0;
  uint64_t sequence = 0;  // per client, from 1, increasing
};

class PushLog {
 public:
  struct Options {
    // Finished results kept per client (at least 1 is kept).
    size_t window = 4096;
    // Clients remembered (at least 1); see the file comment for the bound.
    size_t max_clients = 1024;
  };
  using Reply = std::function<void(const Status&)>;
  enum class Verdict { kApply, kDone, kWaiting };

  PushLog();  // default Options
  explicit PushLog(Options options);

  PushLog(const PushLog&) = delete;
  PushLog& operator=(const PushLog&) = delete;

  // Decides what to do with an arriving push (see the file comment).
  // *status is set on kDone only. `reply` is kept on kWaiting and dropped
  // otherwise. A key that opts out is always kApply.
  [[nodiscard]] Verdict Begin(const PushKey& key, Reply reply, Status* status);

  // Records the result of a push that Begin answered kApply, and runs the
  // replies of copies that waited for it. A no-op for a key that opts out;
  // must be called once per kApply, and for no other key.
  void Finish(const PushKey& key, const Status& status);

  // Forgets every finished result (after this server restored a snapshot,
  // the pushes before it are moot: a retry of one is applied to the restored
  // state). Copies waiting for a push in flight are answered with `status`.
  // Pushes still in flight stay known until their Finish: a retry of one
  // while it is applied waits for it rather than being applied beside it.
  void Clear(const Status& status);

 private:
  using ClientId = std::pair<int32_t, uint64_t>;  // (worker, incarnation)

  struct Client {
    std::list<ClientId>::iterator lru;                 // position in lru_
    std::map<uint64_t, std::vector<Reply>> in_flight;  // sequence -> copies waiting for it
    // The last window_ finished sequences, ascending, and the results of
    // those that failed: 8 bytes per OK push rather than a map node with a
    // Status, since a long job can leave ~max_clients full windows behind.
    std::deque<uint64_t> done;
    std::map<uint64_t, Status> failed;
    uint64_t pruned_through = 0;  // highest sequence dropped from done (0: none)
  };

  static bool Tracked(const PushKey& key) { return key.incarnation != 0 && key.sequence != 0; }
  Client& Touch(const ClientId& id) CAIRN_REQUIRES(mu_);
  void EvictOne() CAIRN_REQUIRES(mu_);
  void Record(Client& client, uint64_t sequence, const Status& status) CAIRN_REQUIRES(mu_);
  static bool Lookup(const Client& client, uint64_t sequence, Status* status);

  // Constant after construction.
  const size_t window_;
  const size_t max_clients_;

  Mutex mu_;
  std::map<ClientId, Client> clients_ CAIRN_GUARDED_BY(mu_);
  std::list<ClientId> lru_ CAIRN_GUARDED_BY(mu_);  // least recently seen first
};

}  // namespace cairn
