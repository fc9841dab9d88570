# cmake -DMODE=... -P consume.cmake: (install cachet,) configure, build and run a consumer.
#   add_subdirectory, add_subdirectory_system (CACHET_SYSTEM_INCLUDES=ON), fetchcontent,
#   find_package (this build installed), find_package_nozstd (cachet configured
#   without zstd and with no test/bench/example package findable, installed, and
#   used by a consumer that cannot find zstd), pkg-config (this build installed).
function(run)
  execute_process(COMMAND ${ARGV} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGV}")
  endif()
endfunction()

file(REMOVE_RECURSE "${WORK_DIR}")
set(prefix "${WORK_DIR}/prefix")
set(consumer_dir "${CONSUMER_DIR}/${MODE}")
set(main "${CONSUMER_DIR}/main.cpp")
set(extra)
if(MODE STREQUAL "find_package" OR MODE STREQUAL "pkg-config")
  run("${CMAKE_COMMAND}" --install "${CACHET_BUILD_DIR}" --prefix "${prefix}")
elseif(MODE STREQUAL "find_package_nozstd")
  run("${CMAKE_COMMAND}" -S "${CACHET_SOURCE_DIR}" -B "${WORK_DIR}/cachet" -G "${GENERATOR}"
      "-DCMAKE_CXX_COMPILER=${CXX}" -DBUILD_TESTING=OFF -DCACHET_BUILD_BENCHMARKS=OFF
      -DCACHET_BUILD_EXAMPLES=OFF -DCACHET_WITH_ZSTD=OFF
      -DCMAKE_DISABLE_FIND_PACKAGE_Catch2=ON -DCMAKE_DISABLE_FIND_PACKAGE_benchmark=ON
      -DCMAKE_DISABLE_FIND_PACKAGE_SQLite3=ON -DCMAKE_DISABLE_FIND_PACKAGE_zstd=ON)
  run("${CMAKE_COMMAND}" --install "${WORK_DIR}/cachet" --prefix "${prefix}")
  set(consumer_dir "${CONSUMER_DIR}/find_package")
  set(main "${CONSUMER_DIR}/main_version.cpp")
  set(extra -DCMAKE_DISABLE_FIND_PACKAGE_zstd=ON)
elseif(MODE STREQUAL "add_subdirectory_system")
  set(consumer_dir "${CONSUMER_DIR}/add_subdirectory")
  set(extra -DCACHET_SYSTEM_INCLUDES=ON)
endif()
if(EXISTS "${prefix}")
  foreach(f share/cmake/cachet/cachetConfig.cmake share/cmake/cachet/cachetConfigVersion.cmake
            include/cachet/cachet.hpp share/doc/cachet/LICENSE share/pkgconfig/cachet.pc)
    if(NOT EXISTS "${prefix}/${f}")
      message(FATAL_ERROR "install tree is incomplete: no ${f}")
    endif()
  endforeach()
endif()

if(MODE STREQUAL "pkg-config")
  set(ENV{PKG_CONFIG_PATH} "${prefix}/share/pkgconfig")
  execute_process(COMMAND pkg-config --cflags --libs cachet OUTPUT_VARIABLE flags
                  OUTPUT_STRIP_TRAILING_WHITESPACE COMMAND_ERROR_IS_FATAL ANY)
  separate_arguments(flags UNIX_COMMAND "${flags}")
  file(MAKE_DIRECTORY "${WORK_DIR}/build")
  run("${CXX}" -Wall -Wextra -Wshadow -Wpedantic -Werror "${CONSUMER_DIR}/main_version.cpp" ${flags}
      -o "${WORK_DIR}/build/consumer")
else()
  run("${CMAKE_COMMAND}" -S "${consumer_dir}" -B "${WORK_DIR}/build" -G "${GENERATOR}"
      "-DCMAKE_CXX_COMPILER=${CXX}" "-DCACHET_SOURCE_DIR=${CACHET_SOURCE_DIR}"
      "-DCMAKE_PREFIX_PATH=${prefix}" "-DCONSUMER_MAIN=${main}" ${extra})
  run("${CMAKE_COMMAND}" --build "${WORK_DIR}/build")
endif()
run("${WORK_DIR}/build/consumer")
