// Crash points: fault injection for the crash-safety tests.
//
// A CrashPoints names one point ("server.after_copy") and the hit on which
// the process dies there with SIGKILL, as `kill -9` would. Points mark the
// instants a crash is most damaging (between a write and its commit); the
// tests also kill processes at random times.
//
// Armed points travel in options (ServerOptions, SaverOptions, StorageEnv);
// only the `cairn` command reads them from the environment (CAIRN_CRASH_AT,
// see launch/cairn_main.cc). A null or empty CrashPoints costs one branch.
//
// Thread-safe: Reach may be called from any thread.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "common/status.h"

namespace cairn {

class CrashPoints {
 public:
  // "name" dies on the first hit of `name`, "name:N" on the N-th; "" arms
  // nothing. InvalidArgument for a malformed N.
  static StatusOr<std::shared_ptr<const CrashPoints>> Parse(const std::string& spec);

  // Kills this process if `name` is the armed point and this is its hit.
  void Reach(const char* name) const;
  const std::string& armed() const { return name_; }

 private:
  CrashPoints(std::string name, long hit) : name_(std::move(name)), hit_(hit) {}
  const std::string name_;
  const long hit_;
  mutable std::atomic<long> hits_{0};
};

// `points` may be null (nothing armed).
inline void ReachCrashPoint(const CrashPoints* points, const char* name) {
  if (points) points->Reach(name);
}

}  // namespace cairn
