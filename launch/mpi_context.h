// MpiContext: owns MPI's lifetime in a process started by mpirun.
//
// MPI only coordinates: rank → role, the exchange of server endpoints, and
// start/finish barriers. No training data crosses MPI. Waits are polled with
// short sleeps rather than blocking in MPI, so a rank that waits does not
// spin a core that its own server threads need.
//
// One per process, created first in main and destroyed last.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace cairn {

class MpiContext {
 public:
  // MPI_Init_thread(MPI_THREAD_FUNNELED). Only the creating thread may call
  // the methods below.
  static StatusOr<std::unique_ptr<MpiContext>> Init(int* argc, char*** argv);
  ~MpiContext();  // MPI_Finalize
  MpiContext(const MpiContext&) = delete;
  MpiContext& operator=(const MpiContext&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  // The host this rank runs on.
  std::string processor_name() const;

  // Every rank's string, indexed by rank.
  StatusOr<std::vector<std::string>> AllgatherStrings(const std::string& mine);
  Status Barrier();
  // Rank `root`'s `*bytes` (a fixed size, `size`) to every rank.
  Status Broadcast(int root, size_t size, std::string* bytes);
  // Ends the whole job with `code` (after an error on one rank).
  [[noreturn]] void Abort(int code);

  // True when this process looks launched by mpirun (Open MPI or PMI
  // environment): read once, in main.
  static bool LaunchedByMpirun();

 private:
  MpiContext(int rank, int size) : rank_(rank), size_(size) {}
  const int rank_;
  const int size_;
};

}  // namespace cairn
