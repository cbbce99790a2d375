# What `cmake --install` puts where (GNUInstallDirs), and libhykex as a shared library.
# Included from the root CMakeLists.txt after src/; docs/install.md lists the layout.
#
#   bin/            hykexd, hykex, hykex-qkdsim
#   lib/<triplet>/  libhykex.so.0 (soname libhykex.so.0), libhykex.so, pkgconfig/hykex.pc
#   include/hykex/  the public headers
#   share/man/      hykexd(8), hykexd.json(5), hykex(1), hykex-qkdsim(1)  (scdoc, at build time)
#   share/bash-completion/completions/hykex (hykexd, hykex-qkdsim: links to it),
#   share/doc/hykex/*.md (the unit links to them)
#   lib/systemd/system/hykexd.service, lib/sysusers.d/hykex.conf, lib/tmpfiles.d/hykex.conf
#     (under prefix /usr: where systemd's pkg-config file says, e.g. /lib/systemd/system on 12)
#   <sysconfdir>/hykex/config.json.example, trusted_peers_info.json.example
#
# HYKEX_PRIVATE_OPENSSL=ON (scripts/package.sh on Debian 12): libcrypto.so.3 and libssl.so.3 of
# HYKEX_OPENSSL_ROOT are installed into lib/<triplet>/hykex/ and every program and libhykex find
# them through an $ORIGIN-relative DT_RPATH. DT_RPATH rather than RUNPATH because it also applies
# to the libraries our libraries load (libcurl -> libssh2 -> libcrypto.so.3), so a process maps
# exactly one libcrypto: ours.
include(GNUInstallDirs)

option(HYKEX_PRIVATE_OPENSSL "Install HYKEX_OPENSSL_ROOT's libcrypto/libssl privately and point the RPATH there" OFF)
option(HYKEX_MAN "Build the man pages with scdoc" ON)

