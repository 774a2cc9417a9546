// What the harnesses in tests/fuzz share: the libFuzzer entry point's signature and a check that
// stops the run with a message (libFuzzer keeps the input as a crash file; the replay driver
// reports the file).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

/// An invariant the harness checks on every input. A violation is a bug, reported like a crash.
#define FUZZ_CHECK(condition)                                                                    \
  do {                                                                                           \
    if (!(condition)) {                                                                          \
      std::fprintf(stderr, "%s:%d: fuzz check failed: %s\n", __FILE__, __LINE__, #condition);   \
      std::abort();                                                                              \
    }                                                                                            \
  } while (false)
