# cmake -DARCHIVE=libcairn_common.a -DNM=nm -P check_kernel_symbols.cmake
# Fails if a level-specific kernel object (kernels_<level>.cc.o) defines a
# global symbol other than its own table (cairn::kernels::internal::k*Kernels)
# or one inside its own renamed Eigen namespace (CairnEigen<Level>). The
# exception-handling personality pointer every C++ object may carry is data,
# the same in all, and allowed; so is AddressSanitizer's one-definition
# indicator for each table (__odr_asan.<the table's mangled name>).
foreach(var ARCHIVE NM)
  if(NOT ${var})
    message(FATAL_ERROR "check_kernel_symbols: -D${var}= is required")
  endif()
endforeach()
execute_process(COMMAND ${NM} -A -C --defined-only --extern-only ${ARCHIVE}
  OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${NM} ${ARCHIVE} failed: ${err}")
endif()
string(REPLACE "\n" ";" lines "${out}")
set(checked 0)
set(bad "")
foreach(line IN LISTS lines)
  if(NOT line MATCHES "kernels_(baseline|avx2|avx512)\\.cc\\.o:")
    continue()
  endif()
  math(EXPR checked "${checked} + 1")
  if(line MATCHES "cairn::kernels::internal::k(Baseline|Avx2|Avx512)Kernels$" OR line MATCHES "CairnEigen(Baseline|Avx2|Avx512)::"
     OR line MATCHES " DW\\.ref\\.__gxx_personality_v0$"
     OR line MATCHES " __odr_asan\\._ZN5cairn7kernels8internal[0-9]+k(Baseline|Avx2|Avx512)KernelsE$")
    continue()
  endif()
  string(APPEND bad "  ${line}\n")
endforeach()
if(checked EQUAL 0)
  message(FATAL_ERROR "no kernels_<level>.cc.o symbols found in ${ARCHIVE}: has the archive changed shape?")
endif()
if(bad)
  message(FATAL_ERROR "level-specific kernel objects define symbols the rest of the program may share:\n${bad}")
endif()
message(STATUS "${checked} global symbols of the level-specific kernels, all their own")
