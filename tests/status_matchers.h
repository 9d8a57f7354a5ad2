// Test helpers: ASSERT_OK / EXPECT_OK for a Status or a StatusOr, printing
// the expression and the status when it is not OK.
#pragma once

#include <gtest/gtest.h>

#include "common/status.h"

namespace cairn::testing {

inline Status StatusOf(const Status& s) { return s; }
template <class T>
Status StatusOf(const StatusOr<T>& s) {
  return s.status();
}

}  // namespace cairn::testing

#define ASSERT_OK(expr)                                          \
  do {                                                           \
    const ::cairn::Status _s = ::cairn::testing::StatusOf(expr); \
    ASSERT_TRUE(_s.ok()) << #expr << ": " << _s;                 \
  } while (0)
#define EXPECT_OK(expr)                                          \
  do {                                                           \
    const ::cairn::Status _s = ::cairn::testing::StatusOf(expr); \
    EXPECT_TRUE(_s.ok()) << #expr << ": " << _s;                 \
  } while (0)
