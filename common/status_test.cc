#include "common/status.h"

#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

namespace cairn {
namespace {

TEST(Status, DefaultConstructedStatusIsOkWithEmptyMessage) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kOk);
  EXPECT_EQ(s.message(), "");
  EXPECT_EQ(s.ToString(), "OK");
  EXPECT_EQ(s, Status::OK());
}

TEST(Status, EachHelperSetsItsCodeAndMessage) {
  struct Case {
    Status status;
    StatusCode code;
    const char* name;
  };
  const std::vector<Case> cases = {
      {InvalidArgument("m"), StatusCode::kInvalidArgument, "InvalidArgument"},
      {NotFound("m"), StatusCode::kNotFound, "NotFound"},
      {AlreadyExists("m"), StatusCode::kAlreadyExists, "AlreadyExists"},
      {FailedPrecondition("m"), StatusCode::kFailedPrecondition, "FailedPrecondition"},
      {OutOfRange("m"), StatusCode::kOutOfRange, "OutOfRange"},
      {Unavailable("m"), StatusCode::kUnavailable, "Unavailable"},
      {DeadlineExceeded("m"), StatusCode::kDeadlineExceeded, "DeadlineExceeded"},
      {DataLoss("m"), StatusCode::kDataLoss, "DataLoss"},
      {Internal("m"), StatusCode::kInternal, "Internal"},
      {Cancelled("m"), StatusCode::kCancelled, "Cancelled"},
      {Unimplemented("m"), StatusCode::kUnimplemented, "Unimplemented"},
      {Aborted("m"), StatusCode::kAborted, "Aborted"},
      {PermissionDenied("m"), StatusCode::kPermissionDenied, "PermissionDenied"},
  };
  ASSERT_EQ(cases.size(), 13u);  // every non-OK code
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_FALSE(c.status.ok());
    EXPECT_EQ(c.status.code(), c.code);
    EXPECT_EQ(c.status.message(), "m");
    EXPECT_STREQ(StatusCodeName(c.code), c.name);
    EXPECT_EQ(c.status.ToString(), std::string(c.name) + ": m");
  }
}

TEST(Status, StatusCodeNameOfOkAndOfAnOutOfRangeValue) {
  EXPECT_STREQ(StatusCodeName(StatusCode::kOk), "OK");
  EXPECT_STREQ(StatusCodeName(static_cast<StatusCode>(99)), "Unknown");
}

TEST(Status, ToStringIsCodeNameColonMessage) {
  EXPECT_EQ(NotFound("x").ToString(), "NotFound: x");
  EXPECT_EQ(NotFound("variable 'w' is not on server 1").ToString(),
            "NotFound: variable 'w' is not on server 1");
}

TEST(Status, StreamOperatorWritesToString) {
  std::ostringstream os;
  os << DataLoss("bad bytes");
  EXPECT_EQ(os.str(), "DataLoss: bad bytes");
  std::ostringstream ok;
  ok << Status::OK();
  EXPECT_EQ(ok.str(), "OK");
}

TEST(Status, WithContextPrependsContextAndKeepsCode) {
  Status s = Unavailable("connection refused").WithContext("pull from server 1");
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_EQ(s.message(), "pull from server 1: connection refused");
  EXPECT_EQ(s.ToString(), "Unavailable: pull from server 1: connection refused");
  // Context nests outermost-first.
  Status nested = s.WithContext("step 7");
  EXPECT_EQ(nested.message(), "step 7: pull from server 1: connection refused");
}

TEST(Status, WithContextOnOkStaysOk) {
  Status s = Status::OK().WithContext("anything");
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.message(), "");
}

TEST(Status, EqualityComparesCodeAndMessage) {
  EXPECT_EQ(NotFound("a"), NotFound("a"));
  EXPECT_FALSE(NotFound("a") == NotFound("b"));
  EXPECT_FALSE(NotFound("a") == InvalidArgument("a"));
  EXPECT_FALSE(NotFound("") == Status::OK());
}

TEST(StatusOr, HoldingAValueIsOkAndGivesTheValue) {
  StatusOr<int> v = 42;
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v.status().ok());
  EXPECT_EQ(v.value(), 42);
  EXPECT_EQ(*v, 42);
  v.value() = 7;
  EXPECT_EQ(*v, 7);

  StatusOr<std::string> s = std::string("hello");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->size(), 5u);
  std::string moved = std::move(s).value();
  EXPECT_EQ(moved, "hello");
}

