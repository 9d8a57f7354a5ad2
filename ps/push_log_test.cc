#include "ps/push_log.h"

#include <algorithm>
#include <atomic>
#include <deque>
#include <numeric>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace cairn {
namespace {

using Verdict = PushLog::Verdict;

PushKey Key(int32_t worker, uint64_t incarnation, uint64_t sequence) { return PushKey{worker, incarnation, sequence}; }

// Begin for a copy whose reply should not be kept.
Verdict BeginOnly(PushLog& log, const PushKey& key, Status* status = nullptr) {
  Status ignored;
  return log.Begin(key, nullptr, status ? status : &ignored);
}

// A reply that records what it was called with.
struct Answers {
  std::vector<Status> got;
  PushLog::Reply Reply() {
    return [this](const Status& s) { got.push_back(s); };
  }
};

TEST(PushLog, FirstCopyIsAppliedAndARetryAfterFinishGetsItsResult) {
  PushLog log;
  const PushKey ok = Key(0, 7, 1);
  const PushKey bad = Key(0, 7, 2);
  EXPECT_EQ(BeginOnly(log, ok), Verdict::kApply);
  EXPECT_EQ(BeginOnly(log, bad), Verdict::kApply);
  log.Finish(ok, Status::OK());
  log.Finish(bad, InvalidArgument("no variable 'w'"));

  Status status = Internal("unset");
  EXPECT_EQ(BeginOnly(log, ok, &status), Verdict::kDone);
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_EQ(BeginOnly(log, bad, &status), Verdict::kDone);
  EXPECT_EQ(status, InvalidArgument("no variable 'w'"));
  // And again: a refused push stays refused, it is not applied on a retry.
  EXPECT_EQ(BeginOnly(log, bad, &status), Verdict::kDone);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
}

TEST(PushLog, RetryWhileInFlightWaitsForTheFirstCopysResult) {
  PushLog log;
  const PushKey key = Key(3, 9, 5);
  Answers first_retry, second_retry;
  EXPECT_EQ(BeginOnly(log, key), Verdict::kApply);
  Status status;
  EXPECT_EQ(log.Begin(key, first_retry.Reply(), &status), Verdict::kWaiting);
  EXPECT_EQ(log.Begin(key, second_retry.Reply(), &status), Verdict::kWaiting);
  EXPECT_TRUE(first_retry.got.empty());

  log.Finish(key, DeadlineExceeded("worker 1 did not push"));
  ASSERT_EQ(first_retry.got.size(), 1u);
  ASSERT_EQ(second_retry.got.size(), 1u);
  EXPECT_EQ(first_retry.got[0], DeadlineExceeded("worker 1 did not push"));
  EXPECT_EQ(second_retry.got[0], DeadlineExceeded("worker 1 did not push"));
  EXPECT_EQ(BeginOnly(log, key, &status), Verdict::kDone);
  EXPECT_EQ(status.code(), StatusCode::kDeadlineExceeded);
}

TEST(PushLog, OutOfOrderSequencesFromOneClientAreEachAppliedOnce) {
  PushLog log;
  const std::vector<uint64_t> order = {3, 1, 5, 2, 4};
  for (uint64_t s : order) EXPECT_EQ(BeginOnly(log, Key(1, 42, s)), Verdict::kApply) << s;
  for (uint64_t s : {5, 2}) log.Finish(Key(1, 42, s), Status::OK());
  for (uint64_t s : order) {
    Verdict v = BeginOnly(log, Key(1, 42, s));
    EXPECT_EQ(v, (s == 5 || s == 2) ? Verdict::kDone : Verdict::kWaiting) << s;
  }
  for (uint64_t s : {1, 3, 4}) log.Finish(Key(1, 42, s), Status::OK());
  for (uint64_t s : order) EXPECT_EQ(BeginOnly(log, Key(1, 42, s)), Verdict::kDone) << s;
  EXPECT_EQ(BeginOnly(log, Key(1, 42, 6)), Verdict::kApply);
}

TEST(PushLog, TwoIncarnationsOfAWorkerAreIndependent) {
  PushLog log;
  EXPECT_EQ(BeginOnly(log, Key(2, 100, 1)), Verdict::kApply);
  log.Finish(Key(2, 100, 1), Status::OK());
  // The restarted process numbers its pushes from 1 again.
  EXPECT_EQ(BeginOnly(log, Key(2, 200, 1)), Verdict::kApply);
  EXPECT_EQ(BeginOnly(log, Key(2, 100, 1)), Verdict::kDone);
  EXPECT_EQ(BeginOnly(log, Key(2, 200, 1)), Verdict::kWaiting);
  // And another worker with the same incarnation is another client too.
  EXPECT_EQ(BeginOnly(log, Key(3, 100, 1)), Verdict::kApply);
}

TEST(PushLog, IncarnationOrSequenceZeroIsNeverDeduplicated) {
  PushLog log;
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(BeginOnly(log, Key(0, 0, 1)), Verdict::kApply);
    EXPECT_EQ(BeginOnly(log, Key(0, 5, 0)), Verdict::kApply);
    log.Finish(Key(0, 0, 1), Status::OK());  // a no-op
    log.Finish(Key(0, 5, 0), Internal("x"));
  }
  // It left no trace for the tracked keys of the same worker.
  EXPECT_EQ(BeginOnly(log, Key(0, 5, 1)), Verdict::kApply);
}

