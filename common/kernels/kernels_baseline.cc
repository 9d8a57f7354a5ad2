// The kernels built for CpuLevel::kBaseline (flags in common/CMakeLists.txt).
#define Eigen CairnEigenBaseline
#define CAIRN_KERNEL_TABLE kBaselineKernels
#include "common/kernels/kernels_impl.h"
