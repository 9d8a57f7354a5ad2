// A program of one's own with the job commands of `cairn` -- train (the
// embedded local cluster, --in-process, or one rank under mpirun), server
// and worker (standalone processes) -- for the model kinds (RegisterModel,
// worker/model.h) and data kinds (RegisterData, launch/job_config.h) it
// registers first:
//
//   int main(int argc, char** argv) {
//     cairn::RegisterModel("spiral", BuildSpiral);
//     cairn::RegisterData("spirals", SpiralData);
//     return cairn::TrainingMain(argc, argv);
//   }
//
//   ./program train job.yaml --local
//   mpirun -np 4 ./program train job.yaml --servers 2
//
// A job file names them as model.kind and data.kind; everything else in it
// (train, optimizer, cluster, snapshot) and every flag works as for `cairn
// train`: data sharding, positions in snapshots, resume, schedules,
// snapshot cadence, sync recovery. Returns the exit code.
#pragma once

namespace cairn {

int TrainingMain(int argc, char** argv);

}  // namespace cairn
