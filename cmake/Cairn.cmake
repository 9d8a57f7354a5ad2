# The one helper Cairn's folders use: cairn_library() and cairn_test().

set(CAIRN_WARNINGS -Wall -Wextra -Wno-unused-parameter)
set(CAIRN_SAN_FLAGS "")
if(CAIRN_SANITIZE)
  set(CAIRN_SAN_FLAGS -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
elseif(CAIRN_TSAN)
  set(CAIRN_SAN_FLAGS -fsanitize=thread -fno-omit-frame-pointer)
endif()
if(CAIRN_SAN_FLAGS)
  add_compile_options(${CAIRN_SAN_FLAGS})
  add_link_options(${CAIRN_SAN_FLAGS})
endif()

# cairn_library(NAME SRCS a.cc b.cc DEPS x y)
function(cairn_library name)
  cmake_parse_arguments(ARG "" "" "SRCS;DEPS" ${ARGN})
  add_library(${name} STATIC ${ARG_SRCS})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR})
  target_compile_options(${name} PRIVATE ${CAIRN_WARNINGS})
  target_link_libraries(${name} PUBLIC ${ARG_DEPS})
endfunction()

# cairn_test(NAME SRCS a_test.cc DEPS x [LABEL l] [TIMEOUT s])
# One label: gtest_discover_tests writes properties as a flat list, where a
# second label would be read as a property name (and TIMEOUT lost).
# One gtest binary per call; each TEST is registered with ctest on its own.
function(cairn_test name)
  if(NOT CAIRN_BUILD_TESTS)
    return()
  endif()
  cmake_parse_arguments(ARG "" "TIMEOUT;LABEL" "SRCS;DEPS" ${ARGN})
  add_executable(${name} ${ARG_SRCS})
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR})
  target_compile_options(${name} PRIVATE ${CAIRN_WARNINGS})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gtest_main)
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 120)
  endif()
  include(GoogleTest)
  gtest_discover_tests(${name}
    PROPERTIES LABELS "${ARG_LABEL}" TIMEOUT ${ARG_TIMEOUT}
    DISCOVERY_TIMEOUT 60)
endfunction()