TEST(PushLog, SequenceOlderThanTheWindowIsAbortedNotApplied) {
  PushLog log(PushLog::Options{.window = 3, .max_clients = 8});
  for (uint64_t s = 1; s <= 5; ++s) {
    ASSERT_EQ(BeginOnly(log, Key(0, 1, s)), Verdict::kApply);
    log.Finish(Key(0, 1, s), Status::OK());
  }
  Status status;
  for (uint64_t s : {1, 2}) {
    EXPECT_EQ(BeginOnly(log, Key(0, 1, s), &status), Verdict::kDone) << s;
    EXPECT_EQ(status.code(), StatusCode::kAborted);
    EXPECT_NE(status.message().find("de-duplication window"), std::string::npos) << status;
  }
  for (uint64_t s : {3, 4, 5}) {
    EXPECT_EQ(BeginOnly(log, Key(0, 1, s), &status), Verdict::kDone) << s;
    EXPECT_TRUE(status.ok()) << s << ": " << status;
  }
  EXPECT_EQ(BeginOnly(log, Key(0, 1, 6)), Verdict::kApply);
}

TEST(PushLog, PushInFlightIsStillAwaitedAfterTheWindowPassedIt) {
  PushLog log(PushLog::Options{.window = 2, .max_clients = 8});
  ASSERT_EQ(BeginOnly(log, Key(0, 1, 1)), Verdict::kApply);  // a long sync step
  for (uint64_t s = 2; s <= 5; ++s) {
    ASSERT_EQ(BeginOnly(log, Key(0, 1, s)), Verdict::kApply);
    log.Finish(Key(0, 1, s), Status::OK());
  }
  Answers retry;
  Status status;
  EXPECT_EQ(log.Begin(Key(0, 1, 1), retry.Reply(), &status), Verdict::kWaiting);
  log.Finish(Key(0, 1, 1), Status::OK());
  ASSERT_EQ(retry.got.size(), 1u);
  EXPECT_TRUE(retry.got[0].ok());
}

TEST(PushLog, MaxClientsEvictsTheLeastRecentlySeenIdleClient) {
  PushLog log(PushLog::Options{.window = 16, .max_clients = 2});
  auto push = [&](int32_t worker, uint64_t s) {
    Verdict v = BeginOnly(log, Key(worker, 1, s));
    if (v == Verdict::kApply) log.Finish(Key(worker, 1, s), Status::OK());
    return v;
  };
  ASSERT_EQ(push(0, 1), Verdict::kApply);
  ASSERT_EQ(push(1, 1), Verdict::kApply);
  ASSERT_EQ(push(0, 1), Verdict::kDone);   // 0 seen last
  ASSERT_EQ(push(2, 1), Verdict::kApply);  // evicts 1
  EXPECT_EQ(push(0, 1), Verdict::kDone);
  EXPECT_EQ(push(1, 1), Verdict::kApply);  // forgotten; evicts 2

  // A client with a push in flight is kept even when it is the least recent.
  ASSERT_EQ(BeginOnly(log, Key(0, 1, 2)), Verdict::kApply);
  ASSERT_EQ(push(1, 2), Verdict::kApply);
  ASSERT_EQ(push(3, 1), Verdict::kApply);  // evicts 1, not 0
  EXPECT_EQ(BeginOnly(log, Key(0, 1, 2)), Verdict::kWaiting);
  EXPECT_EQ(push(1, 2), Verdict::kApply);  // 1 was forgotten; evicts 3

  // With every client busy, the limit gives way rather than a push in flight.
  ASSERT_EQ(BeginOnly(log, Key(1, 1, 3)), Verdict::kApply);
  ASSERT_EQ(BeginOnly(log, Key(4, 1, 1)), Verdict::kApply);
  EXPECT_EQ(BeginOnly(log, Key(0, 1, 2)), Verdict::kWaiting);
  EXPECT_EQ(BeginOnly(log, Key(1, 1, 3)), Verdict::kWaiting);
  EXPECT_EQ(BeginOnly(log, Key(4, 1, 1)), Verdict::kWaiting);
}

