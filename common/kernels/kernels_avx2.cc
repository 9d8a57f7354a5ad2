// The kernels built for CpuLevel::kAvx2 (flags in common/CMakeLists.txt).
#define Eigen CairnEigenAvx2
#define CAIRN_KERNEL_TABLE kAvx2Kernels
#include "common/kernels/kernels_impl.h"
