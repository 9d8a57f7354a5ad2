#include "worker/ps_client.h"

#include <algorithm>
#include <cstring>
#include <random>
#include <thread>

#include "common/aligned_buffer.h"
#include "worker/ps_client_reply.h"

namespace cairn {
namespace {

using ps_client_internal::DecodeReply;
using ps_client_internal::ServerContext;

constexpr uint64_t kDataAlignment = 64;
uint64_t AlignUp(uint64_t n) { return (n + kDataAlignment - 1) / kDataAlignment * kDataAlignment; }
const uint8_t kPad[kDataAlignment] = {};

}  // namespace

PsClient::PsClient(Transport* transport, PsClientOptions options) : transport_(transport), options_(options) {
  incarnation_ = options_.incarnation;
  std::random_device rd;
  while (incarnation_ == 0) incarnation_ = (uint64_t{rd()} << 32) ^ rd();
}

namespace {

// Adds the time from construction to destruction to a counter, in ns.
class AddElapsed {
 public:
  explicit AddElapsed(std::atomic<int64_t>* total) : total_(total), start_(Clock::now()) {}
  ~AddElapsed() {
    *total_ += std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start_).count();
  }

 private:
  std::atomic<int64_t>* total_;
  Clock::time_point start_;
};

}  // namespace

// Pull and Push are their Async forms waited for at once; those time
// themselves (the sending and the Wait).
StatusOr<std::map<std::string, Tensor>> PsClient::Pull(const std::vector<std::string>& names) {
  return PullAsync(names).Wait();
}

Status PsClient::Push(const PushBatch& batch) { return PushAsync(batch).Wait(); }

namespace {

using Wanted = std::map<std::string, std::pair<VariableSpec, std::vector<ShardSlice>>>;

// Each wanted variable, whole, from the servers' replies to a pull
// (replies[i] from servers[i]).
StatusOr<std::map<std::string, Tensor>> AssemblePull(const Wanted& wanted, const std::vector<int>& servers,
                                                     const std::vector<StatusOr<InFrame>>& replies) {
  // (name, row_begin) → the slice's tensor, viewing the reply's bytes.
  std::map<std::pair<std::string, int64_t>, Tensor> parts;
  for (size_t i = 0; i < replies.size(); ++i) {
    PullReply r;
    Status st = DecodeReply(replies[i], &r, "Pull");
    if (!st.ok()) return st.WithContext(ServerContext(FrameType::kPull, servers[i]));
    for (const TensorDesc& d : r.tensors) {
      Status valid = ValidateTensorDesc(d, replies[i]->data_len);
      if (!valid.ok()) return DataLoss("server " + std::to_string(servers[i]) + " sent a bad tensor: " + valid.message());
      parts[{d.name, d.row_begin}] = ViewTensor(d, replies[i]->payload, replies[i]->data);
    }
  }
  std::map<std::string, Tensor> out;
  for (auto& [name, entry] : wanted) {
    const auto& [spec, slices] = entry;
    if (slices.size() == 1) {
      auto it = parts.find({name, 0});
      if (it == parts.end() || it->second.shape() != spec.shape || it->second.dtype() != spec.dtype) {
        return DataLoss("server " + std::to_string(slices[0].server) + " did not return '" + name + "' as " +
                        ShapeString(spec.shape));
      }
      out[name] = it->second;  // a view of the reply: no copy
      continue;
    }
    // Every row is copied in below, from the slices checked first.
    Tensor whole = Tensor::Uninitialized(spec.dtype, spec.shape);
    const size_t row_bytes = spec.row_bytes();
    for (const ShardSlice& s : slices) {
      auto it = parts.find({name, s.row_begin});
      if (it == parts.end() || it->second.rows() != s.rows() || it->second.dtype() != spec.dtype ||
          static_cast<size_t>(it->second.byte_size()) != s.rows() * row_bytes) {
        return DataLoss("server " + std::to_string(s.server) + " did not return rows [" +
                        std::to_string(s.row_begin) + ", " + std::to_string(s.row_end) + ") of '" + name + "'");
      }
      std::memcpy(static_cast<char*>(whole.raw()) + s.row_begin * row_bytes, it->second.raw(), it->second.byte_size());
    }
    out[name] = std::move(whole);
  }
  return out;
}

}  // namespace

