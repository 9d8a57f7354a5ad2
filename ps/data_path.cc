#include "ps/data_path.h"

#include <cmath>
#include <cstring>
#include <set>

#include <boost/asio/post.hpp>

#include "common/aligned_buffer.h"

namespace cairn {
namespace {

constexpr uint64_t kDataAlignment = 64;
uint64_t AlignUp(uint64_t n) { return (n + kDataAlignment - 1) / kDataAlignment * kDataAlignment; }
const uint8_t kPad[kDataAlignment] = {};

}  // namespace

DataPath::DataPath(EventLoop& loop, Table& table, int server_index, FrameLimits limits)
    : loop_(loop), table_(table), index_(server_index), limits_(limits) {}

DataPath::~DataPath() {
  if (std::shared_ptr<SyncSteps> rounds = sync()) rounds->Cancel(Cancelled("server stopping"));
  if (std::shared_ptr<SspClocks> clocks = ssp()) clocks->Cancel(Cancelled("server stopping"));
}

void DataPath::HandleCreate(const Request& r) {
  CreateRequest req;
  Status s = DecodeMessage(r.frame.control, &req, "CreateVariables");
  if (s.ok() && !r.peer.may_control()) s = CheckDeclared(req, r.peer);
  if (s.ok()) s = SetMode(req.mode);
  for (size_t i = 0; s.ok() && i < req.shards.size(); ++i) s = table_.Create(req.shards[i]);
  for (size_t i = 0; s.ok() && i < req.sparse_tables.size(); ++i) s = table_.CreateSparse(req.sparse_tables[i]);
  r.respond.Finish(s);
}

// Creating is the chief's: another worker may only declare what is here
// (Create then checks that its declaration matches). Unavailable, so that
// the worker asks again once the chief has been.
Status DataPath::CheckDeclared(const CreateRequest& req, const PeerIdentity& peer) const {
  std::string missing;
  {
    MutexLock lock(mu_);
    if (!mode_) missing = "the training mode";
  }
  for (size_t i = 0; missing.empty() && i < req.shards.size(); ++i) {
    if (!table_.Holds(req.shards[i].spec.name)) missing = "variable '" + req.shards[i].spec.name + "'";
  }
  for (size_t i = 0; missing.empty() && i < req.sparse_tables.size(); ++i) {
    const std::string& name = req.sparse_tables[i].spec.name;
    if (!table_.FindSparse(name).ok()) missing = "sparse table '" + name + "'";
  }
  if (missing.empty()) return Status::OK();
  return Unavailable(peer.ToString() + " declared " + missing + ", which server " + std::to_string(index_) +
                     " does not hold yet: only the chief creates variables");
}

Status DataPath::SetMode(const TrainingMode& mode) {
  if (mode.num_workers < 1 || mode.num_workers > 65536 || mode.sync_timeout_ms < 1) {
    return InvalidArgument("training mode needs 1..65536 workers and a positive sync timeout");
  }
  if (mode.staleness < 0 || mode.staleness > 1000000) {
    return InvalidArgument("ssp staleness " + std::to_string(mode.staleness) + " is outside [0, 1000000]");
  }
  MutexLock lock(mu_);
  if (mode_) {
    if (*mode_ == mode) return Status::OK();
    return FailedPrecondition("server " + std::to_string(index_) + " trains " + ConsistencyName(mode_->consistency) + " with " +
                              std::to_string(mode_->num_workers) + " workers; a client asked for " +
                              ConsistencyName(mode.consistency) + " with " + std::to_string(mode.num_workers));
  }
  mode_ = mode;
  if (mode.sync()) sync_ = std::make_shared<SyncSteps>(loop_.io(), &table_, mode, index_);
  if (mode.ssp()) {
    ssp_ = std::make_shared<SspClocks>(loop_.io(), mode.num_workers, mode.staleness,
                                       std::chrono::milliseconds(mode.sync_timeout_ms), index_);
  }
  return Status::OK();
}

uint64_t DataPath::ssp_reads_parked() const {
  std::shared_ptr<SspClocks> clocks = ssp();
  return clocks ? clocks->parked() : 0;
}

double DataPath::ssp_wait_seconds() const {
  std::shared_ptr<SspClocks> clocks = ssp();
  return clocks ? clocks->parked_seconds() : 0;
}

std::shared_ptr<SspClocks> DataPath::ssp() const {
  MutexLock lock(mu_);
  return ssp_;
}

void DataPath::AdmitRead(SspClocks& clocks, const Request& r, int32_t worker, int64_t clock,
                         std::function<void(const Request&)> serve) {
  auto held = std::make_shared<Request>(r);  // the frame's bytes and the responder, kept while parked
  clocks.Admit(
      worker, clock, [held, serve = std::move(serve)] { serve(*held); },
      [held](const Status& s) { held->respond.Fail(s); });
}

std::shared_ptr<SyncSteps> DataPath::sync() const {
  MutexLock lock(mu_);
  return sync_;
}

int64_t DataPath::sync_step() const {
  std::shared_ptr<SyncSteps> s = sync();
  return s ? s->step() : -1;
}

void DataPath::Restored(int64_t snapshot_step, int64_t sync_step) {
  if (sync_step >= 0) {
    if (std::shared_ptr<SyncSteps> s = sync()) s->Reset(sync_step);
  }
  push_log_.Clear(Aborted("server " + std::to_string(index_) + " restored snapshot " +
                          std::to_string(snapshot_step) + " while this push was applied"));
}

// Sends the reply itself, so that a large one is hashed after the send is
// queued: the hash job, posted after it, runs off the connection's strand
// while the strand writes all but the reply's tail (held back until the
// PendingChecksum is set). With one loop thread the job runs once that bulk
// is written, while the peer reads it; with more, the two run at once.
// Either way no pass over the values comes before the first write.
void DataPath::HandlePull(const Request& r) {
  PullRequest req;
  Status s = DecodeMessage(r.frame.control, &req, "Pull");
  if (!s.ok()) return r.respond.Fail(s);
  if (std::shared_ptr<SspClocks> clocks = ssp(); clocks && req.clock >= 0) {
    return AdmitRead(*clocks, r, req.worker_id, req.clock,
                     [this, req](const Request& admitted) { ServePull(admitted, req); });
  }
  ServePull(r, req);
}

void DataPath::ServePull(const Request& r, const PullRequest& req) {
  OutFrame reply;
  Status status = FillPullReply(r.frame, req, &reply);
  if (!status.ok()) return r.respond.Fail(status);
  reply.Seal();
  if (reply.data_len() < kParallelChecksumBytes) return r.respond.Send(std::move(reply));
  auto checksum = std::make_shared<PendingChecksum>();
  reply.pending_checksum = checksum;
  // Shares the values' buffers (keepalive), which nothing writes (Pull).
  auto sealed = std::make_shared<const OutFrame>(reply);
  r.respond.Send(std::move(reply));
  boost::asio::post(loop_.io(), [checksum, sealed] { checksum->Set(sealed->Checksum()); });
}

// The reply's values are the table's own buffers, not copies (Pull).
Status DataPath::FillPullReply(const InFrame& frame, const PullRequest& req, OutFrame* reply) {
  std::set<std::string> seen;
  for (const std::string& name : req.names) {
    if (!seen.insert(name).second) return InvalidArgument("pull names variable '" + name + "' more than once");
  }
  PullReply out;
  std::vector<Tensor> values;
  uint64_t offset = 0;
  for (const std::string& name : req.names) {
    ShardInfo info;
    ASSIGN_OR_RETURN(Tensor value, table_.Pull(name, &info));
    out.tensors.push_back(TensorDesc{name, value.dtype(), value.shape(), info.row_begin, offset, value.byte_size()});
    offset = AlignUp(offset + value.byte_size());
    if (offset > limits_.max_data_bytes) {
      return OutOfRange("pull of " + std::to_string(req.names.size()) + " variables would reply with over " +
                               std::to_string(limits_.max_data_bytes) + " bytes (the frame limit); pull fewer at once");
    }
    values.push_back(std::move(value));
  }
  *reply = ReplyTo(frame.header, EncodeMessage(out));
  uint64_t written = 0;
  for (size_t i = 0; i < values.size(); ++i) {
    const TensorDesc& d = out.tensors[i];
    if (d.offset > written) reply->data.push_back(ByteSpan{kPad, d.offset - written});
    reply->data.push_back(ByteSpan{values[i].raw(), values[i].byte_size()});
    reply->keepalive.push_back(values[i].owner());
    written = d.offset + d.bytes;
  }
  ++pulls_served_;
  return Status::OK();
}

StatusOr<std::shared_ptr<SparseTable>> DataPath::SparseTableOf(const SparseDesc& d) const {
  StatusOr<std::shared_ptr<SparseTable>> table = table_.ShareSparse(d.table);
  if (!table.ok()) return table.status().WithContext("server " + std::to_string(index_));
  if ((*table)->spec().dim != d.dim) {
    return InvalidArgument("sparse table '" + d.table + "' has dim " + std::to_string((*table)->spec().dim) +
                           "; the request says " + std::to_string(d.dim));
  }
  return std::move(*table);
}

void DataPath::HandleSparsePull(const Request& r) {
  SparsePullRequest req;
  Status s = DecodeMessage(r.frame.control, &req, "SparsePull");
  if (!s.ok()) return r.respond.Fail(s);
  if (std::shared_ptr<SspClocks> clocks = ssp(); clocks && req.clock >= 0) {
    return AdmitRead(*clocks, r, req.worker_id, req.clock,
                     [this, req](const Request& admitted) { ServeSparsePull(admitted, req); });
  }
  ServeSparsePull(r, req);
}

namespace {

// A sparse pull's reply, looked up as it is written: the values go into one
// buffer, table after table (each 64-byte aligned, the padding zeroed), in
// the request's order, kSparsePullChunkBytes of rows per Produce. The
// socket sends each chunk while the next is looked up, so the transfer
// does not wait for the whole lookup. Each chunk is read under its table's
// shared lock: an update that lands during a pull may show in some of its
// rows and not in others (sync training updates no table while a worker
// pulls; async and ssp reads are as of some moment during the pull).
class SparsePullProducer : public FrameProducer {
 public:
  struct Part {
    std::shared_ptr<SparseTable> table;
    const int64_t* ids = nullptr;  // in the request's payload
    uint64_t count = 0;
    int32_t dim = 0;
    uint64_t offset = 0;  // of its rows in the reply's data
    uint64_t end = 0;     // of its padding: the next part's offset, or the data's end
  };
  static constexpr uint64_t kSparsePullChunkBytes = uint64_t{256} << 10;

