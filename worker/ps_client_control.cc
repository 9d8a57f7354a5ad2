// PsClient's control calls: creating and declaring variables and sparse
// tables, Hello and restarts, stats, and the snapshot protocol. The data
// path (Pull, Push, SparsePull, SparsePush) is in ps_client.cc.
#include "worker/ps_client.h"

#include <algorithm>
#include <thread>

#include <spdlog/spdlog.h>

#include "worker/ps_client_reply.h"

namespace cairn {

using ps_client_internal::DecodeReply;
using ps_client_internal::ServerContext;

// One CreateVariables per server, (server, frame); the first refusal, naming
// its server. Only the chief creates variables: a server that does not hold
// them yet answers another worker's declaration with Unavailable, and the
// declaration is sent again (backing off) until the chief's arrives or the
// deadline passes.
Status PsClient::SendCreates(std::vector<std::pair<int, OutFrame>> calls) {
  const Deadline deadline = NextDeadline();
  const auto start = Clock::now();
  auto backoff = std::chrono::milliseconds(20);
  bool said = false;
  while (!calls.empty()) {
    std::vector<int> servers;
    for (const auto& c : calls) servers.push_back(c.first);
    std::vector<std::pair<int, OutFrame>> again;
    auto replies = CallAll(*transport_, calls, deadline);
    Status waiting;
    for (size_t i = 0; i < replies.size(); ++i) {
      StatusReply r;
      Status st = DecodeReply(replies[i], &r, "CreateVariables");
      if (st.code() == StatusCode::kUnavailable && replies[i].ok() && Clock::now() < deadline) {
        waiting = st;
        again.push_back(std::move(calls[i]));
        continue;
      }
      if (!st.ok()) return st.WithContext(ServerContext(FrameType::kCreateVariables, servers[i]));
    }
    if (again.empty()) break;
    if (!said && Clock::now() - start > std::chrono::seconds(5)) {
      spdlog::info("worker {}: waiting for the chief to create the variables ({})", options_.worker_id,
                   waiting.message());
      said = true;
    }
    if (Clock::now() + backoff >= deadline) {
      return DeadlineExceeded("gave up waiting after " +
                              std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                 Clock::now() - start).count()) +
                              " ms: " + waiting.message());
    }
    std::this_thread::sleep_for(backoff);
    backoff = std::min(backoff * 2, std::chrono::milliseconds(500));
    calls = std::move(again);
  }
  return Status::OK();
}

Status PsClient::CheckCreated(const char* what) const {
  if (!placement_) return FailedPrecondition(std::string(what) + " before the variables were created (Create)");
  return Status::OK();
}

Status PsClient::Create(const std::vector<VariableSpec>& specs, const OptimizerSpec& optimizer,
                        const TrainingMode& mode) {
  RETURN_IF_ERROR(Hello().status());  // the right servers, in the right order, before any shard is declared
  ASSIGN_OR_RETURN(Placement placement, Placement::Compute(specs, transport_->num_servers(), options_.placement));
  std::vector<std::pair<int, OutFrame>> calls;
  std::vector<std::string> creates;
  for (int s = 0; s < placement.num_servers(); ++s) {
    CreateRequest req;
    req.mode = mode;
    for (const auto& [name, slice] : placement.SlicesOnServer(s)) {
      ASSIGN_OR_RETURN(VariableSpec spec, placement.SpecOf(name));
      req.shards.push_back(ShardDecl{spec, slice.row_begin, slice.row_end, optimizer});
    }
    OutFrame f;
    f.type = static_cast<uint16_t>(FrameType::kCreateVariables);
    f.control = EncodeMessage(req);
    creates.push_back(f.control);
    calls.emplace_back(s, std::move(f));
  }
  RETURN_IF_ERROR(SendCreates(std::move(calls)));
  placement_ = std::move(placement);
  mode_ = mode;
  next_step_ = 0;
  std::lock_guard<std::mutex> lock(restarts_mu_);
  creates_ = std::move(creates);
  return Status::OK();
}

StatusOr<int32_t> PsClient::SparseDim(const std::string& name) const {
  auto it = sparse_dims_.find(name);
  if (it == sparse_dims_.end()) return NotFound("sparse table '" + name + "' was never declared (CreateSparse)");
  return it->second;
}

