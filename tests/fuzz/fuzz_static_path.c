/* fuzz_static_path.c — libFuzzer harness for static path normalisation: never a crash, and an
 * accepted path never holds a ".." segment, a NUL or a backslash. Run: make fuzz. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "static_path.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char out[KX_STATIC_PATH_MAX + 1];
    kx_static_result_t r = kx_static_normalize((const char *)data, size, out, sizeof out);
    if (r != KX_STATIC_OK) return 0;
    size_t n = strnlen(out, sizeof out);
    if (n == sizeof out) abort();
    if (strstr(out, "/../") || strncmp(out, "../", 3) == 0 || (n >= 3 && strcmp(out + n - 3, "/..") == 0) ||
        strcmp(out, "..") == 0 || strchr(out, '\\'))
        abort();
    return 0;
}
