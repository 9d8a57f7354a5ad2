// The kernels built for CpuLevel::kAvx512 (flags in common/CMakeLists.txt).
#define Eigen CairnEigenAvx512
#define CAIRN_KERNEL_TABLE kAvx512Kernels
#include "common/kernels/kernels_impl.h"