Status PsClient::CreateSparse(const std::vector<SparseTableSpec>& tables, const OptimizerSpec& optimizer) {
  RETURN_IF_ERROR(CheckCreated("CreateSparse"));
  for (const SparseTableSpec& t : tables) RETURN_IF_ERROR(ValidateSparseSpec(t));
  std::vector<std::pair<int, OutFrame>> calls;
  std::vector<std::string> creates;
  {
    std::lock_guard<std::mutex> lock(restarts_mu_);
    creates = creates_;
  }
  for (int s = 0; s < transport_->num_servers(); ++s) {
    // What the server was told at Create, and these tables: a server that
    // restarts is told both again (CheckForRestarts).
    CreateRequest req;
    if (static_cast<size_t>(s) < creates.size()) RETURN_IF_ERROR(DecodeMessage(creates[s], &req, "CreateRequest"));
    req.mode = mode_;
    for (const SparseTableSpec& t : tables) {
      SparseTableDecl decl{t, optimizer};
      if (std::find(req.sparse_tables.begin(), req.sparse_tables.end(), decl) == req.sparse_tables.end()) {
        req.sparse_tables.push_back(decl);
      }
    }
    OutFrame f;
    f.type = static_cast<uint16_t>(FrameType::kCreateVariables);
    f.control = EncodeMessage(req);
    if (static_cast<size_t>(s) < creates.size()) creates[s] = f.control;
    calls.emplace_back(s, std::move(f));
  }
  RETURN_IF_ERROR(SendCreates(std::move(calls)));
  for (const SparseTableSpec& t : tables) sparse_dims_[t.name] = t.dim;
  std::lock_guard<std::mutex> lock(restarts_mu_);
  creates_ = std::move(creates);
  return Status::OK();
}

StatusOr<StatsReply> PsClient::Stats(int server) {
  OutFrame f;
  f.type = static_cast<uint16_t>(FrameType::kStats);
  std::vector<std::pair<int, OutFrame>> calls;
  calls.emplace_back(server, std::move(f));
  auto replies = CallAll(*transport_, std::move(calls), NextDeadline());
  StatsReply r;
  Status st = DecodeReply(replies[0], &r, "Stats");
  if (!st.ok()) return st.WithContext(ServerContext(FrameType::kStats, server));
  return r;
}

StatusOr<std::vector<HelloReply>> PsClient::Hello() {
  std::vector<HelloReply> out;
  RETURN_IF_ERROR(CallEveryServer<HelloReply>(FrameType::kHello, HelloRequest{options_.worker_id, options_.cluster},
                                              NextDeadline(), [&](const HelloReply& r) { out.push_back(r); }));
  for (size_t s = 0; s < out.size(); ++s) {
    if (out[s].server_index != static_cast<int32_t>(s)) {
      return FailedPrecondition("worker " + std::to_string(options_.worker_id) + " dialed server " +
                                std::to_string(s) + " and reached server " + std::to_string(out[s].server_index) +
                                ": the workers and servers list the servers in different orders");
    }
  }
  return out;
}

StatusOr<std::vector<PsClient::ServerRestart>> PsClient::CheckForRestarts() {
  std::lock_guard<std::mutex> lock(restarts_mu_);
  const uint64_t reconnects = transport_->reconnects();
  if (!incarnations_.empty() && reconnects == seen_reconnects_) return std::vector<ServerRestart>{};
  ASSIGN_OR_RETURN(std::vector<HelloReply> hellos, Hello());
  seen_reconnects_ = reconnects;
  std::vector<ServerRestart> restarts;
  const bool first = incarnations_.empty();
  incarnations_.resize(hellos.size(), 0);
  for (size_t i = 0; i < hellos.size(); ++i) {
    if (!first && incarnations_[i] != hellos[i].incarnation) {
      restarts.push_back(ServerRestart{static_cast<int>(i), hellos[i].restored_step, hellos[i].variables});
    }
    incarnations_[i] = hellos[i].incarnation;
  }
  // A restarted server holds what its snapshot had; declaring the variables
  // again (idempotent) adds those a snapshot leaves out, at their initial
  // values.
  std::vector<std::pair<int, OutFrame>> calls;
  for (const ServerRestart& r : restarts) {
    if (static_cast<size_t>(r.server) >= creates_.size()) continue;
    OutFrame f;
    f.type = static_cast<uint16_t>(FrameType::kCreateVariables);
    f.control = creates_[r.server];
    calls.emplace_back(r.server, std::move(f));
  }
  RETURN_IF_ERROR(SendCreates(std::move(calls)).WithContext("declaring the variables again on a restarted server"));
  return restarts;
}

