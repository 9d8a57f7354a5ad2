// Sparse tables through real servers on 127.0.0.1: PsClient's sparse pull
// and push against a SparseTable computed in the test, and requests no
// Cairn client would send.
#include <cstring>
#include <future>
#include <thread>

#include <gtest/gtest.h>

#include "common/asio_transport.h"
#include "common/messages.h"
#include "ps/server.h"
#include "ps/sparse_table.h"
#include "worker/ps_client.h"
#include "tests/test_secret.h"

namespace cairn {
namespace {

using std::chrono::milliseconds;

SparseTableSpec Table(const std::string& name, int32_t dim) {
  SparseTableSpec s;
  s.name = name;
  s.dim = dim;
  s.init.kind = InitKind::kUniform;
  s.init.seed = 5;
  return s;
}

OptimizerSpec Adagrad() {
  OptimizerSpec o;
  o.kind = "adagrad";
  o.learning_rate = 0.1;
  return o;
}

Tensor Ids(const std::vector<int64_t>& ids) {
  Tensor t = Tensor::Uninitialized(DType::kInt64, {static_cast<int64_t>(ids.size())});
  std::copy(ids.begin(), ids.end(), t.data<int64_t>());
  return t;
}

std::vector<float> Floats(const Tensor& t) {
  return std::vector<float>(t.data<float>(), t.data<float>() + t.num_elements());
}

class SparseServerTest : public ::testing::Test {
 protected:
  void StartServers(int n) {
    for (int i = 0; i < n; ++i) {
      ServerOptions o;
      o.index = i;
      auto s = Server::Start(loop_, WithTestAuth(o));
      ASSERT_TRUE(s.ok()) << s.status();
      endpoints_.push_back((*s)->endpoint());
      servers_.push_back(std::move(*s));
    }
    transport_ = std::make_unique<AsioTransport>(loop_, endpoints_, TestTransportOptions());
  }

  std::unique_ptr<PsClient> Client(int worker = 0, const TrainingMode& mode = {}) {
    PsClientOptions o;
    o.timeout = milliseconds(10000);
    o.worker_id = worker;
    auto client = std::make_unique<PsClient>(transport_.get(), o);
    EXPECT_TRUE(client->Create({}, Adagrad(), mode).ok());
    Status s = client->CreateSparse({Table("emb/user", 4), Table("emb/item", 3)}, Adagrad());
    EXPECT_TRUE(s.ok()) << s;
    return client;
  }

  // A frame of `type` with `control` and `data` to server 0; the reply's status.
  Status Call(FrameType type, const std::string& control, const std::vector<int64_t>& data = {}) {
    auto bytes = std::make_shared<std::vector<int64_t>>(data);
    OutFrame f;
    f.type = static_cast<uint16_t>(type);
    f.control = control;
    if (!bytes->empty()) f.data.push_back(ByteSpan{bytes->data(), bytes->size() * sizeof(int64_t)});
    f.keepalive.push_back(bytes);
    std::vector<std::pair<int, OutFrame>> calls;
    calls.emplace_back(0, std::move(f));
    auto replies = CallAll(*transport_, std::move(calls), DeadlineAfter(milliseconds(5000)));
    if (!replies[0].ok()) return replies[0].status().WithContext("transport");
    StatusReply reply;
    Status decoded = DecodeMessage(replies[0]->control, &reply, "reply");
    if (!decoded.ok()) return decoded.WithContext("reply");
    return reply.status.ToStatus();
  }