PendingCall<StatusOr<std::map<std::string, Tensor>>> PsClient::PullAsync(const std::vector<std::string>& names) {
  using Result = StatusOr<std::map<std::string, Tensor>>;
  AddElapsed timed(&pull_ns_);
  if (Status st = CheckCreated("Pull"); !st.ok()) return PendingCall<Result>::Done(st);
  const Placement& placement = *placement_;
  std::map<int, PullRequest> per_server;
  Wanted wanted;
  for (const std::string& name : names) {
    StatusOr<VariableSpec> spec = placement.SpecOf(name);
    if (!spec.ok()) return PendingCall<Result>::Done(spec.status());
    StatusOr<std::vector<ShardSlice>> slices = placement.SlicesOf(name);
    if (!slices.ok()) return PendingCall<Result>::Done(slices.status());
    for (const ShardSlice& s : *slices) per_server[s.server].names.push_back(name);
    wanted[name] = {std::move(*spec), std::move(*slices)};
  }
  std::vector<std::pair<int, OutFrame>> calls;
  std::vector<int> servers;
  for (auto& [server, req] : per_server) {
    if (mode_.ssp()) {
      req.worker_id = options_.worker_id;
      req.clock = next_step_.load();
    }
    OutFrame f;
    f.type = static_cast<uint16_t>(FrameType::kPull);
    f.control = EncodeMessage(req);
    calls.emplace_back(server, std::move(f));
    servers.push_back(server);
  }
  auto group = std::make_shared<CallGroup>(CallGroup::Start(*transport_, std::move(calls), NextDeadline()));
  return PendingCall<Result>::Later(
      [this, group, wanted = std::move(wanted), servers = std::move(servers)]() -> Result {
        AddElapsed timed(&pull_ns_);
        return AssemblePull(wanted, servers, group->Wait());
      });
}

PendingCall<Status> PsClient::PushAsync(const PushBatch& batch) {
  AddElapsed timed(&push_ns_);
  StatusOr<std::vector<std::pair<int, OutFrame>>> built = BuildPush(batch);
  if (!built.ok()) return PendingCall<Status>::Done(built.status());
  auto calls = std::make_shared<const std::vector<std::pair<int, OutFrame>>>(std::move(*built));
  const Deadline deadline = NextDeadline();
  // A copy of the frames (spans and keep-alives, not bytes): `calls` is kept for re-sends.
  auto group = std::make_shared<CallGroup>(CallGroup::Start(*transport_, *calls, deadline));
  return PendingCall<Status>::Later([this, group, calls, deadline, train_step = batch.train_step]() -> Status {
    AddElapsed timed(&push_ns_);
    std::vector<StatusOr<InFrame>> replies = group->Wait();
    ResendLostPushes(*calls, deadline, &replies);
    // A server that was restored (Aborted: the cluster rolls back) explains
    // the others' errors: another server's sync step then waits in vain for
    // a worker that is already recovering, and times out. Report it first,
    // so that the caller recovers.
    Status first;
    for (size_t i = 0; i < replies.size(); ++i) {
      StatusReply r;
      Status st = DecodeReply(replies[i], &r, "Push");
      if (st.ok()) continue;
      st = st.WithContext(ServerContext(FrameType::kPush, (*calls)[i].first));
      if (st.code() == StatusCode::kAborted) return st;
      if (first.ok()) first = st;
    }
    if (!first.ok()) return first;
    if (train_step) ++next_step_;
    return Status::OK();
  });
}

