#include "launch/mpi_context.h"

#include <chrono>
#include <cstdlib>
#include <thread>

#include <mpi.h>

namespace cairn {
namespace {

Status MpiError(int code, const char* what) {
  if (code == MPI_SUCCESS) return Status::OK();
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(code, text, &len);
  return Internal(std::string(what) + " failed: " + std::string(text, len));
}

// Waits for a non-blocking MPI operation without spinning a core.
Status Wait(MPI_Request* request, const char* what) {
  int done = 0;
  while (true) {
    RETURN_IF_ERROR(MpiError(MPI_Test(request, &done, MPI_STATUS_IGNORE), what));
    if (done) return Status::OK();
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

}  // namespace

bool MpiContext::LaunchedByMpirun() {
  return std::getenv("OMPI_COMM_WORLD_SIZE") != nullptr || std::getenv("PMIX_RANK") != nullptr ||
         std::getenv("PMI_RANK") != nullptr;
}

StatusOr<std::unique_ptr<MpiContext>> MpiContext::Init(int* argc, char*** argv) {
  int provided = 0;
  RETURN_IF_ERROR(MpiError(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread"));
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  int rank = 0, size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  return std::unique_ptr<MpiContext>(new MpiContext(rank, size));
}

MpiContext::~MpiContext() { MPI_Finalize(); }

std::string MpiContext::processor_name() const {
  char name[MPI_MAX_PROCESSOR_NAME];
  int len = 0;
  MPI_Get_processor_name(name, &len);
  return std::string(name, len);
}

StatusOr<std::vector<std::string>> MpiContext::AllgatherStrings(const std::string& mine) {
  int my_len = static_cast<int>(mine.size());
  std::vector<int> lens(size_);
  MPI_Request req;
  RETURN_IF_ERROR(MpiError(MPI_Iallgather(&my_len, 1, MPI_INT, lens.data(), 1, MPI_INT, MPI_COMM_WORLD, &req),
                           "MPI_Iallgather"));
  RETURN_IF_ERROR(Wait(&req, "MPI_Iallgather"));
  std::vector<int> displs(size_);
  int total = 0;
  for (int i = 0; i < size_; ++i) {
    displs[i] = total;
    total += lens[i];
  }
  std::string all(total, '\0');
  RETURN_IF_ERROR(MpiError(MPI_Iallgatherv(mine.data(), my_len, MPI_CHAR, all.data(), lens.data(), displs.data(),
                                           MPI_CHAR, MPI_COMM_WORLD, &req),
                           "MPI_Iallgatherv"));
  RETURN_IF_ERROR(Wait(&req, "MPI_Iallgatherv"));
  std::vector<std::string> out(size_);
  for (int i = 0; i < size_; ++i) out[i] = all.substr(displs[i], lens[i]);
  return out;
}

Status MpiContext::Broadcast(int root, size_t size, std::string* bytes) {
  bytes->resize(size);
  MPI_Request req;
  RETURN_IF_ERROR(MpiError(MPI_Ibcast(bytes->data(), static_cast<int>(size), MPI_CHAR, root, MPI_COMM_WORLD, &req),
                           "MPI_Ibcast"));
  return Wait(&req, "MPI_Ibcast");
}

Status MpiContext::Barrier() {
  MPI_Request req;
  RETURN_IF_ERROR(MpiError(MPI_Ibarrier(MPI_COMM_WORLD, &req), "MPI_Ibarrier"));
  return Wait(&req, "MPI_Ibarrier");
}

void MpiContext::Abort(int code) {
  MPI_Abort(MPI_COMM_WORLD, code);
  std::abort();
}

}  // namespace cairn