  EventLoop loop_{2};
  std::vector<std::unique_ptr<Server>> servers_;
  std::vector<Endpoint> endpoints_;
  std::unique_ptr<AsioTransport> transport_;
};

TEST_F(SparseServerTest, PullAndPushAcrossOneTwoAndThreeServersMatchOneTable) {
  const std::vector<int64_t> ids = {7, -2, 1LL << 40, 123456789, 0, 31, 8};
  std::vector<float> grad(ids.size() * 4);
  for (size_t i = 0; i < grad.size(); ++i) grad[i] = 0.25f * static_cast<float>(i % 7) - 0.5f;
  // The reference: one table holding every row, updated twice.
  auto reference = SparseTable::Create(Table("emb/user", 4), Adagrad());
  ASSERT_TRUE(reference.ok());
  ASSERT_TRUE((*reference)->ApplyGradients(ids.data(), ids.size(), grad.data()).ok());
  ASSERT_TRUE((*reference)->ApplyGradients(ids.data(), ids.size(), grad.data()).ok());
  std::vector<float> expected(ids.size() * 4);
  ASSERT_TRUE((*reference)->Pull(ids.data(), ids.size(), expected.data()).ok());

  for (int servers : {1, 2, 3}) {
    SCOPED_TRACE(std::to_string(servers) + " server(s)");
    servers_.clear();
    endpoints_.clear();
    StartServers(servers);
    auto client = Client();
    // Before any update: the initial values, in the request's order, repeats included.
    std::vector<int64_t> with_repeat = ids;
    with_repeat.push_back(ids[0]);
    auto first = client->SparsePull({{"emb/user", Ids(with_repeat)}});
    ASSERT_TRUE(first.ok()) << first.status();
    ASSERT_EQ(first->at("emb/user").shape(), (Shape{static_cast<int64_t>(with_repeat.size()), 4}));
    for (size_t i = 0; i < with_repeat.size(); ++i) {
      std::vector<float> row(4);
      InitializeSparseRow(Table("emb/user", 4), with_repeat[i], row.data());
      EXPECT_EQ(std::vector<float>(first->at("emb/user").data<float>() + 4 * i,
                                   first->at("emb/user").data<float>() + 4 * i + 4),
                row)
          << "id " << with_repeat[i];
    }
    PushBatch batch;
    batch.sparse_gradients["emb/user"] = SparseRowsUpdate{Ids(ids), Tensor::FromVector({7, 4}, grad)};
    ASSERT_TRUE(client->Push(batch).ok());
    ASSERT_TRUE(client->Push(batch).ok());
    auto after = client->SparsePull({{"emb/user", Ids(ids)}, {"emb/item", Ids({7})}});
    ASSERT_TRUE(after.ok()) << after.status();
    EXPECT_EQ(Floats(after->at("emb/user")), expected);
    std::vector<float> item(3);
    InitializeSparseRow(Table("emb/item", 3), 7, item.data());
    EXPECT_EQ(Floats(after->at("emb/item")), item) << "a table nobody pushed to is untouched";
  }
}

TEST_F(SparseServerTest, ASyncStepAppliesTheMeanOfTheWorkersRowsOnce) {
  StartServers(2);
  TrainingMode sync;
  sync.consistency = Consistency::kSync;
  sync.num_workers = 2;
  sync.sync_timeout_ms = 20000;
  auto w0 = Client(0, sync);
  auto w1 = Client(1, sync);
  // Worker 0 touches ids 1, 2; worker 1 ids 2, 3 (dim 4).
  PushBatch b0, b1;
  b0.train_step = b1.train_step = true;
  b0.sparse_gradients["emb/user"] = SparseRowsUpdate{Ids({1, 2}), Tensor::FromVector({2, 4}, {1, 1, 1, 1, 2, 2, 2, 2})};
  b1.sparse_gradients["emb/user"] = SparseRowsUpdate{Ids({2, 3}), Tensor::FromVector({2, 4}, {4, 4, 4, 4, 6, 6, 6, 6})};
  std::future<Status> p0 = std::async(std::launch::async, [&] { return w0->Push(b0); });
  Status s1 = w1->Push(b1);
  ASSERT_TRUE(s1.ok()) << s1;
  ASSERT_TRUE(p0.get().ok());
  // The reference: the mean over both workers (an absent id adds zero), once.
  auto reference = SparseTable::Create(Table("emb/user", 4), Adagrad());
  const std::vector<int64_t> ids = {1, 2, 3};
  const std::vector<float> mean = {0.5f, 0.5f, 0.5f, 0.5f, 3, 3, 3, 3, 3, 3, 3, 3};
  ASSERT_TRUE((*reference)->ApplyGradients(ids.data(), 3, mean.data()).ok());
  std::vector<float> expected(12);
  ASSERT_TRUE((*reference)->Pull(ids.data(), 3, expected.data()).ok());
  auto got = w0->SparsePull({{"emb/user", Ids(ids)}});
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(Floats(got->at("emb/user")), expected);
}

// --- Requests no Cairn client would send ------------------------------------

SparseDesc Desc(const std::string& table, uint64_t count, int32_t dim, uint64_t ids_offset = 0,
                uint64_t values_offset = 0) {
  SparseDesc d;
  d.table = table;
  d.count = count;
  d.dim = dim;
  d.ids_offset = ids_offset;
  d.values_offset = values_offset;
  return d;
}

// Ids 1..n, spread over the servers by their hash.
std::vector<int64_t> ManyIds(int64_t n, int64_t first = 1) {
  std::vector<int64_t> ids(n);
  for (int64_t i = 0; i < n; ++i) ids[i] = first + i;
  return ids;
}

// Pulls big enough to be looked up a chunk at a time as the reply is
// written (several chunks per table, two tables of different dims, so a
// table's padding sits between chunks), on one and two servers: the rows
// are the tables', in the request's order, repeats included.
TEST_F(SparseServerTest, ALargePullOfTwoTablesIsLookedUpAsItIsSentAndMatchesTheTables) {
  std::vector<int64_t> users = ManyIds(150001), items = ManyIds(70003, 1000);
  users.push_back(users[5]);  // a repeat, last
  std::vector<float> grad(items.size() * 3);
  for (size_t i = 0; i < grad.size(); ++i) grad[i] = 0.125f * static_cast<float>(i % 9) - 0.5f;
  auto reference = SparseTable::Create(Table("emb/item", 3), Adagrad());
  ASSERT_TRUE(reference.ok());
  ASSERT_TRUE((*reference)->ApplyGradients(items.data(), items.size(), grad.data()).ok());
  std::vector<float> want_items(items.size() * 3), want_users(users.size() * 4);
  ASSERT_TRUE((*reference)->Pull(items.data(), items.size(), want_items.data()).ok());
  for (size_t i = 0; i < users.size(); ++i) InitializeSparseRow(Table("emb/user", 4), users[i], &want_users[4 * i]);
  for (int servers : {1, 2}) {
    SCOPED_TRACE(std::to_string(servers) + " server(s)");
    servers_.clear();
    endpoints_.clear();
    StartServers(servers);
    auto client = Client();
    PushBatch batch;
    batch.sparse_gradients["emb/item"] =
        SparseRowsUpdate{Ids(items), Tensor::FromVector({static_cast<int64_t>(items.size()), 3}, grad)};
    ASSERT_TRUE(client->Push(batch).ok());
    auto got = client->SparsePull({{"emb/user", Ids(users)}, {"emb/item", Ids(items)}});
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(Floats(got->at("emb/item")), want_items);
    EXPECT_EQ(Floats(got->at("emb/user")), want_users);
    // The reserved id anywhere in a large pull is refused before a row is sent.
    std::vector<int64_t> bad = users;
    bad[bad.size() - 7] = kReservedSparseId;
    auto refused = client->SparsePull({{"emb/user", Ids(bad)}});
    EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument) << refused.status();
    auto again = client->SparsePull({{"emb/item", Ids(items)}});
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_EQ(Floats(again->at("emb/item")), want_items);
  }
}

// Large pulls while another worker pushes to every row they read, again
// and again: each row pulled is the table's row as of some push (never
// half of one), and along one pull the rows never go back to an older push
// (each chunk is read under the table's lock, in order).
TEST_F(SparseServerTest, RowsOfALargePullTakenWhilePushesLandAreEachAsOfOnePushInOrder) {
  StartServers(1);
  auto puller = Client(0);
  auto pusher = Client(1);
  const std::vector<int64_t> ids = ManyIds(40000);
  constexpr int kPushes = 12;
  std::vector<float> grad(ids.size() * 4);
  for (size_t i = 0; i < grad.size(); ++i) grad[i] = 0.25f + 0.01f * static_cast<float>(i % 5);
  // Every state each row goes through: states[k] after k pushes.
  auto reference = SparseTable::Create(Table("emb/user", 4), Adagrad());
  ASSERT_TRUE(reference.ok());
  std::vector<std::vector<float>> states(kPushes + 1, std::vector<float>(ids.size() * 4));
  ASSERT_TRUE((*reference)->Pull(ids.data(), ids.size(), states[0].data()).ok());
  for (int k = 1; k <= kPushes; ++k) {
    ASSERT_TRUE((*reference)->ApplyGradients(ids.data(), ids.size(), grad.data()).ok());
    ASSERT_TRUE((*reference)->Pull(ids.data(), ids.size(), states[k].data()).ok());
  }
  auto pushes = std::async(std::launch::async, [&] {
    PushBatch batch;
    batch.sparse_gradients["emb/user"] =
        SparseRowsUpdate{Ids(ids), Tensor::FromVector({static_cast<int64_t>(ids.size()), 4}, grad)};
    for (int k = 0; k < kPushes; ++k) {
      Status s = pusher->Push(batch);
      if (!s.ok()) return s;
    }
    return Status::OK();
  });
  int pulls = 0, mixed = 0;
  bool pushes_done = false;
  while (!pushes_done || pulls < 2) {
    pushes_done = pushes.wait_for(std::chrono::seconds(0)) == std::future_status::ready;
    auto got = puller->SparsePull({{"emb/user", Ids(ids)}});
    ASSERT_TRUE(got.ok()) << got.status();
    ++pulls;
    const float* rows = got->at("emb/user").data<float>();
    int k = 0, first_k = -1;
    for (size_t i = 0; i < ids.size(); ++i) {
      while (k <= kPushes && std::memcmp(rows + 4 * i, &states[k][4 * i], 4 * sizeof(float)) != 0) ++k;
      ASSERT_LE(k, kPushes) << "pull " << pulls << ": row " << i << " is no push's state, or older than the row before";
      if (first_k < 0) first_k = k;
    }
    if (k != first_k) ++mixed;
  }
  ASSERT_TRUE(pushes.get().ok());
  auto last = puller->SparsePull({{"emb/user", Ids(ids)}});
  ASSERT_TRUE(last.ok());
  EXPECT_EQ(Floats(last->at("emb/user")), states[kPushes]);
  RecordProperty("pulls_spanning_a_push", mixed);
}

TEST_F(SparseServerTest, BadSparsePullsGetErrorRepliesAndTheServerServesOn) {
  StartServers(1);
  auto client = Client();
  auto pull = [&](SparseDesc d, const std::vector<int64_t>& ids) {
    SparsePullRequest req;
    req.tables = {d};
    return Call(FrameType::kSparsePull, EncodeMessage(req), ids);
  };
  Status s = pull(Desc("emb/ghost", 1, 4), {1});
  EXPECT_EQ(s.code(), StatusCode::kNotFound) << s;
  EXPECT_NE(s.message().find("emb/ghost"), std::string::npos) << s;
  s = pull(Desc("emb/user", 1, 8), {1});
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find("has dim 4; the request says 8"), std::string::npos) << s;
  s = pull(Desc("emb/user", 5, 4), {1, 2});  // five ids claimed, two sent: a truncated id array
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find("ids lie outside"), std::string::npos) << s;
  s = pull(Desc("emb/user", SparseLimits{}.max_ids_per_request + 1, 4), {1});
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find("exceed the limit"), std::string::npos) << s;
  s = pull(Desc("emb/user", 1, 4), {kReservedSparseId});
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s;
  // The server serves on.
  auto ok = client->SparsePull({{"emb/user", Ids({1, 2})}});
  EXPECT_TRUE(ok.ok()) << ok.status();
}