StatusOr<int64_t> PsClient::WaitForRollback(Deadline deadline) {
  while (true) {
    ASSIGN_OR_RETURN(std::vector<HelloReply> hellos, Hello());
    bool agreed = !hellos.empty() && hellos[0].restore_id != 0;
    for (const HelloReply& h : hellos) {
      agreed = agreed && h.restore_id == hellos[0].restore_id && !h.restore_staged;
    }
    if (agreed) return hellos[0].restored_step;
    if (Clock::now() >= deadline) {
      return DeadlineExceeded("worker " + std::to_string(options_.worker_id) +
                              " waited for the chief to roll every server back to one snapshot, in vain");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

// Sends `request` to every server; each reply is decoded into a Reply and
// handed to `merge`. The first failure wins, naming its server.
template <class Reply, class Request, class Merge>
Status PsClient::CallEveryServer(FrameType type, const Request& request, Deadline deadline, Merge merge) {
  std::vector<std::pair<int, OutFrame>> calls;
  const std::string control = EncodeMessage(request);
  for (int s = 0; s < transport_->num_servers(); ++s) {
    OutFrame f;
    f.type = static_cast<uint16_t>(type);
    f.control = control;
    calls.emplace_back(s, std::move(f));
  }
  auto replies = CallAll(*transport_, std::move(calls), deadline);
  const char* name = FrameTypeName(static_cast<uint16_t>(type));
  for (size_t s = 0; s < replies.size(); ++s) {
    Reply r;
    Status st = DecodeReply(replies[s], &r, name);
    if (!st.ok()) return st.WithContext(ServerContext(type, static_cast<int>(s)));
    merge(r);
  }
  return Status::OK();
}

Status PsClient::Leave() {
  if (!mode_.ssp()) return Status::OK();
  PushRequest req;
  req.worker_id = options_.worker_id;
  req.incarnation = incarnation_;
  req.sequence = next_sequence_.fetch_add(1);
  req.step = next_step_.load();
  req.leaving = true;
  return CallEveryServer<StatusReply>(FrameType::kPush, req, NextDeadline(), [](const StatusReply&) {});
}

StatusOr<SnapshotPrepareReply> PsClient::SnapshotPrepare(const SnapshotPrepareRequest& req) {
  SnapshotPrepareReply total;
  RETURN_IF_ERROR(CallEveryServer<SnapshotPrepareReply>(
      FrameType::kSnapshotPrepare, req, NextDeadline(), [&](const SnapshotPrepareReply& r) {
        total.shards += r.shards;
        total.bytes += r.bytes;
        total.copy_seconds = std::max(total.copy_seconds, r.copy_seconds);
        total.reported.insert(total.reported.end(), r.reported.begin(), r.reported.end());
        total.sparse.insert(total.sparse.end(), r.sparse.begin(), r.sparse.end());
      }));
  return total;
}

StatusOr<SnapshotWaitReply> PsClient::SnapshotWait(int64_t step) {
  SnapshotWaitReply total;
  RETURN_IF_ERROR(CallEveryServer<SnapshotWaitReply>(FrameType::kSnapshotWait, SnapshotWaitRequest{step},
                                                     NextDeadline(), [&](const SnapshotWaitReply& r) {
                                                       total.bytes += r.bytes;
                                                       total.write_seconds =
                                                           std::max(total.write_seconds, r.write_seconds);
                                                     }));
  return total;
}

StatusOr<SnapshotRestoreReply> PsClient::SnapshotRestore(const SnapshotRestoreRequest& request) {
  SnapshotRestoreReply total;
  RETURN_IF_ERROR(CallEveryServer<SnapshotRestoreReply>(FrameType::kSnapshotRestore, request, NextDeadline(),
                                                        [&](const SnapshotRestoreReply& r) {
                                                          total.shards += r.shards;
                                                          total.bytes += r.bytes;
                                                          total.seconds = std::max(total.seconds, r.seconds);
                                                        }));
  return total;
}

}  // namespace cairn
