# Finds hiredis as the imported target hiredis::hiredis: through hiredis' own
# CMake package when it has one (hiredis >= 1.0 built from source), else through
# pkg-config (Debian's libhiredis-dev 0.14 ships no CMake package).
include(FindPackageHandleStandardArgs)

if(NOT TARGET hiredis::hiredis)
  find_package(hiredis CONFIG QUIET)
endif()

if(TARGET hiredis::hiredis)
  set(hiredis_FOUND_TARGET TRUE)
else()
  find_package(PkgConfig QUIET)
  if(PkgConfig_FOUND)
    pkg_check_modules(PC_hiredis QUIET IMPORTED_TARGET GLOBAL hiredis)
  endif()
  if(PC_hiredis_FOUND)
    add_library(hiredis::hiredis INTERFACE IMPORTED GLOBAL)
    target_link_libraries(hiredis::hiredis INTERFACE PkgConfig::PC_hiredis)
    set(hiredis_VERSION "${PC_hiredis_VERSION}")
    set(hiredis_FOUND_TARGET TRUE)
  endif()
endif()

find_package_handle_standard_args(hiredis
  REQUIRED_VARS hiredis_FOUND_TARGET
  VERSION_VAR hiredis_VERSION
  REASON_FAILURE_MESSAGE "install Debian's libhiredis-dev (and pkg-config)")