StatusOr<std::vector<std::pair<int, OutFrame>>> PsClient::BuildPush(const PushBatch& batch) {
  RETURN_IF_ERROR(CheckCreated("Push"));
  const Placement& placement = *placement_;
  struct ServerPush {
    PushRequest req;
    OutFrame frame;
    uint64_t offset = 0;
  };
  std::map<int, ServerPush> per_server;
  auto add = [&](const std::string& name, const Tensor& value, UpdateKind kind) -> Status {
    ASSIGN_OR_RETURN(VariableSpec spec, placement.SpecOf(name));
    if (value.shape() != spec.shape || value.dtype() != spec.dtype) {
      return InvalidArgument(std::string(UpdateKindName(kind)) + " for '" + name + "' is " + DTypeName(value.dtype()) +
                             ShapeString(value.shape()) + " but the variable is " + DTypeName(spec.dtype) +
                             ShapeString(spec.shape));
    }
    ASSIGN_OR_RETURN(std::vector<ShardSlice> slices, placement.SlicesOf(name));
    for (const ShardSlice& s : slices) {
      Tensor part = slices.size() == 1 ? value : value.SliceRows(s.row_begin, s.row_end);
      ServerPush& p = per_server[s.server];
      const uint64_t aligned = AlignUp(p.offset);
      if (aligned > p.offset) p.frame.data.push_back(ByteSpan{kPad, aligned - p.offset});
      p.req.grads.push_back(TensorDesc{name, part.dtype(), part.shape(), s.row_begin, aligned, part.byte_size(), kind});
      p.frame.data.push_back(ByteSpan{part.raw(), part.byte_size()});
      p.frame.keepalive.push_back(part.owner());
      p.offset = aligned + part.byte_size();
    }
    return Status::OK();
  };
  for (const auto& [name, t] : batch.gradients) RETURN_IF_ERROR(add(name, t, UpdateKind::kGradient));
  for (const auto& [name, t] : batch.assigns) RETURN_IF_ERROR(add(name, t, UpdateKind::kAssign));
  for (const auto& [name, t] : batch.assign_adds) RETURN_IF_ERROR(add(name, t, UpdateKind::kAssignAdd));
  // Sparse rows: one gradient row per id, routed by ServerOfId.
  for (const auto& [name, update] : batch.sparse_gradients) {
    ASSIGN_OR_RETURN(const int32_t dim, SparseDim(name));
    const Tensor& ids = update.ids;
    const int64_t n = ids.num_elements();
    if (ids.dtype() != DType::kInt64 || ids.shape().size() != 1 || update.values.dtype() != DType::kFloat32 ||
        update.values.shape() != Shape{n, static_cast<int64_t>(dim)}) {
      return InvalidArgument("sparse gradient for '" + name + "' must be int64 ids [n] and float32 rows [n, " +
                             std::to_string(dim) + "]; got ids " + DTypeName(ids.dtype()) + ShapeString(ids.shape()) +
                             " and rows " + DTypeName(update.values.dtype()) + ShapeString(update.values.shape()));
    }
    const int num_servers = placement.num_servers();
    // Each server's ids and rows: with one server, the update's own
    // tensors (no copy); otherwise gathered into buffers of its own, sized
    // by a first pass that routes every id.
    std::vector<std::shared_ptr<const void>> server_ids(num_servers), server_rows(num_servers);
    std::vector<int64_t> server_count(num_servers, 0);
    const int64_t* id = ids.data<int64_t>();
    const float* row = update.values.data<float>();
    if (num_servers == 1) {
      server_count[0] = n;
      server_ids[0] = std::shared_ptr<const void>(ids.owner(), id);
      server_rows[0] = std::shared_ptr<const void>(update.values.owner(), row);
    } else {
      std::vector<int32_t> route(n);
      for (int64_t i = 0; i < n; ++i) ++server_count[route[i] = ServerOfId(id[i], num_servers)];
      std::vector<int64_t*> id_at(num_servers);
      std::vector<float*> row_at(num_servers);
      for (int s = 0; s < num_servers; ++s) {
        if (server_count[s] == 0) continue;
        auto id_buf = std::shared_ptr<int64_t[]>(new int64_t[server_count[s]]);
        auto row_buf = std::shared_ptr<float[]>(new float[server_count[s] * dim]);
        id_at[s] = id_buf.get();
        row_at[s] = row_buf.get();
        server_ids[s] = std::move(id_buf);
        server_rows[s] = std::move(row_buf);
      }
      for (int64_t i = 0; i < n; ++i) {
        const int s = route[i];
        *id_at[s]++ = id[i];
        std::memcpy(row_at[s], row + i * dim, dim * sizeof(float));
        row_at[s] += dim;
      }
    }
    for (int s = 0; s < num_servers; ++s) {
      if (server_count[s] == 0) continue;
      ServerPush& p = per_server[s];
      SparseDesc d;
      d.table = name;
      d.count = server_count[s];
      d.dim = dim;
      auto place = [&p](const void* ptr, uint64_t bytes) {  // appends bytes at the next aligned offset
        const uint64_t aligned = AlignUp(p.offset);
        if (aligned > p.offset) p.frame.data.push_back(ByteSpan{kPad, aligned - p.offset});
        p.frame.data.push_back(ByteSpan{ptr, bytes});
        p.offset = aligned + bytes;
        return aligned;
      };
      d.ids_offset = place(server_ids[s].get(), d.count * sizeof(int64_t));
      d.values_offset = place(server_rows[s].get(), d.count * dim * sizeof(float));
      p.frame.keepalive.push_back(server_ids[s]);
      p.frame.keepalive.push_back(server_rows[s]);
      p.req.sparse.push_back(std::move(d));
    }
  }
  if (batch.train_step) {
    if (mode_.sync() || mode_.ssp()) {
      // Every server counts one push per worker per step, even an empty one
      // (ssp: every server keeps every worker's clock).
      for (int s = 0; s < placement.num_servers(); ++s) per_server[s];
    } else if (!batch.global_step.empty()) {
      ASSIGN_OR_RETURN(std::vector<ShardSlice> slices, placement.SlicesOf(batch.global_step));
      per_server[slices[0].server];
    }
  }
  const uint64_t sequence = next_sequence_.fetch_add(1);
  const int64_t step = next_step_.load();
  std::vector<std::pair<int, OutFrame>> calls;
  for (auto& [server, p] : per_server) {
    p.req.worker_id = options_.worker_id;
    p.req.incarnation = incarnation_;
    p.req.sequence = sequence;
    p.req.train_step = batch.train_step;
    p.req.step = step;
    p.req.learning_rate = batch.learning_rate;
    p.req.global_step = batch.global_step;
    p.frame.type = static_cast<uint16_t>(FrameType::kPush);
    p.frame.control = EncodeMessage(p.req);
    calls.emplace_back(server, std::move(p.frame));
  }
  return calls;
}

