// Secret: the shared key every process of a job holds, with which each
// connection proves itself (common/handshake.h).
//
// Where a secret comes from, by launch mode:
//   --local     Generate(): random, in memory, never written anywhere.
//   mpirun      one rank Generate()s and MPI broadcasts it.
//   standalone  FromFile(--secret-file): a file of at least kMinBytes that
//               only its owner may read (`cairn secret --out PATH` writes one).
//
// Immutable and thread-safe once made; the bytes are wiped on destruction.
#pragma once

#include <memory>
#include <string>

#include "common/status.h"

namespace cairn {

class Secret {
 public:
  static constexpr size_t kMinBytes = 32;

  // kMinBytes fresh random bytes (OpenSSL's RAND_bytes).
  static StatusOr<std::shared_ptr<const Secret>> Generate();
  // InvalidArgument if shorter than kMinBytes.
  static StatusOr<std::shared_ptr<const Secret>> FromBytes(std::string bytes);
  // Reads a secret file: its bytes, less trailing whitespace. Refused
  // (FailedPrecondition, naming the path and the fix) if the file is
  // missing, not a regular file, readable or writable by group or others,
  // or shorter than kMinBytes.
  static StatusOr<std::shared_ptr<const Secret>> FromFile(const std::string& path);

  ~Secret();
  Secret(const Secret&) = delete;
  Secret& operator=(const Secret&) = delete;

  const std::string& bytes() const { return bytes_; }

 private:
  explicit Secret(std::string bytes) : bytes_(std::move(bytes)) {}
  std::string bytes_;
};

// Creates a new secret file at `path`: kMinBytes random bytes as 64 hex
// digits and a newline, mode 0600, synced. AlreadyExists if `path` exists
// (a secret is never overwritten: the processes using it would lock out).
Status WriteSecretFile(const std::string& path);

}  // namespace cairn