# --- libhykex, shared: only the hykex_* names of include/hykex/hykex.h are exported -----------
set_target_properties(hx_common hx_proto PROPERTIES POSITION_INDEPENDENT_CODE ON)
add_library(hykex_shared SHARED ${CMAKE_SOURCE_DIR}/src/client/libhykex.c)
target_link_libraries(hykex_shared PRIVATE hx_proto hx_common)
target_include_directories(hykex_shared PUBLIC
  $<BUILD_INTERFACE:${CMAKE_SOURCE_DIR}/include> $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
set(_hx_map ${CMAKE_SOURCE_DIR}/src/client/libhykex.map)
# --undefined: hykex_status_string lives in hx_common and libhykex.c does not call it.
target_link_options(hykex_shared PRIVATE "LINKER:--version-script=${_hx_map}"
                    "LINKER:--undefined=hykex_status_string")
# --no-undefined (every symbol resolved at link time), except with clang's sanitizers: clang
# links the ASan/UBSan runtime statically into executables only, never into a shared library
# (its __asan_* / __ubsan_* symbols come from the program that loads it), so the fuzz preset's
# libhykex.so could not link. GCC links libasan.so into shared libraries too: the asan preset
# keeps the check.
if(NOT (CMAKE_C_COMPILER_ID MATCHES "Clang" AND (HYKEX_FUZZ OR HYKEX_SANITIZE)))
  target_link_options(hykex_shared PRIVATE "LINKER:--no-undefined")
endif()
set_target_properties(hykex_shared PROPERTIES
  OUTPUT_NAME hykex
  VERSION ${PROJECT_VERSION}
  SOVERSION ${PROJECT_VERSION_MAJOR}
  C_VISIBILITY_PRESET default
  LINK_DEPENDS ${_hx_map})

# --- where the programs find OpenSSL once installed ------------------------------------------
set(HYKEX_PRIVATE_LIBDIR ${CMAKE_INSTALL_LIBDIR}/hykex)
if(HYKEX_PRIVATE_OPENSSL)
  if(NOT HYKEX_OPENSSL_ROOT)
    message(FATAL_ERROR "HYKEX_PRIVATE_OPENSSL needs an OpenSSL outside the system (HYKEX_OPENSSL_ROOT)")
  endif()
  file(RELATIVE_PATH _hx_bin2priv /${CMAKE_INSTALL_BINDIR} /${HYKEX_PRIVATE_LIBDIR})
  set(_hx_rpath_bin "\$ORIGIN/${_hx_bin2priv}")
  set(_hx_rpath_lib "\$ORIGIN/hykex")
  foreach(_hx_lib libcrypto.so.3 libssl.so.3)
    install(FILES ${HYKEX_OPENSSL_LIBDIR}/${_hx_lib} DESTINATION ${HYKEX_PRIVATE_LIBDIR}
            PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
  endforeach()
  # Their own RPATH points at the build machine's prefix: make it $ORIGIN (libssl -> libcrypto).
  find_program(HYKEX_PATCHELF patchelf REQUIRED)
  install(CODE "
    foreach(_l libcrypto.so.3 libssl.so.3)
      execute_process(COMMAND ${HYKEX_PATCHELF} --force-rpath --set-rpath \\\$ORIGIN
                      \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/${HYKEX_PRIVATE_LIBDIR}/\${_l}\"
                      COMMAND_ERROR_IS_FATAL ANY)
    endforeach()")
elseif(HYKEX_OPENSSL_ROOT)
  # A developer's install (prefix /usr/local): keep pointing at the bootstrap OpenSSL.
  set(_hx_rpath_bin "${HYKEX_OPENSSL_LIBDIR}")
  set(_hx_rpath_lib "${HYKEX_OPENSSL_LIBDIR}")
else()
  set(_hx_rpath_bin "")
  set(_hx_rpath_lib "")
endif()
set_target_properties(hykexd hykex hykex-qkdsim PROPERTIES INSTALL_RPATH "${_hx_rpath_bin}")
set_target_properties(hykex_shared PROPERTIES INSTALL_RPATH "${_hx_rpath_lib}")

install(TARGETS hykexd hykex hykex-qkdsim RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS hykex_shared
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} NAMELINK_SKIP)
install(TARGETS hykex_shared
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} NAMELINK_ONLY COMPONENT dev)
install(DIRECTORY ${CMAKE_SOURCE_DIR}/include/hykex DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
        COMPONENT dev FILES_MATCHING PATTERN "*.h")
configure_file(${CMAKE_SOURCE_DIR}/cmake/hykex.pc.in ${CMAKE_BINARY_DIR}/hykex.pc @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/hykex.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig
        COMPONENT dev)

# --- man pages: docs/man/<name>.<section>.scd -> share/man/man<section>/<name>.<section> -----
if(HYKEX_MAN)
  find_program(HYKEX_SCDOC scdoc)
  if(NOT HYKEX_SCDOC)
    message(WARNING "scdoc not found: no man pages (apt-get install scdoc, or -DHYKEX_MAN=OFF)")
  else()
    file(GLOB _hx_scd ${CMAKE_SOURCE_DIR}/docs/man/*.scd)
    set(_hx_man_out "")
    foreach(_src IN LISTS _hx_scd)
      get_filename_component(_page ${_src} NAME_WLE) # hykexd.8
      string(REGEX MATCH "[0-9]$" _sec ${_page})
      set(_out ${CMAKE_BINARY_DIR}/man/${_page})
      add_custom_command(OUTPUT ${_out}
        COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_BINARY_DIR}/man
        COMMAND ${HYKEX_SCDOC} < ${_src} > ${_out}
        DEPENDS ${_src} VERBATIM)
      list(APPEND _hx_man_out ${_out})
      install(FILES ${_out} DESTINATION ${CMAKE_INSTALL_MANDIR}/man${_sec})
    endforeach()
    add_custom_target(hykex_man ALL DEPENDS ${_hx_man_out})
  endif()
endif()

install(FILES ${CMAKE_SOURCE_DIR}/completion/hykex.bash
        DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions RENAME hykex)
# bash-completion loads a command's file by its name: hykexd and hykex-qkdsim link to hykex's.
# (The Debian package makes the same links with debian/hykex.links.)
install(CODE "
  foreach(_p hykexd hykex-qkdsim)
    file(CREATE_LINK hykex
         \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_DATADIR}/bash-completion/completions/\${_p}\"
         SYMBOLIC)
  endforeach()")

# --- systemd: the unit, the user, the state directory -----------------------------------------
# Under prefix /usr they go where systemd looks (its pkg-config variables); under any other
# prefix, below it (copy or link them into /etc/systemd/... by hand).
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  find_package(PkgConfig QUIET)
  pkg_get_variable(_hx_unitdir systemd systemdsystemunitdir)
  pkg_get_variable(_hx_sysusersdir systemd sysusersdir)
  pkg_get_variable(_hx_tmpfilesdir systemd tmpfilesdir)
endif()
# Relative: below whatever prefix `cmake --install --prefix` is given.
if(NOT _hx_unitdir)
  set(_hx_unitdir lib/systemd/system)
endif()
if(NOT _hx_sysusersdir)
  set(_hx_sysusersdir lib/sysusers.d)
endif()
if(NOT _hx_tmpfilesdir)
  set(_hx_tmpfilesdir lib/tmpfiles.d)
endif()
set(HYKEX_SYSTEMD_UNITDIR ${_hx_unitdir} CACHE STRING "where hykexd.service is installed")
set(HYKEX_SYSUSERSDIR ${_hx_sysusersdir} CACHE STRING "where sysusers.d/hykex.conf is installed")
set(HYKEX_TMPFILESDIR ${_hx_tmpfilesdir} CACHE STRING "where tmpfiles.d/hykex.conf is installed")

# deploy/systemd/hykexd.service is written for the default prefix (/usr/local, /etc/hykex);
# the installed copy gets this build's directories.
file(READ ${CMAKE_SOURCE_DIR}/deploy/systemd/hykexd.service _hx_unit)
string(REPLACE "/usr/local/bin/" "${CMAKE_INSTALL_FULL_BINDIR}/" _hx_unit "${_hx_unit}")
string(REPLACE "/usr/local/share/doc/hykex" "${CMAKE_INSTALL_FULL_DOCDIR}" _hx_unit "${_hx_unit}")
if(HYKEX_SCDOC)
  # `systemd-analyze verify` runs man for man: links, so only where the pages are installed.
  string(REPLACE "Documentation=" "Documentation=man:hykexd(8) man:hykexd.json(5) " _hx_unit "${_hx_unit}")
endif()
string(REPLACE "/etc/hykex" "${CMAKE_INSTALL_FULL_SYSCONFDIR}/hykex" _hx_unit "${_hx_unit}")
file(WRITE ${CMAKE_BINARY_DIR}/systemd/hykexd.service "${_hx_unit}")
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS
             ${CMAKE_SOURCE_DIR}/deploy/systemd/hykexd.service)
install(FILES ${CMAKE_BINARY_DIR}/systemd/hykexd.service DESTINATION ${HYKEX_SYSTEMD_UNITDIR})
install(FILES ${CMAKE_SOURCE_DIR}/deploy/systemd/sysusers.d/hykex.conf DESTINATION ${HYKEX_SYSUSERSDIR})
install(FILES ${CMAKE_SOURCE_DIR}/deploy/systemd/tmpfiles.d/hykex.conf DESTINATION ${HYKEX_TMPFILESDIR})

# --- the example configuration ---------------------------------------------------------------
install(FILES ${CMAKE_SOURCE_DIR}/deploy/etc/config.json.example
              ${CMAKE_SOURCE_DIR}/deploy/etc/trusted_peers_info.json.example
        DESTINATION ${CMAKE_INSTALL_SYSCONFDIR}/hykex)
install(FILES ${CMAKE_SOURCE_DIR}/docs/hykexd.md ${CMAKE_SOURCE_DIR}/docs/install.md
              ${CMAKE_SOURCE_DIR}/docs/api.md ${CMAKE_SOURCE_DIR}/docs/security.md
              ${CMAKE_SOURCE_DIR}/docs/store.md ${CMAKE_SOURCE_DIR}/docs/peer-protocol.md
        DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(FILES ${CMAKE_SOURCE_DIR}/requests/open_connect_request.json
        DESTINATION ${CMAKE_INSTALL_DATADIR}/hykex/examples)
