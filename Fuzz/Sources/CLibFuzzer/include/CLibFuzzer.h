#ifndef RESCIND_CLIBFUZZER_H
#define RESCIND_CLIBFUZZER_H

#include <stddef.h>
#include <stdint.h>

/// libFuzzer's driver, for a program that has its own main (SwiftPM gives every executable one): parses the
/// libFuzzer flags in argv and fuzzes `callback`. Provided by the runtime that -sanitize=fuzzer links.
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

#endif
