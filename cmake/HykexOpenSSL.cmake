# Finds OpenSSL >= 3.5 and makes every program load exactly that libcrypto/libssl.
#
# Order: HYKEX_OPENSSL_ROOT (cache variable), the system (pkg-config) if it is >= 3.5,
# then the newest complete prefix that scripts/bootstrap.sh built under
# ${HYKEX_DEPS:-$HOME/.cache/hykex}/openssl-<version>.
set(HYKEX_OPENSSL_MIN 3.5)
set(HYKEX_OPENSSL_ROOT "" CACHE PATH "OpenSSL >= 3.5 prefix (empty: find it)")

if(NOT HYKEX_OPENSSL_ROOT)
  find_package(PkgConfig QUIET)
  if(PKG_CONFIG_FOUND)
    pkg_check_modules(_HX_SYS_OPENSSL QUIET openssl>=${HYKEX_OPENSSL_MIN})
  endif()
  if(NOT _HX_SYS_OPENSSL_FOUND)
    if(DEFINED ENV{HYKEX_DEPS} AND NOT "$ENV{HYKEX_DEPS}" STREQUAL "")
      set(_hx_deps "$ENV{HYKEX_DEPS}")
    else()
      set(_hx_deps "$ENV{HOME}/.cache/hykex")
    endif()
    file(GLOB _hx_markers "${_hx_deps}/openssl-*/.hykex-complete")
    set(_hx_best "")
    set(_hx_best_ver "0")
    foreach(_m IN LISTS _hx_markers)
      get_filename_component(_d "${_m}" DIRECTORY)
      get_filename_component(_n "${_d}" NAME)
      string(REGEX REPLACE "^openssl-" "" _v "${_n}")
      if(_v VERSION_GREATER _hx_best_ver)
        set(_hx_best "${_d}")
        set(_hx_best_ver "${_v}")
      endif()
    endforeach()
    if(NOT _hx_best)
      message(FATAL_ERROR "OpenSSL >= ${HYKEX_OPENSSL_MIN} not found: run scripts/bootstrap.sh "
                          "(it builds one into ${_hx_deps}) or set HYKEX_OPENSSL_ROOT")
    endif()
    set(HYKEX_OPENSSL_ROOT "${_hx_best}" CACHE PATH "OpenSSL >= 3.5 prefix (empty: find it)" FORCE)
  endif()
endif()

if(HYKEX_OPENSSL_ROOT)
  set(OPENSSL_ROOT_DIR "${HYKEX_OPENSSL_ROOT}")
  set(OPENSSL_USE_STATIC_LIBS OFF)
  find_package(OpenSSL ${HYKEX_OPENSSL_MIN} REQUIRED)
  # Fail loudly if FindOpenSSL wandered off to the system copy.
  if(NOT OPENSSL_CRYPTO_LIBRARY MATCHES "^${HYKEX_OPENSSL_ROOT}/")
    message(FATAL_ERROR "FindOpenSSL picked ${OPENSSL_CRYPTO_LIBRARY}, not ${HYKEX_OPENSSL_ROOT}")
  endif()
  get_filename_component(HYKEX_OPENSSL_LIBDIR "${OPENSSL_CRYPTO_LIBRARY}" DIRECTORY)
  # DT_RPATH (not RUNPATH): it also applies to the dependencies of our dependencies, so a Debian
  # library that needs libcrypto.so.3 (libcurl -> libssh2) resolves to ours and the process maps
  # exactly one libcrypto.
  set(CMAKE_BUILD_RPATH "${HYKEX_OPENSSL_LIBDIR}")
  set(CMAKE_INSTALL_RPATH "${HYKEX_OPENSSL_LIBDIR}")
  add_link_options("LINKER:--disable-new-dtags")
  set(HYKEX_OPENSSL_BIN "${HYKEX_OPENSSL_ROOT}/bin/openssl")
else()
  find_package(OpenSSL ${HYKEX_OPENSSL_MIN} REQUIRED)
  get_filename_component(HYKEX_OPENSSL_LIBDIR "${OPENSSL_CRYPTO_LIBRARY}" DIRECTORY)
  find_program(HYKEX_OPENSSL_BIN openssl REQUIRED)
endif()
message(STATUS "hykex: OpenSSL ${OPENSSL_VERSION} from ${HYKEX_OPENSSL_LIBDIR}")