StatusOr<std::map<std::string, Tensor>> PsClient::SparsePull(const std::map<std::string, Tensor>& ids) {
  AddElapsed timed(&pull_ns_);
  RETURN_IF_ERROR(CheckCreated("SparsePull"));
  const int num_servers = transport_->num_servers();
  // Each table's ids routed: with one server (or every id on one), the ids
  // tensor itself is sent and the reply's rows are the answer, viewed in
  // place; otherwise each server's ids are gathered into a buffer sized by
  // a first pass, and the rows scattered back in the ids' order.
  struct TableRoute {
    const std::string* name = nullptr;
    const Tensor* ids = nullptr;
    int32_t dim = 0;
    std::vector<int64_t> count;  // ids per server
    std::vector<int32_t> route;  // each id's server; empty when one server has them all
    std::vector<const float*> rows;  // per server: its reply's rows, once checked
  };
  struct ServerPart {
    size_t table = 0;  // in routes
    std::shared_ptr<const void> ids;
  };
  std::vector<TableRoute> routes;
  std::vector<std::vector<ServerPart>> per_server(num_servers);
  std::map<std::string, Tensor> out;
  for (const auto& [name, t] : ids) {
    ASSIGN_OR_RETURN(const int32_t dim, SparseDim(name));
    if (t.dtype() != DType::kInt64 || t.shape().size() != 1) {
      return InvalidArgument("sparse pull of '" + name + "' needs int64 ids [n], got " + DTypeName(t.dtype()) +
                             ShapeString(t.shape()));
    }
    const int64_t n = t.num_elements();
    if (n == 0) {
      out[name] = Tensor::Uninitialized(DType::kFloat32, {0, dim});
      continue;
    }
    TableRoute r;
    r.name = &name;
    r.ids = &t;
    r.dim = dim;
    r.count.assign(num_servers, 0);
    r.rows.assign(num_servers, nullptr);
    const int64_t* id = t.data<int64_t>();
    int only = 0;
    if (num_servers == 1) {
      r.count[0] = n;
    } else {
      r.route.resize(n);
      for (int64_t i = 0; i < n; ++i) ++r.count[r.route[i] = ServerOfId(id[i], num_servers)];
      only = static_cast<int>(std::max_element(r.count.begin(), r.count.end()) - r.count.begin());
      if (r.count[only] == n) r.route.clear();
    }
    const size_t table = routes.size();
    if (r.route.empty()) {
      per_server[only].push_back(ServerPart{table, std::shared_ptr<const void>(t.owner(), id)});
    } else {
      std::vector<int64_t*> at(num_servers, nullptr);
      for (int s = 0; s < num_servers; ++s) {
        if (r.count[s] == 0) continue;
        std::shared_ptr<uint8_t> buf = AllocateAlignedBuffer(r.count[s] * sizeof(int64_t), /*zero=*/false);
        at[s] = reinterpret_cast<int64_t*>(buf.get());
        per_server[s].push_back(ServerPart{table, std::move(buf)});
      }
      for (int64_t i = 0; i < n; ++i) *at[r.route[i]]++ = id[i];
    }
    routes.push_back(std::move(r));
  }
  std::vector<std::pair<int, OutFrame>> calls;
  std::vector<int> servers;
  for (int s = 0; s < num_servers; ++s) {
    if (per_server[s].empty()) continue;
    SparsePullRequest req;
    if (mode_.ssp()) {
      req.worker_id = options_.worker_id;
      req.clock = next_step_.load();
    }
    OutFrame f;
    uint64_t offset = 0;
    for (const ServerPart& part : per_server[s]) {
      const TableRoute& r = routes[part.table];
      SparseDesc d;
      d.table = *r.name;
      d.count = r.count[s];
      d.dim = r.dim;
      const uint64_t aligned = AlignUp(offset);
      if (aligned > offset) f.data.push_back(ByteSpan{kPad, aligned - offset});
      d.ids_offset = aligned;
      f.data.push_back(ByteSpan{part.ids.get(), d.count * sizeof(int64_t)});
      f.keepalive.push_back(part.ids);
      offset = aligned + d.count * sizeof(int64_t);
      req.tables.push_back(std::move(d));
    }
    f.type = static_cast<uint16_t>(FrameType::kSparsePull);
    f.control = EncodeMessage(req);
    calls.emplace_back(s, std::move(f));
    servers.push_back(s);
  }
  auto replies = CallAll(*transport_, std::move(calls), NextDeadline());
  for (size_t i = 0; i < replies.size(); ++i) {
    const int s = servers[i];
    SparsePullReply r;
    Status st = DecodeReply(replies[i], &r, "SparsePull");
    if (!st.ok()) return st.WithContext(ServerContext(FrameType::kSparsePull, s));
    if (r.tables.size() != per_server[s].size()) {
      return DataLoss("server " + std::to_string(s) + " answered a sparse pull of " +
                      std::to_string(per_server[s].size()) + " table(s) with " + std::to_string(r.tables.size()));
    }
    for (size_t k = 0; k < r.tables.size(); ++k) {
      TableRoute& route = routes[per_server[s][k].table];
      const SparseDesc& d = r.tables[k];
      const uint64_t count = route.count[s];
      const uint64_t bytes = count * route.dim * sizeof(float);
      if (d.table != *route.name || d.count != count || d.dim != route.dim ||
          d.values_offset > replies[i]->data_len || bytes > replies[i]->data_len - d.values_offset ||
          d.values_offset % sizeof(float) != 0) {
        return DataLoss("server " + std::to_string(s) + " sent bad rows for sparse table '" + *route.name + "'");
      }
      if (route.route.empty()) {
        out[*route.name] = Tensor::View(DType::kFloat32, {static_cast<int64_t>(count), route.dim}, replies[i]->payload,
                                        replies[i]->data + d.values_offset);
      } else {
        route.rows[s] = reinterpret_cast<const float*>(replies[i]->data + d.values_offset);
      }
    }
  }
  for (TableRoute& r : routes) {
    if (r.route.empty()) continue;
    const int64_t n = r.ids->num_elements();
    Tensor whole = Tensor::Uninitialized(DType::kFloat32, {n, r.dim});
    float* dst = whole.data<float>();
    for (int64_t i = 0; i < n; ++i, dst += r.dim) {
      const float*& src = r.rows[r.route[i]];
      std::memcpy(dst, src, r.dim * sizeof(float));
      src += r.dim;
    }
    out[*r.name] = std::move(whole);
  }
  return out;
}

