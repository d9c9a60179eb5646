# Helpers shared by every folder's CMakeLists.txt.

set(APIARY_WARNINGS -Wall -Wextra)
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
  # GCC 12 reports asio's awaitable frame operator delete as mismatched with its
  # operator new (a false positive on every coroutine that co_spawns: GCC bug 109224).
  list(APPEND APIARY_WARNINGS -Wno-mismatched-new-delete)
endif()

# apiary_add_library(NAME [SOURCES …] [DEPS …] [PRIVATE_DEPS …])
# One library per top-level folder, aliased as apiary::NAME. Headers live beside
# sources and are included from the repository root ("net/rpc.hpp").
function(apiary_add_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS;PRIVATE_DEPS" ${ARGN})
  if(ARG_SOURCES)
    add_library(apiary_${name} ${ARG_SOURCES})
    target_compile_options(apiary_${name} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:${APIARY_WARNINGS}>)
    target_include_directories(apiary_${name} PUBLIC
      $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}> $<INSTALL_INTERFACE:include/apiary>)
    target_link_libraries(apiary_${name} PUBLIC ${ARG_DEPS} PRIVATE ${ARG_PRIVATE_DEPS})
    target_compile_features(apiary_${name} PUBLIC cxx_std_20)
  else()
    add_library(apiary_${name} INTERFACE)
    target_include_directories(apiary_${name} INTERFACE
      $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}> $<INSTALL_INTERFACE:include/apiary>)
    target_link_libraries(apiary_${name} INTERFACE ${ARG_DEPS})
  endif()
  set_target_properties(apiary_${name} PROPERTIES EXPORT_NAME ${name} OUTPUT_NAME apiary_${name})
  add_library(apiary::${name} ALIAS apiary_${name})
  set_property(GLOBAL APPEND PROPERTY APIARY_LIBRARIES apiary_${name})
  set_property(GLOBAL APPEND PROPERTY APIARY_HEADER_DIRS ${CMAKE_CURRENT_SOURCE_DIR})
endfunction()

# apiary_glob_sources(VAR) — the .cpp files of the calling folder (not tests).
macro(apiary_glob_sources var)
  file(GLOB ${var} CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*.cpp)
endmacro()

# apiary_add_test(NAME SOURCES … LIBS … [LABELS …] [TIMEOUT s])
# One GoogleTest executable; every TEST becomes its own ctest entry.
# Label "slow" marks tests a developer may skip locally (ctest -LE slow).
# Several labels are joined into one with "_" (see below).
function(apiary_add_test name)
  cmake_parse_arguments(ARG "" "TIMEOUT" "SOURCES;LIBS;LABELS" ${ARGN})
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 120)
  endif()
  if(NOT ARG_LABELS)
    set(ARG_LABELS unit)
  endif()
  add_executable(${name} ${ARG_SOURCES})
  target_compile_options(${name} PRIVATE ${APIARY_WARNINGS})
  target_link_libraries(${name} PRIVATE ${ARG_LIBS} GTest::gtest GTest::gtest_main Threads::Threads)
  # gtest_discover_tests cannot pass a list as one property value, so several
  # labels become one ("integration_slow"); ctest's -L/-LE take regular
  # expressions, so `-LE slow` and `-L integration` still select it.
  string(JOIN "_" labels ${ARG_LABELS})
  gtest_discover_tests(${name}
    PROPERTIES LABELS "${labels}" TIMEOUT ${ARG_TIMEOUT}
    DISCOVERY_TIMEOUT 60)
endfunction()
