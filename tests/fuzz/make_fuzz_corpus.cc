// Writes the harnesses' seed corpora: valid inputs made with Cairn's own
// encoders (frames, every control message, handshake messages, a manifest),
// the example job files, cluster files and structured npz inputs, each in
// the layout its harness reads (see the harness's header comment).
//
//   make_fuzz_corpus OUT_DIR      (tests/fuzz/corpus: writes OUT_DIR/<harness>/<seed>)
//
// Deterministic: rerunning it rewrites the same files (the handshake's
// server hello carries a random nonce by design; its seeds use fixed ones).
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "common/frame.h"
#include "common/handshake.h"
#include "common/messages.h"
#include "common/snapshot/manifest.h"

namespace cairn {
namespace {

namespace fs = std::filesystem;

class CorpusWriter {
 public:
  explicit CorpusWriter(fs::path root) : root_(std::move(root)) {}
  void Write(const std::string& harness, const std::string& seed, const std::string& bytes) {
    fs::create_directories(root_ / harness);
    std::ofstream out(root_ / harness / seed, std::ios::binary | std::ios::trunc);
    out << bytes;
    if (!out) {
      std::cerr << "cannot write " << (root_ / harness / seed) << "\n";
      std::exit(1);
    }
    ++files_;
  }
  int files() const { return files_; }