  SparsePullProducer(std::shared_ptr<uint8_t> request, std::shared_ptr<uint8_t> values, uint64_t bytes,
                     std::vector<Part> parts)
      : request_(std::move(request)), values_(std::move(values)), bytes_(bytes), parts_(std::move(parts)) {}

  uint64_t Produce() override {
    uint64_t budget = kSparsePullChunkBytes;
    while (ready_ < bytes_ && part_ < parts_.size()) {
      const Part& p = parts_[part_];
      const uint64_t row_bytes = static_cast<uint64_t>(p.dim) * sizeof(float);
      const uint64_t rows = std::min(p.count - row_, std::max<uint64_t>(1, budget / row_bytes));
      p.table->PullChecked(p.ids + row_, rows, reinterpret_cast<float*>(values_.get() + p.offset) + row_ * p.dim);
      row_ += rows;
      ready_ = p.offset + row_ * row_bytes;
      if (row_ == p.count) {
        std::memset(values_.get() + ready_, 0, p.end - ready_);  // no stale heap bytes on the wire
        ready_ = p.end;
        ++part_;
        row_ = 0;
      }
      if (rows * row_bytes >= budget) break;
      budget -= rows * row_bytes;
    }
    return ready_;
  }

 private:
  const std::shared_ptr<uint8_t> request_;  // keeps the ids
  const std::shared_ptr<uint8_t> values_;
  const uint64_t bytes_;
  const std::vector<Part> parts_;
  size_t part_ = 0;    // the part being looked up
  uint64_t row_ = 0;   // its rows done
  uint64_t ready_ = 0;  // bytes of the data filled
};

}  // namespace

void DataPath::ServeSparsePull(const Request& r, const SparsePullRequest& req) {
  SparsePullReply out;
  std::vector<SparsePullProducer::Part> parts;
  uint64_t bytes = 0;
  for (const SparseDesc& d : req.tables) {
    Status s = ValidateSparseDesc(d, r.frame.data_len, /*with_values=*/false);
    if (!s.ok()) return r.respond.Fail(s);
    StatusOr<std::shared_ptr<SparseTable>> table = SparseTableOf(d);
    if (!table.ok()) return r.respond.Fail(table.status());
    SparsePullProducer::Part p;
    p.ids = reinterpret_cast<const int64_t*>(r.frame.data + d.ids_offset);
    s = (*table)->CheckPull(p.ids, d.count);
    if (!s.ok()) return r.respond.Fail(s);
    p.table = std::move(*table);
    p.count = d.count;
    p.dim = d.dim;
    p.offset = bytes;
    SparseDesc reply = d;
    reply.ids_offset = 0;
    reply.values_offset = bytes;
    out.tables.push_back(reply);
    bytes = AlignUp(bytes + d.count * d.dim * sizeof(float));
    if (bytes > limits_.max_data_bytes) {
      return r.respond.Fail(OutOfRange("sparse pull would reply with over " + std::to_string(limits_.max_data_bytes) +
                                       " bytes (the frame limit); pull fewer ids at once"));
    }
    p.end = bytes;
    parts.push_back(std::move(p));
  }
  std::shared_ptr<uint8_t> values = AllocateAlignedBuffer(bytes, /*zero=*/false);
  OutFrame reply = ReplyTo(r.frame.header, EncodeMessage(out));
  if (bytes > 0) reply.data.push_back(ByteSpan{values.get(), bytes});
  reply.producer = std::make_shared<SparsePullProducer>(r.frame.payload, values, bytes, std::move(parts));
  reply.keepalive.push_back(std::move(values));
  reply.Seal();
  ++pulls_served_;
  r.respond.Send(std::move(reply));
}

void DataPath::HandlePush(Request r) {
  Responder respond = r.respond;
  SyncSteps::Reply reply = [respond](const Status& s) { respond.Finish(s); };
  PushRequest req;
  std::vector<Tensor> values;
  std::vector<SparseGradient> sparse;
  Status s = DecodePush(r.frame, &req, &values, &sparse);
  if (!s.ok()) return reply(s);
  // A re-sent push (its first reply was lost with a connection) is
  // answered with the first copy's result instead of being applied again.
  const PushKey key{req.worker_id, req.incarnation, req.sequence};
  Status earlier;
  switch (push_log_.Begin(key, reply, &earlier)) {
    case PushLog::Verdict::kDone:
      ++duplicate_pushes_;
      return reply(earlier);
    case PushLog::Verdict::kWaiting:
      ++duplicate_pushes_;
      return;  // push_log_ answers it when the first copy is done
    case PushLog::Verdict::kApply:
      reply = [this, key, reply = std::move(reply)](const Status& st) {
        if (st.ok()) ++pushes_applied_;  // here, so that answers to retries do not count
        push_log_.Finish(key, st);
        reply(st);
      };
      break;
  }
  std::shared_ptr<SspClocks> clocks = ssp();
  if (clocks && (req.train_step || req.leaving)) {
    if (Status known = clocks->CheckWorker(req.worker_id); !known.ok()) return reply(known);
  }
  std::shared_ptr<SyncSteps> rounds = sync();
  if (req.train_step && rounds) {
    return rounds->Arrive(
        SyncSteps::Arrival{std::move(req), std::move(values), std::move(sparse), r.frame.payload, std::move(reply)});
  }
  {
    Table::UpdateScope update = table_.BeginUpdate();
    for (size_t i = 0; i < values.size() && s.ok(); ++i) {
      s = table_.Apply(req.grads[i].name, req.grads[i].update, values[i], req.learning_rate);
    }
    for (size_t i = 0; i < sparse.size() && s.ok(); ++i) {
      const SparseGradient& g = sparse[i];
      g.table->ApplyCheckedGradients(g.ids, g.count, g.values, req.learning_rate);  // checked in DecodePush
    }
    if (s.ok() && req.train_step && !req.global_step.empty()) table_.CountStep(req.global_step);
  }
  // ssp: the worker's clock moves only once its step is applied, so a read
  // the tick releases sees it.
  if (clocks && s.ok() && (req.train_step || req.leaving)) {
    s = req.leaving ? clocks->Leave(req.worker_id) : clocks->Advance(req.worker_id, req.step + 1);
  }
  reply(s);
}

// Decodes a push and checks every tensor before any is applied: a push
// applies whole or not at all.
Status DataPath::DecodePush(const InFrame& frame, PushRequest* req, std::vector<Tensor>* values,
                            std::vector<SparseGradient>* sparse) {
  RETURN_IF_ERROR(DecodeMessage(frame.control, req, "Push"));
  std::set<std::string> seen;
  for (const TensorDesc& d : req->grads) {
    RETURN_IF_ERROR(ValidateTensorDesc(d, frame.data_len));
    if (!seen.insert(d.name).second) return InvalidArgument("push names variable '" + d.name + "' more than once");
    Tensor t = ViewTensor(d, frame.payload, frame.data);
    RETURN_IF_ERROR(table_.CheckUpdate(d.name, d.update, d.row_begin, t));
    values->push_back(std::move(t));
  }
  std::set<std::string> tables;
  for (const SparseDesc& d : req->sparse) {
    RETURN_IF_ERROR(ValidateSparseDesc(d, frame.data_len, /*with_values=*/true));
    if (!tables.insert(d.table).second) {
      return InvalidArgument("push names sparse table '" + d.table + "' more than once");
    }
    ASSIGN_OR_RETURN(std::shared_ptr<SparseTable> shared, SparseTableOf(d));
    SparseTable* table = shared.get();  // lives as long as table_
    const auto* ids = reinterpret_cast<const int64_t*>(frame.data + d.ids_offset);
    RETURN_IF_ERROR(table->CheckGradients(ids, d.count));
    sparse->push_back(
        SparseGradient{table, ids, reinterpret_cast<const float*>(frame.data + d.values_offset), d.count});
  }
  if (req->train_step && !req->global_step.empty()) RETURN_IF_ERROR(table_.CheckCountable(req->global_step));
  if (std::isnan(req->learning_rate) || req->learning_rate > 1e6) {
    return InvalidArgument("push learning rate " + std::to_string(req->learning_rate) + " is outside [0, 1e6]");
  }
  return Status::OK();
}

}  // namespace cairn
