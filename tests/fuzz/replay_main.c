/* replay_main.c - a main() for the fuzz targets without libFuzzer: runs LLVMFuzzerTestOneInput once on
 * each file named on the command line (regression inputs under tests/fuzz/regress/), so a fixed
 * crash stays fixed. Exit 0 when every input ran (a sanitizer report aborts with its own code). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        if (!f) { perror(argv[i]); return 1; }
        size_t cap = 1 << 16, n = 0, k;
        uint8_t *buf = malloc(cap);
        while (buf && (k = fread(buf + n, 1, cap - n, f)) > 0) {
            n += k;
            if (n == cap) buf = realloc(buf, cap *= 2);
        }
        fclose(f);
        if (!buf) return 1;
        LLVMFuzzerTestOneInput(buf, n);
        free(buf);
        fprintf(stderr, "replay: %s: ok (%zu bytes)\n", argv[i], n);
    }
    return 0;
}