 private:
  fs::path root_;
  int files_ = 0;
};

std::string Byte(int b) { return std::string(1, static_cast<char>(b)); }
template <typename T> std::string Le(T v) { return std::string(reinterpret_cast<const char*>(&v), sizeof(T)); }

// ---- Control messages, in messages_fuzzer.cc's kMessages order ----

TensorDesc Desc(const std::string& name, Shape shape, uint64_t offset, UpdateKind update = UpdateKind::kGradient) {
  TensorDesc d;
  d.name = name;
  d.dtype = DType::kFloat32;
  d.shape = shape;
  d.offset = offset;
  d.bytes = static_cast<uint64_t>(NumElements(shape)) * 4;
  d.update = update;
  return d;
}

SparseDesc Sparse(const std::string& table, uint64_t count, int32_t dim, uint64_t ids, uint64_t values) {
  SparseDesc d;
  d.table = table;
  d.count = count;
  d.dim = dim;
  d.ids_offset = ids;
  d.values_offset = values;
  return d;
}

std::vector<std::string> Messages() {
  HelloRequest hello{3, "servers 127.0.0.1:7000,127.0.0.1:7001 workers 2"};
  HelloReply hello_reply{WireStatus{}, 1, 0x1234567890abcdefull, 7, 400, 401, true, 12};

  CreateRequest create;
  create.mode = TrainingMode{Consistency::kSync, 2, 60000, MissingWorkers::kContinue};
  ShardDecl w;
  w.spec.name = "dense_0/W";
  w.spec.shape = {784, 128};
  w.spec.init = InitializerSpec{InitKind::kGlorotUniform, 0, -0.05, 0.05, 0, 0.05, 42};
  w.row_begin = 0;
  w.row_end = 392;
  w.optimizer.kind = "adam";
  ShardDecl step;
  step.spec.name = "global_step";
  step.spec.shape = {};
  step.spec.dtype = DType::kInt64;
  step.spec.trainable = false;
  step.row_end = 1;
  create.shards = {w, step};
  SparseTableDecl emb;
  emb.spec.name = "emb/C1";
  emb.spec.dim = 16;
  emb.spec.init = InitializerSpec{InitKind::kUniform, 0, -0.01, 0.01, 0, 0.05, 3};
  emb.optimizer.kind = "ftrl";
  create.sparse_tables = {emb};

  StatusReply status_reply{WireStatus::From(NotFound("variable 'w' is not on server 1"))};
  PullRequest pull{{"dense_0/W", "dense_0/b", "global_step"}};
  PullReply pull_reply;
  pull_reply.tensors = {Desc("dense_0/W", {392, 128}, 0), Desc("dense_0/b", {128}, 200704)};

  PushRequest push;
  push.worker_id = 1;
  push.incarnation = 99;
  push.sequence = 17;
  push.train_step = true;
  push.step = 16;
  push.learning_rate = 0.01f;
  push.global_step = "global_step";
  push.grads = {Desc("w", {4, 2}, 0), Desc("b", {2}, 64, UpdateKind::kAssignAdd)};
  push.sparse = {Sparse("emb/C1", 3, 4, 128, 192)};

  SparsePullRequest sparse_pull{{Sparse("emb/C1", 4, 16, 0, 0), Sparse("emb/C2", 1, 16, 32, 0)}};
  SparsePullReply sparse_pull_reply;
  sparse_pull_reply.tables = {Sparse("emb/C1", 4, 16, 0, 0)};
  StatsReply stats{WireStatus{}, 1000, 2000, 3, 12};
  SnapshotPrepareRequest prepare{100, "/tmp/model", {"dense_0/W", "global_step", "emb/C1"}, {"global_step"}};
  SnapshotPrepareReply prepare_reply;
  prepare_reply.shards = 2;
  prepare_reply.bytes = 1 << 20;
  prepare_reply.copy_seconds = 0.25;
  prepare_reply.reported = {ReportedRows{"global_step", 0, {100}}};
  prepare_reply.sparse = {SparseRowCount{"emb/C1", 0, 5000}};
  SnapshotWaitRequest wait{100};
  SnapshotWaitReply wait_reply{WireStatus::From(DataLoss("disk full")), 4096, 1.5};
  SnapshotRestoreRequest restore;
  restore.phase = RestorePhase::kStage;
  restore.model_dir = "/tmp/model";
  restore.step = 100;
  restore.variables = {"dense_0/W"};
  restore.saved_names = {"old/W"};
  restore.sync_step = 101;
  restore.restore_id = 5;
  restore.num_servers = 2;
  SnapshotRestoreReply restore_reply{WireStatus{}, 2, 4096, 0.5};

  return {EncodeMessage(hello),        EncodeMessage(hello_reply),   EncodeMessage(create),
          EncodeMessage(status_reply), EncodeMessage(pull),          EncodeMessage(pull_reply),
          EncodeMessage(push),         EncodeMessage(sparse_pull),   EncodeMessage(sparse_pull_reply),
          EncodeMessage(stats),        EncodeMessage(prepare),       EncodeMessage(prepare_reply),
          EncodeMessage(wait),         EncodeMessage(wait_reply),    EncodeMessage(restore),
          EncodeMessage(restore_reply)};
}

constexpr const char* kMessageNames[] = {
    "hello",      "hello_reply",       "create",     "status_reply",  "pull",           "pull_reply",
    "push",       "sparse_pull",       "sparse_pull_reply", "stats_reply", "snapshot_prepare",
    "snapshot_prepare_reply", "snapshot_wait", "snapshot_wait_reply", "snapshot_restore",
    "snapshot_restore_reply"};

void WriteMessages(CorpusWriter& out) {
  const std::vector<std::string> messages = Messages();
  for (size_t i = 0; i < messages.size(); ++i) out.Write("fuzz_messages", kMessageNames[i], Byte(i) + messages[i]);
}

// ---- Frames ----

std::string Frame(FrameType type, bool reply, uint64_t id, std::string control, const std::string& data) {
  OutFrame f;
  f.type = reply ? ReplyType(type) : static_cast<uint16_t>(type);
  f.request_id = id;
  f.control = std::move(control);
  if (!data.empty()) f.data.push_back(ByteSpan{data.data(), data.size()});
  f.Seal();
  return SerializeFrame(f);
}

void WriteFrames(CorpusWriter& out) {
  const std::vector<std::string> m = Messages();
  const std::string floats(64 + 32, '\x3f');
  struct Seed {
    const char* name;
    std::string frame;
  };
  const Seed seeds[] = {
      {"hello", Frame(FrameType::kHello, false, 1, m[0], "")},
      {"hello_reply", Frame(FrameType::kHello, true, 1, m[1], "")},
      {"pull", Frame(FrameType::kPull, false, 2, m[4], "")},
      {"push_with_data", Frame(FrameType::kPush, false, 3, m[6], floats)},
      {"stats_empty_control", Frame(FrameType::kStats, false, 4, "", "")},
      {"sparse_pull_reply_data", Frame(FrameType::kSparsePull, true, 5, m[8], std::string(256, '\x01'))},
      {"snapshot_wait", Frame(FrameType::kSnapshotWait, false, 6, m[12], "")},
  };
  for (const Seed& s : seeds) {
    out.Write("fuzz_frame", std::string("raw_") + s.name, Byte(0) + s.frame);
    out.Write("fuzz_frame", std::string("sealed_") + s.name, Byte(1) + s.frame);
  }
  out.Write("fuzz_frame", "tight_limits_push", Byte(2) + seeds[3].frame);
  // Mode 3 (built) reads its fields with FuzzedDataProvider: any bytes do.
  out.Write("fuzz_frame", "built_push", Byte(3) + m[6] + std::string(40, '\x02'));
}

// ---- Handshake ----

constexpr std::string_view kClientLabel = "cairn handshake v1 client";
constexpr std::string_view kServerLabel = "cairn handshake v1 server";

void WriteHandshake(CorpusWriter& out) {
  std::shared_ptr<const Secret> secret = *Secret::FromBytes("cairn fuzz secret: 32 bytes or more, fixed so runs repeat");
  ServerHello sh;
  sh.server_index = 2;
  for (size_t i = 0; i < kNonceBytes; ++i) sh.nonce[i] = static_cast<uint8_t>(i * 7 + 1);
  const std::string server_hello = EncodeServerHello(sh);
  ClientHello ch;
  ch.role = PeerRole::kWorker;
  ch.index = 3;
  for (size_t i = 0; i < kNonceBytes; ++i) ch.nonce[i] = static_cast<uint8_t>(i * 13 + 5);
  std::string client_hello = EncodeClientHello(ch);
  const Mac client_mac = HandshakeMac(*secret, kClientLabel, server_hello, std::string_view(client_hello).substr(0, 48));
  std::memcpy(client_hello.data() + 48, client_mac.data(), kMacBytes);
  const std::string proof = EncodeServerProof(HandshakeMac(*secret, kServerLabel, server_hello, client_hello));

  out.Write("fuzz_handshake", "server_hello", Byte(0) + server_hello);
  out.Write("fuzz_handshake", "client_hello", Byte(1) + client_hello);
  out.Write("fuzz_handshake", "server_proof", Byte(2) + proof);
  // Mode 3: u8 insecure, u32 server index, client hello; +8: signed.
  out.Write("fuzz_handshake", "server_side_signed", Byte(3 | 8) + Byte(0) + Le<uint32_t>(2) + client_hello);
  out.Write("fuzz_handshake", "server_side_insecure", Byte(3) + Byte(1) + Le<uint32_t>(0) + client_hello);
  // Mode 4: u8 has-secret, u8 role, u32 index, server hello, proof.
  out.Write("fuzz_handshake", "client_side_signed", Byte(4 | 8) + Byte(1) + Byte(0) + Le<uint32_t>(3) + server_hello);
  out.Write("fuzz_handshake", "client_side_proof", Byte(4) + Byte(1) + Byte(1) + Le<uint32_t>(0) + server_hello + proof);
  // Mode 5: u8 secure, u8 role, u32 index, u32 bit flips.
  out.Write("fuzz_handshake", "exchange_clean", Byte(5) + Byte(1) + Byte(0) + Le<uint32_t>(1));
  out.Write("fuzz_handshake", "exchange_flips",
            Byte(5) + Byte(1) + Byte(2) + Le<uint32_t>(4) + Le<uint32_t>(100) + Le<uint32_t>(600) + Le<uint32_t>(1200));
}

// ---- Manifest ----

SnapshotManifest ExampleManifest() {
  SnapshotManifest m;
  m.step = 1200;
  m.global_step = 1200;
  m.created = 1700000000.5;
  m.num_servers = 2;
  m.mode = TrainingMode{Consistency::kSync, 2, 60000};
  m.optimizer.kind = "adam";
  m.optimizer.learning_rate = 0.001;
  ManifestVariable w;
  w.spec.name = "dense_0/W";
  w.spec.shape = {784, 128};
  w.spec.init = InitializerSpec{InitKind::kGlorotUniform, 0, -0.05, 0.05, 0, 0.05, 1};
  w.optimizer = "Adam";
  w.slots = {"m", "v", "beta1_power", "beta2_power"};
  w.scalar_slots = {false, false, true, true};
  ManifestVariable step;
  step.spec.name = "global_step";
  step.spec.dtype = DType::kInt64;
  step.spec.trainable = false;
  m.variables = {w, step};
  m.shards = {{"dense_0/W", 0, 392, 0}, {"dense_0/W", 392, 784, 1}, {"global_step", 0, 1, 0}};
  ManifestSparseTable t;
  t.spec.name = "emb/C1";
  t.spec.dim = 8;
  t.spec.init = InitializerSpec{InitKind::kNormal, 0, -0.05, 0.05, 0, 0.01, 9};
  t.optimizer = "Ftrl";
  t.slots = {"accumulator", "linear"};
  t.scalar_slots = {false, false};
  t.rows_per_server = {1000, 1024};
  m.sparse_tables = {t};
  m.collections = {{"trainable_variables", {"dense_0/W"}}, {"global_step", {"global_step"}}};
  m.workers = {{0, 600, 1, 100, 11}, {1, 600, 1, 100, 12}};
  m.job_config = "name: mlp\nmodel: {kind: mlp}\n";
  m.bytes = 3 * 784 * 128 * 4;
  return m;
}

void WriteManifest(CorpusWriter& out) {
  SnapshotManifest m = ExampleManifest();
  const std::string file = *EncodeManifestFile(m);
  out.Write("fuzz_manifest", "full_file", Byte(0) + file);
  const size_t line = file.rfind('\n', file.size() - 2);
  out.Write("fuzz_manifest", "full_json", Byte(1) + file.substr(0, line));
  // A dense-only manifest with special doubles.
  m.sparse_tables.clear();
  m.optimizer.l1 = std::numeric_limits<double>::infinity();
  m.variables[0].spec.init.mean = std::numeric_limits<double>::quiet_NaN();
  const std::string dense = *EncodeManifestFile(m);
  out.Write("fuzz_manifest", "dense_json", Byte(1) + dense.substr(0, dense.rfind('\n', dense.size() - 2)));
}

// ---- Job and cluster files ----

std::string ReadAll(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteJobs(CorpusWriter& out) {
  for (const auto& e : fs::directory_iterator(fs::path(CAIRN_SOURCE_DIR) / "launch" / "examples")) {
    if (e.path().extension() == ".yaml") out.Write("fuzz_job_config", e.path().filename().string(), ReadAll(e.path()));
  }
  out.Write("fuzz_job_config", "defaults", "{}\n");
  out.Write("fuzz_job_config", "sync_snapshot",
            "name: s\ncluster: {servers: 2, workers: 3, consistency: sync, sync_timeout_ms: 1000, timeout_ms: 5000,\n"
            "          missing_workers: continue, max_recoveries: 2}\n"
            "snapshot: {model_dir: /tmp/m, every_steps: 10, every_secs: 0, max_to_keep: 2}\n"
            "optimizer: {kind: momentum, learning_rate: 0.1, momentum: 0.9, nesterov: true, schedule: step,\n"
            "            decay_rate: 0.5, decay_steps: 100}\n");
  out.Write("fuzz_job_config", "criteo_paths",
            "model: {kind: click_wide_deep, embedding_dim: 8, hidden: [64, 32]}\n"
            "data: {kind: criteo_tsv, paths: [a.tsv, b.tsv], test_paths: c.tsv, skip_malformed: true}\n");

  out.Write("fuzz_cluster_file", "two_servers", "servers: [127.0.0.1:7000, 127.0.0.1:7001]\nworkers: 2\n");
  out.Write("fuzz_cluster_file", "bind_secret",
            "servers:\n  - host-a:7000\n  - \"[::1]:7001\"\nworkers: 4\nbind: 0.0.0.0\nsecret_file: cairn.secret\n");
}

// ---- npz (npz_fuzzer.cc reads its input with FuzzedDataProvider) ----

void WriteNpz(CorpusWriter& out) {
  // FuzzedDataProvider takes integers from the end and bytes from the front:
  // a deterministic spread of sizes is the useful seed.
  uint64_t x = 0x9e3779b97f4a7c15ull;
  for (int seed = 0; seed < 6; ++seed) {
    std::string bytes;
    for (int i = 0; i < 64 << seed % 4; ++i) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      bytes += static_cast<char>(x);
    }
    out.Write("fuzz_npz", "random_" + std::to_string(seed), bytes);
  }
}

}  // namespace
}  // namespace cairn

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: make_fuzz_corpus OUT_DIR  (e.g. tests/fuzz/corpus)\n";
    return 2;
  }
  cairn::CorpusWriter out(argv[1]);
  cairn::WriteMessages(out);
  cairn::WriteFrames(out);
  cairn::WriteHandshake(out);
  cairn::WriteManifest(out);
  cairn::WriteJobs(out);
  cairn::WriteNpz(out);
  std::cout << "wrote " << out.files() << " seeds under " << argv[1] << "\n";
  return 0;
}
