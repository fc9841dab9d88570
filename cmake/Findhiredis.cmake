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
    pkg_check_modules(PC_hiredis QUIET hiredis)
  endif()
  if(PC_hiredis_FOUND)
    # Not pkg-config's Cflags: its -I.../hiredis would put hiredis' read.h, sds.h
    # and alloc.h on every consumer's include path, and its -D_FILE_OFFSET_BITS=64
    # would change their off_t. cachet includes <hiredis/hiredis.h> from the parent.
    find_path(hiredis_INCLUDE_DIR hiredis/hiredis.h HINTS "${PC_hiredis_INCLUDEDIR}/..")
    find_library(hiredis_LIBRARY NAMES hiredis HINTS ${PC_hiredis_LIBRARY_DIRS})
    if(hiredis_INCLUDE_DIR AND hiredis_LIBRARY)
      add_library(hiredis::hiredis UNKNOWN IMPORTED GLOBAL)
      set_target_properties(hiredis::hiredis PROPERTIES
        IMPORTED_LOCATION "${hiredis_LIBRARY}"
        INTERFACE_INCLUDE_DIRECTORIES "${hiredis_INCLUDE_DIR}")
      set(hiredis_VERSION "${PC_hiredis_VERSION}")
      set(hiredis_FOUND_TARGET TRUE)
    endif()
  endif()
endif()

find_package_handle_standard_args(hiredis
  REQUIRED_VARS hiredis_FOUND_TARGET
  VERSION_VAR hiredis_VERSION
  REASON_FAILURE_MESSAGE "install Debian's libhiredis-dev (and pkg-config)")