TEST_F(SparseServerTest, BadSparsePushesAreRefusedWholeAndChangeNothing) {
  StartServers(1);
  auto client = Client();
  auto before = client->SparsePull({{"emb/user", Ids({1, 2})}});
  ASSERT_TRUE(before.ok());
  // ids {1, 2} then 2 x 4 floats (as int64 words: 4 words of float bits).
  std::vector<int64_t> data = {1, 2, 0, 0, 0, 0};
  auto push = [&](std::vector<SparseDesc> descs, std::vector<int64_t> bytes, std::vector<TensorDesc> dense = {}) {
    PushRequest req;
    req.worker_id = 0;
    req.sparse = std::move(descs);
    req.grads = std::move(dense);
    return Call(FrameType::kPush, EncodeMessage(req), bytes);
  };
  Status s = push({Desc("emb/ghost", 2, 4, 0, 16)}, data);
  EXPECT_EQ(s.code(), StatusCode::kNotFound) << s;
  s = push({Desc("emb/user", 2, 3, 0, 16)}, data);
  EXPECT_NE(s.message().find("has dim 4; the request says 3"), std::string::npos) << s;
  s = push({Desc("emb/user", 2, 4, 0, 24)}, data);  // the values run past the data
  EXPECT_NE(s.message().find("values lie outside"), std::string::npos) << s;
  s = push({Desc("emb/user", 2, 4, 0, 16)}, {1, 1, 0, 0, 0, 0});  // id 1 twice
  EXPECT_NE(s.message().find("more than once"), std::string::npos) << s;
  s = push({Desc("emb/user", 2, 4, 0, 16), Desc("emb/user", 2, 4, 0, 16)}, data);
  EXPECT_NE(s.message().find("names sparse table 'emb/user' more than once"), std::string::npos) << s;
  // A good sparse part beside a bad dense one: nothing is applied.
  TensorDesc bad_dense{"w/ghost", DType::kFloat32, {1}, 0, 0, 4, UpdateKind::kGradient};
  s = push({Desc("emb/user", 2, 4, 0, 16)}, data, {bad_dense});
  EXPECT_FALSE(s.ok());
  auto after = client->SparsePull({{"emb/user", Ids({1, 2})}});
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(Floats(after->at("emb/user")), Floats(before->at("emb/user")));
}

TEST_F(SparseServerTest, ARedeclaredTableMustMatchAndADenseNameIsNotATable) {
  StartServers(1);
  auto client = Client();
  SparseTableSpec other = Table("emb/user", 8);
  Status s = client->CreateSparse({other}, Adagrad());
  EXPECT_EQ(s.code(), StatusCode::kAlreadyExists) << s;
  EXPECT_NE(s.message().find("emb/user dim 4"), std::string::npos) << s;
  VariableSpec dense{"emb/item", {2, 3}, DType::kFloat32, {}, true};
  PsClientOptions o;
  PsClient second(transport_.get(), o);
  s = second.Create({dense}, Adagrad(), TrainingMode{});
  EXPECT_EQ(s.code(), StatusCode::kAlreadyExists) << s;
  EXPECT_NE(s.message().find("is a sparse table here"), std::string::npos) << s;
}

}  // namespace
}  // namespace cairn