// Unavailable from the transport (not a server's answer) says the request
// may or may not have reached the server, as when a connection is lost with
// it in flight. A push is safe to send again with the same key: the server's
// push log applies it at most once and answers every copy alike. The waits
// between tries only keep a transport that fails at once (a connection still
// cut) from being called in a tight loop.
void PsClient::ResendLostPushes(const std::vector<std::pair<int, OutFrame>>& calls, Deadline deadline,
                                std::vector<StatusOr<InFrame>>* replies) {
  std::chrono::milliseconds backoff{10};
  while (true) {
    std::vector<size_t> lost;
    for (size_t i = 0; i < replies->size(); ++i) {
      const StatusOr<InFrame>& r = (*replies)[i];
      if (!r.ok() && r.status().code() == StatusCode::kUnavailable) lost.push_back(i);
    }
    if (lost.empty() || Clock::now() + backoff >= deadline) return;
    std::this_thread::sleep_for(backoff);
    backoff = std::min(backoff * 2, std::chrono::milliseconds(500));
    std::vector<std::pair<int, OutFrame>> again;
    for (size_t i : lost) again.push_back(calls[i]);
    std::vector<StatusOr<InFrame>> answers = CallAll(*transport_, std::move(again), deadline);
    for (size_t k = 0; k < lost.size(); ++k) (*replies)[lost[k]] = std::move(answers[k]);
  }
}

}  // namespace cairn
