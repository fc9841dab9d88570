# Install rules: headers, the cachet::cachet target, cachetConfig.cmake + version
# file, and the hiredis finder that cachetConfig.cmake hands to find_dependency.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(CACHET_CMAKE_DIR "${CMAKE_INSTALL_DATADIR}/cmake/cachet")  # header-only: arch-independent

install(DIRECTORY "${PROJECT_SOURCE_DIR}/include/" DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}")
install(TARGETS cachet EXPORT cachetTargets)
install(EXPORT cachetTargets NAMESPACE cachet:: DESTINATION "${CACHET_CMAKE_DIR}")

configure_package_config_file(
  "${PROJECT_SOURCE_DIR}/cmake/cachetConfig.cmake.in"
  "${PROJECT_BINARY_DIR}/cachetConfig.cmake"
  INSTALL_DESTINATION "${CACHET_CMAKE_DIR}")
write_basic_package_version_file(
  "${PROJECT_BINARY_DIR}/cachetConfigVersion.cmake"
  COMPATIBILITY SameMinorVersion  # 0.x: a minor release may break the API
  ARCH_INDEPENDENT)
install(FILES
  "${PROJECT_BINARY_DIR}/cachetConfig.cmake"
  "${PROJECT_BINARY_DIR}/cachetConfigVersion.cmake"
  "${PROJECT_SOURCE_DIR}/cmake/Findhiredis.cmake"
  DESTINATION "${CACHET_CMAKE_DIR}")

install(FILES "${PROJECT_SOURCE_DIR}/LICENSE" DESTINATION "${CMAKE_INSTALL_DATADIR}/doc/cachet")

# pkg-config, for builds without CMake: `pkg-config --cflags --libs cachet`
# (relocatable: the prefix is found from where the .pc file is).
set(CACHET_PC_REQUIRES "hiredis, libssl, libcrypto, nlohmann_json >= 3.10, fmt")
if(CACHET_WITH_ZSTD)
  string(APPEND CACHET_PC_REQUIRES ", libzstd")
  set(CACHET_PC_CFLAGS " -DCACHET_HAS_ZSTD=1")
endif()
configure_file("${PROJECT_SOURCE_DIR}/cmake/cachet.pc.in" "${PROJECT_BINARY_DIR}/cachet.pc" @ONLY)
install(FILES "${PROJECT_BINARY_DIR}/cachet.pc" DESTINATION "${CMAKE_INSTALL_DATADIR}/pkgconfig")
