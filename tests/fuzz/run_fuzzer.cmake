# One ctest fuzz smoke: copies the seed corpus and the harness's crash
# reproducers (crashes/<harness>: a fixed bug stays fixed) to a scratch
# directory, so the checked-in ones are never written, and runs the harness
# over it for SECONDS.
#   cmake -DFUZZER=bin -DCORPUS=dir -DCRASHES=dir -DSCRATCH=dir -DSECONDS=n -P run_fuzzer.cmake
# Fails on any crash, leak, timeout or sanitizer report; the reproducer is
# left in SCRATCH/artifacts.
foreach(var FUZZER CORPUS CRASHES SCRATCH SECONDS)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "run_fuzzer.cmake: ${var} is not set")
  endif()
endforeach()

file(REMOVE_RECURSE ${SCRATCH})
file(MAKE_DIRECTORY ${SCRATCH}/corpus ${SCRATCH}/artifacts)
file(GLOB seeds ${CORPUS}/* ${CRASHES}/*)
if(seeds)
  file(COPY ${seeds} DESTINATION ${SCRATCH}/corpus)
endif()

execute_process(
  COMMAND ${FUZZER} -max_total_time=${SECONDS} -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
          -artifact_prefix=${SCRATCH}/artifacts/ ${SCRATCH}/corpus
  WORKING_DIRECTORY ${SCRATCH}
  RESULT_VARIABLE result)
if(NOT result EQUAL 0)
  message(FATAL_ERROR "${FUZZER} failed (${result}); reproducer in ${SCRATCH}/artifacts")
endif()
