// Crash points: fault injection for the crash-safety tests.
//
// CrashPoint("name") kills this process with SIGKILL (as `kill -9` would)
// when the environment variable CAIRN_CRASH_AT is "name", or "name:N" to
// die on the N-th time the point is reached. Without the variable it costs
// one branch. Points mark the instants a crash is most damaging (between a
// write and its commit); the tests also kill processes at random times.
#pragma once

namespace cairn {

void CrashPoint(const char* name);

}  // namespace cairn
