# The one helper Cairn's folders use: cairn_library() and cairn_test().

set(CAIRN_WARNINGS -Wall -Wextra -Wno-unused-parameter)
if(CAIRN_THREAD_SAFETY)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "CAIRN_THREAD_SAFETY needs clang (-DCMAKE_CXX_COMPILER=clang++-14)")
  endif()
  list(APPEND CAIRN_WARNINGS -Wthread-safety -Werror=thread-safety)
endif()
if(CAIRN_NATIVE)
  add_compile_options(-march=native)
endif()
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
  # Installed (cmake --install), the headers are under include/cairn, with
  # the same paths as in the tree: #include "worker/session.h".
  target_include_directories(${name} PUBLIC $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}> $<INSTALL_INTERFACE:include/cairn>)
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

# cairn_header_closure(OUT header...): the given headers (paths relative to
# the source root) and every project header they include, directly or not
# (#include "..." lines that name a file in the tree): what a user of those
# headers needs installed.
function(cairn_header_closure out)
  set(todo ${ARGN})
  set(seen "")
  while(todo)
    list(POP_FRONT todo header)
    if(header IN_LIST seen OR NOT EXISTS ${PROJECT_SOURCE_DIR}/${header})
      continue()
    endif()
    list(APPEND seen ${header})
    file(STRINGS ${PROJECT_SOURCE_DIR}/${header} lines REGEX "^#include \"")
    foreach(line IN LISTS lines)
      string(REGEX REPLACE "^#include \"([^\"]+)\".*" "\\1" included "${line}")
      list(APPEND todo ${included})
    endforeach()
  endwhile()
  list(SORT seen)
  set(${out} ${seen} PARENT_SCOPE)
endfunction()