TEST(StatusOr, HoldingAnErrorIsNotOkAndGivesTheStatus) {
  StatusOr<int> v = NotFound("no such thing");
  EXPECT_FALSE(v.ok());
  EXPECT_EQ(v.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(v.status().message(), "no such thing");
}

TEST(StatusOr, HoldsMoveOnlyValues) {
  StatusOr<std::unique_ptr<int>> p = std::make_unique<int>(5);
  ASSERT_TRUE(p.ok());
  std::unique_ptr<int> taken = std::move(p).value();
  ASSERT_NE(taken, nullptr);
  EXPECT_EQ(*taken, 5);
}

#ifdef NDEBUG
// With asserts compiled out, an OK Status (a programmer error) must still not
// produce an "ok" StatusOr without a value.
TEST(StatusOr, ConstructedFromOkStatusBecomesInternalErrorInReleaseBuilds) {
  StatusOr<int> v = Status::OK();
  EXPECT_FALSE(v.ok());
  EXPECT_EQ(v.status().code(), StatusCode::kInternal);
}
#endif

// --- Macros -----------------------------------------------------------------

Status FailIf(bool fail, int* calls) {
  ++*calls;
  if (fail) return OutOfRange("step failed");
  return Status::OK();
}

Status TwoSteps(bool fail_first, bool fail_second, int* calls, bool* reached_end) {
  RETURN_IF_ERROR(FailIf(fail_first, calls));
  RETURN_IF_ERROR(FailIf(fail_second, calls));
  *reached_end = true;
  return Status::OK();
}

TEST(Macros, ReturnIfErrorPassesThroughWhenEveryStepSucceeds) {
  int calls = 0;
  bool reached_end = false;
  Status s = TwoSteps(false, false, &calls, &reached_end);
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(calls, 2);
  EXPECT_TRUE(reached_end);
}

TEST(Macros, ReturnIfErrorReturnsTheFirstErrorAndSkipsTheRest) {
  int calls = 0;
  bool reached_end = false;
  Status s = TwoSteps(true, false, &calls, &reached_end);
  EXPECT_EQ(s, OutOfRange("step failed"));
  EXPECT_EQ(calls, 1);
  EXPECT_FALSE(reached_end);

  calls = 0;
  s = TwoSteps(false, true, &calls, &reached_end);
  EXPECT_EQ(s, OutOfRange("step failed"));
  EXPECT_EQ(calls, 2);
  EXPECT_FALSE(reached_end);
}

StatusOr<int> ParsePositive(int x) {
  if (x <= 0) return InvalidArgument("not positive: " + std::to_string(x));
  return x;
}

StatusOr<int> SumOfPositives(int a, int b, bool* reached_end) {
  ASSIGN_OR_RETURN(int pa, ParsePositive(a));
  ASSIGN_OR_RETURN(auto pb, ParsePositive(b));
  *reached_end = true;
  return pa + pb;
}

Status UseInStatusFunction(int a, int* out) {
  ASSIGN_OR_RETURN(*out, ParsePositive(a));
  return Status::OK();
}

StatusOr<std::unique_ptr<int>> MakeBox(int v) {
  if (v < 0) return InvalidArgument("negative");
  return std::make_unique<int>(v);
}

StatusOr<int> Unbox(int v) {
  ASSIGN_OR_RETURN(std::unique_ptr<int> box, MakeBox(v));
  return *box;
}

TEST(Macros, AssignOrReturnAssignsValues) {
  bool reached_end = false;
  StatusOr<int> r = SumOfPositives(2, 3, &reached_end);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, 5);
  EXPECT_TRUE(reached_end);

  int out = 0;
  EXPECT_TRUE(UseInStatusFunction(9, &out).ok());
  EXPECT_EQ(out, 9);
}

TEST(Macros, AssignOrReturnPropagatesTheError) {
  bool reached_end = false;
  StatusOr<int> r = SumOfPositives(2, -1, &reached_end);
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.status(), InvalidArgument("not positive: -1"));
  EXPECT_FALSE(reached_end);

  r = SumOfPositives(0, 5, &reached_end);
  EXPECT_EQ(r.status(), InvalidArgument("not positive: 0"));
  EXPECT_FALSE(reached_end);

  int out = 123;
  EXPECT_EQ(UseInStatusFunction(-4, &out), InvalidArgument("not positive: -4"));
  EXPECT_EQ(out, 123);  // untouched on error
}

TEST(Macros, AssignOrReturnMovesMoveOnlyValues) {
  StatusOr<int> ok = Unbox(11);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, 11);
  StatusOr<int> bad = Unbox(-1);
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace cairn
