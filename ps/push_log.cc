#include "ps/push_log.h"

#include <algorithm>
#include <cassert>
#include <string>

namespace cairn {
namespace {

Status TooOld(const PushKey& key, uint64_t pruned_through, size_t window) {
  return Aborted("push " + std::to_string(key.sequence) + " of worker " + std::to_string(key.worker) +
                 " (incarnation " + std::to_string(key.incarnation) +
                 ") is older than the de-duplication window (this server keeps the results of the worker's last " +
                 std::to_string(window) + " pushes and has forgotten those up to " + std::to_string(pruned_through) +
                 "), so it cannot be told apart from one already applied; it was not applied");
}

}  // namespace

PushLog::PushLog() : PushLog(Options{}) {}

PushLog::PushLog(Options options)
    : window_(std::max<size_t>(options.window, 1)), max_clients_(std::max<size_t>(options.max_clients, 1)) {}

PushLog::Verdict PushLog::Begin(const PushKey& key, Reply reply, Status* status) {
  if (!Tracked(key)) return Verdict::kApply;
  MutexLock lock(mu_);
  Client& client = Touch({key.worker, key.incarnation});
  // In flight first: after Clear a sequence may be in flight below pruned_through.
  if (auto it = client.in_flight.find(key.sequence); it != client.in_flight.end()) {
    it->second.push_back(std::move(reply));
    return Verdict::kWaiting;
  }
  if (Lookup(client, key.sequence, status)) return Verdict::kDone;
  if (key.sequence <= client.pruned_through) {
    *status = TooOld(key, client.pruned_through, window_);
    return Verdict::kDone;
  }
  client.in_flight.emplace(key.sequence, std::vector<Reply>{});
  return Verdict::kApply;
}

void PushLog::Finish(const PushKey& key, const Status& status) {
  if (!Tracked(key)) return;
  std::vector<Reply> waiting;
  {
    MutexLock lock(mu_);
    // Clients and sequences in flight are never evicted or cleared, so a
    // miss means Finish without a kApply: a bug in the caller.
    auto client = clients_.find({key.worker, key.incarnation});
    assert(client != clients_.end() && "PushLog::Finish without Begin");
    if (client == clients_.end()) return;
    auto it = client->second.in_flight.find(key.sequence);
    assert(it != client->second.in_flight.end() && "PushLog::Finish called twice or without Begin");
    if (it == client->second.in_flight.end()) return;
    waiting = std::move(it->second);
    client->second.in_flight.erase(it);
    Record(client->second, key.sequence, status);
  }
  // Replies send on sockets, and may re-enter Begin.
  for (Reply& reply : waiting) {
    if (reply) reply(status);
  }
}

void PushLog::Clear(const Status& status) {
  std::vector<Reply> waiting;
  {
    MutexLock lock(mu_);
    for (auto it = clients_.begin(); it != clients_.end();) {
      Client& client = it->second;
      for (auto& [sequence, replies] : client.in_flight) {
        for (Reply& reply : replies) waiting.push_back(std::move(reply));
        replies.clear();
      }
      if (client.in_flight.empty()) {
        lru_.erase(client.lru);
        it = clients_.erase(it);
        continue;
      }
      client.done.clear();
      client.failed.clear();
      client.pruned_through = 0;
      ++it;
    }
  }
  for (Reply& reply : waiting) {
    if (reply) reply(status);
  }
}

PushLog::Client& PushLog::Touch(const ClientId& id) {
  auto it = clients_.find(id);
  if (it != clients_.end()) {
    lru_.splice(lru_.end(), lru_, it->second.lru);
    return it->second;
  }
  if (clients_.size() >= max_clients_) EvictOne();
  Client& client = clients_[id];
  client.lru = lru_.insert(lru_.end(), id);
  return client;
}

void PushLog::EvictOne() {
  // Forgetting a client with a push in flight would lose its waiting
  // replies and let a retry apply beside it; such clients are skipped.
  for (auto it = lru_.begin(); it != lru_.end(); ++it) {
    auto client = clients_.find(*it);
    if (!client->second.in_flight.empty()) continue;
    clients_.erase(client);
    lru_.erase(it);
    return;
  }
}

void PushLog::Record(Client& client, uint64_t sequence, const Status& status) {
  // Pushes finish nearly in order, so the insert lands near the back of the deque.
  client.done.insert(std::upper_bound(client.done.begin(), client.done.end(), sequence), sequence);
  if (!status.ok()) client.failed.emplace(sequence, status);
  while (client.done.size() > window_) {
    const uint64_t oldest = client.done.front();
    client.done.pop_front();
    client.failed.erase(oldest);
    client.pruned_through = std::max(client.pruned_through, oldest);
  }
}

bool PushLog::Lookup(const Client& client, uint64_t sequence, Status* status) {
  if (!std::binary_search(client.done.begin(), client.done.end(), sequence)) return false;
  auto failed = client.failed.find(sequence);
  *status = failed == client.failed.end() ? Status::OK() : failed->second;
  return true;
}

}  // namespace cairn
