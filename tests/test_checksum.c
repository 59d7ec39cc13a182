/* The checksum of a model.so's weights (cnnc/abi.h's rt_weights_hash, which the
 * runtime recomputes with libc alone) is XXH64 with seed 0: the same as libxxhash's
 * for every length and alignment, and the same fed in stripes of 32 bytes (as cnnc
 * hashes the weights while it packs them) as in one piece. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <xxhash.h>

#include "cnnc/abi.h"

#define BYTES 70000

static uint8_t *random_bytes(void)
{
    uint8_t *p = malloc(BYTES);
    uint64_t s = 0x2545f4914f6cdd1du;
    for (int i = 0; i < BYTES; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        p[i] = (uint8_t)(s >> 24);
    }
    return p;
}

static void test_xxh64(void **state)
{
    (void)state;
    uint8_t *p = random_bytes();
    assert_true(rt_weights_hash(NULL, 0) == XXH64(NULL, 0, 0));
    assert_true(rt_weights_hash(p, 0) == 0xef46db3751d8e999u); /* XXH64 of nothing */
    for (int n = 0; n <= 300; n++)
        for (int off = 0; off < 8; off++)
            assert_true(rt_weights_hash(p + off, n) == XXH64(p + off, (size_t)n, 0));
    for (int n = 301; n <= BYTES - 8; n = n * 3 / 2 + 7)
        assert_true(rt_weights_hash(p + 3, n) == XXH64(p + 3, (size_t)n, 0));
    /* One flipped bit anywhere changes it. */
    uint64_t h = rt_weights_hash(p, 4096);
    for (int bit = 0; bit < 4096 * 8; bit += 61) {
        p[bit / 8] ^= (uint8_t)(1u << bit % 8);
        assert_true(rt_weights_hash(p, 4096) != h);
        p[bit / 8] ^= (uint8_t)(1u << bit % 8);
    }
    free(p);
}

static void test_stripes(void **state)
{
    (void)state;
    uint8_t *p = random_bytes();
    for (int n = 0; n <= 1000; n += 13) {
        uint64_t whole = rt_weights_hash(p, n);
        for (int cut = 0; cut <= n; cut += 32) {
            RtHash h;
            rt_hash_init(&h);
            rt_hash_stripes(&h, p, cut / 64 * 32); /* two pieces, then the rest */
            rt_hash_stripes(&h, p + cut / 64 * 32, cut - cut / 64 * 32);
            assert_true(rt_hash_final(&h, p + cut, n - cut) == whole);
        }
    }
    free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_xxh64),
                                       cmocka_unit_test(test_stripes)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
