# Compiler flags per preset; see docs/building.md and ../shared/design/STYLE.md.
set(HYKEX_WARNINGS
  -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wformat=2 -Wstrict-prototypes
  -Wmissing-prototypes -Wvla -Wimplicit-fallthrough)
add_compile_options(${HYKEX_WARNINGS})
if(HYKEX_WERROR)
  add_compile_options(-Werror)
endif()
add_compile_definitions(_POSIX_C_SOURCE=200809L _DEFAULT_SOURCE)

if(HYKEX_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-sanitize-recover=all
                      -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined -fno-sanitize-recover=all)
endif()

if(HYKEX_TSAN)
  if(HYKEX_SANITIZE OR HYKEX_FUZZ)
    message(FATAL_ERROR "HYKEX_TSAN cannot be combined with ASan (HYKEX_SANITIZE, HYKEX_FUZZ)")
  endif()
  # ThreadSanitizer, halting on the first report (TSAN_OPTIONS halt_on_error=1 in CI); the
  # suppressions for uninstrumented third-party code are in tests/tsan.supp.
  add_compile_options(-fsanitize=thread -fno-omit-frame-pointer -O1)
  add_link_options(-fsanitize=thread)
endif()

if(HYKEX_HARDEN)
  add_compile_options(-U_FORTIFY_SOURCE -D_FORTIFY_SOURCE=2 -fstack-protector-strong
                      -fstack-clash-protection -fPIE)
  if(CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64")
    add_compile_options(-fcf-protection)
  endif()
  set(CMAKE_POSITION_INDEPENDENT_CODE ON)
  add_link_options(-pie LINKER:-z,relro LINKER:-z,now LINKER:-z,noexecstack)
endif()

if(HYKEX_FAULT_INJECTION)
  add_compile_definitions(HYKEX_FAULT_INJECTION=1)
endif()

if(HYKEX_FUZZ)
  if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "the fuzz preset needs clang (libFuzzer)")
  endif()
  add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all
                      -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
endif()
