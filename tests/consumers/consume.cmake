# cmake -DMODE=... -P consume.cmake: (install cachet,) configure, build and run a consumer.
function(run)
  execute_process(COMMAND ${ARGV} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGV}")
  endif()
endfunction()

file(REMOVE_RECURSE "${WORK_DIR}")
set(prefix "${WORK_DIR}/prefix")
if(MODE STREQUAL "find_package")
  run("${CMAKE_COMMAND}" --install "${CACHET_BUILD_DIR}" --prefix "${prefix}")
  if(NOT EXISTS "${prefix}/share/cmake/cachet/cachetConfig.cmake" OR
     NOT EXISTS "${prefix}/share/cmake/cachet/cachetConfigVersion.cmake" OR
     NOT EXISTS "${prefix}/include/cachet/cachet.hpp")
    message(FATAL_ERROR "install tree is incomplete")
  endif()
endif()

run("${CMAKE_COMMAND}" -S "${CONSUMER_DIR}/${MODE}" -B "${WORK_DIR}/build" -G "${GENERATOR}"
    "-DCMAKE_CXX_COMPILER=${CXX}" "-DCACHET_SOURCE_DIR=${CACHET_SOURCE_DIR}"
    "-DCMAKE_PREFIX_PATH=${prefix}" "-DCONSUMER_MAIN=${CONSUMER_DIR}/main.cpp")
run("${CMAKE_COMMAND}" --build "${WORK_DIR}/build")
run("${WORK_DIR}/build/consumer")
