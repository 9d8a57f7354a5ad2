// What the harnesses share: FUZZ_CHECK, the oracle that turns a broken
// property (a decoded message that does not re-encode to its bytes, a
// forged handshake that passes) into a crash libFuzzer reports and keeps.
#pragma once

#include <cstdio>
#include <cstdlib>

// Aborts with the condition, the place and `why` when `cond` is false.
#define FUZZ_CHECK(cond, why)                                                               \
  do {                                                                                      \
    if (!(cond)) {                                                                          \
      std::fprintf(stderr, "%s:%d: FUZZ_CHECK(%s) failed: %s\n", __FILE__, __LINE__, #cond, \
                   static_cast<const char*>(why));                                          \
      std::abort();                                                                         \
    }                                                                                       \
  } while (0)
