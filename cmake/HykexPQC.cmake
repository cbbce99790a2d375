# Finds libmceliece (Classic McEliece) and libntruprime (sntrup) and makes hykex::pqc.
#
# Order: HYKEX_PQC_ROOT (cache variable), the system (Debian 13: libmceliece-dev,
# libntruprime-dev), then the newest complete prefix that scripts/bootstrap.sh unpacked under
# ${HYKEX_DEPS:-$HOME/.cache/hykex}/pqc-<versions>. The static archives are linked: no shared
# library (and no RPATH) is added, and their only outside symbol, randombytes(), is supplied by
# src/crypto/kem_rand.c over OpenSSL's RAND_bytes, so librandombytes is not linked at all.
set(HYKEX_PQC_ROOT "" CACHE PATH "prefix holding mceliece.h, ntruprime.h and their .a (empty: find it)")

if(NOT HYKEX_PQC_ROOT)
  if(DEFINED ENV{HYKEX_DEPS} AND NOT "$ENV{HYKEX_DEPS}" STREQUAL "")
    set(_hx_deps "$ENV{HYKEX_DEPS}")
  else()
    set(_hx_deps "$ENV{HOME}/.cache/hykex")
  endif()
  file(GLOB _hx_pqc_markers "${_hx_deps}/pqc-*/.hykex-complete")
  list(SORT _hx_pqc_markers COMPARE NATURAL ORDER DESCENDING)
  set(_hx_pqc_hints "")
  foreach(_m IN LISTS _hx_pqc_markers)
    get_filename_component(_d "${_m}" DIRECTORY)
    list(APPEND _hx_pqc_hints "${_d}")
  endforeach()
else()
  set(_hx_pqc_hints "${HYKEX_PQC_ROOT}")
endif()

find_path(HYKEX_MCELIECE_INCLUDE mceliece.h HINTS ${_hx_pqc_hints} PATH_SUFFIXES include)
find_path(HYKEX_NTRUPRIME_INCLUDE ntruprime.h HINTS ${_hx_pqc_hints} PATH_SUFFIXES include)
find_library(HYKEX_MCELIECE_LIB NAMES libmceliece.a HINTS ${_hx_pqc_hints} PATH_SUFFIXES lib)
find_library(HYKEX_NTRUPRIME_LIB NAMES libntruprime.a HINTS ${_hx_pqc_hints} PATH_SUFFIXES lib)
if(NOT HYKEX_MCELIECE_INCLUDE OR NOT HYKEX_NTRUPRIME_INCLUDE OR NOT HYKEX_MCELIECE_LIB
   OR NOT HYKEX_NTRUPRIME_LIB)
  message(FATAL_ERROR "libmceliece/libntruprime not found: run scripts/bootstrap.sh "
                      "(Debian 13: apt-get install libmceliece-dev libntruprime-dev) "
                      "or set HYKEX_PQC_ROOT")
endif()
message(STATUS "Classic McEliece: ${HYKEX_MCELIECE_LIB}; sntrup: ${HYKEX_NTRUPRIME_LIB}")
add_library(hykex_pqc INTERFACE)
target_include_directories(hykex_pqc SYSTEM INTERFACE ${HYKEX_MCELIECE_INCLUDE}
                                                      ${HYKEX_NTRUPRIME_INCLUDE})
target_link_libraries(hykex_pqc INTERFACE ${HYKEX_MCELIECE_LIB} ${HYKEX_NTRUPRIME_LIB})
add_library(hykex::pqc ALIAS hykex_pqc)