TEST(PushLog, ClearAnswersWaitersAndForgetsFinishedResults) {
  PushLog log;
  const PushKey finished = Key(0, 1, 1);
  const PushKey in_flight = Key(0, 1, 2);
  ASSERT_EQ(BeginOnly(log, finished), Verdict::kApply);
  log.Finish(finished, Status::OK());
  ASSERT_EQ(BeginOnly(log, in_flight), Verdict::kApply);
  Answers before_clear, after_clear;
  Status status;
  ASSERT_EQ(log.Begin(in_flight, before_clear.Reply(), &status), Verdict::kWaiting);

  log.Clear(Aborted("restored snapshot 4"));
  ASSERT_EQ(before_clear.got.size(), 1u);
  EXPECT_EQ(before_clear.got[0], Aborted("restored snapshot 4"));
  EXPECT_EQ(BeginOnly(log, finished), Verdict::kApply);
  // Still being applied: a new copy waits for it instead of applying beside it.
  ASSERT_EQ(log.Begin(in_flight, after_clear.Reply(), &status), Verdict::kWaiting);
  log.Finish(in_flight, Status::OK());
  EXPECT_EQ(before_clear.got.size(), 1u);
  ASSERT_EQ(after_clear.got.size(), 1u);
  EXPECT_TRUE(after_clear.got[0].ok());
}

TEST(PushLog, RepliesRunWithoutTheLockHeld) {
  PushLog log;
  const PushKey key = Key(0, 1, 1);
  ASSERT_EQ(BeginOnly(log, key), Verdict::kApply);
  Verdict seen_from_reply = Verdict::kApply;
  Status status;
  ASSERT_EQ(log.Begin(key, [&](const Status&) { seen_from_reply = BeginOnly(log, key); }, &status),
            Verdict::kWaiting);
  log.Finish(key, Status::OK());  // would deadlock if the reply ran under the lock
  EXPECT_EQ(seen_from_reply, Verdict::kDone);
}

TEST(PushLog, ConcurrentCopiesOfOverlappingKeysAreAppliedOncePerKey) {
  constexpr int kWorkers = 4, kIncarnations = 2, kSequences = 100, kThreads = 8;
  constexpr int kKeys = kWorkers * kIncarnations * kSequences;
  auto key_of = [](int i) {
    return Key(i % kWorkers, 1000 + (i / kWorkers) % kIncarnations, 1 + i / (kWorkers * kIncarnations));
  };
  auto result_of = [](int i) { return i % 3 == 0 ? Internal("push " + std::to_string(i)) : Status::OK(); };

  PushLog log;
  std::vector<std::atomic<int>> applies(kKeys);
  std::atomic<int> waited{0}, answered{0}, wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::vector<int> order(kKeys);
      std::iota(order.begin(), order.end(), 0);
      std::shuffle(order.begin(), order.end(), std::mt19937(t));
      std::deque<int> applying;  // finished a few Begins later, so other threads' copies wait
      auto finish_one = [&] {
        log.Finish(key_of(applying.front()), result_of(applying.front()));
        applying.pop_front();
      };
      for (int i : order) {
        Status status;
        auto reply = [&, i](const Status& s) {
          if (!(s == result_of(i))) ++wrong;
          ++answered;
        };
        switch (log.Begin(key_of(i), reply, &status)) {
          case Verdict::kApply:
            ++applies[i];
            applying.push_back(i);
            break;
          case Verdict::kDone:
            if (!(status == result_of(i))) ++wrong;
            break;
          case Verdict::kWaiting:
            ++waited;
            break;
        }
        if (applying.size() > 4) finish_one();
      }
      while (!applying.empty()) finish_one();
    });
  }
  for (std::thread& t : threads) t.join();

  int total = 0;
  for (int i = 0; i < kKeys; ++i) {
    EXPECT_EQ(applies[i].load(), 1) << "key " << i;
    total += applies[i].load();
  }
  EXPECT_EQ(total, kKeys);
  EXPECT_EQ(answered.load(), waited.load());
  EXPECT_EQ(wrong.load(), 0);
}

}  // namespace
}  // namespace cairn
