/* target.c: the names of CUDA targets on the command line: sm_XX architectures
 * and the math mode of convolutions and dense layers. */
#include <string.h>

#include "cuda.h"

bool cg_cuda_parse_arch(const char *name, int32_t *arch)
{
    if (strncmp(name, "sm_", 3) != 0) return false;
    const char *d = name + 3;
    size_t n = strlen(d);
    if (n < 2 || n > 3) return false;
    int32_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (d[i] < '0' || d[i] > '9') return false;
        v = v * 10 + (d[i] - '0');
    }
    if (d[0] == '0' || v < 70 || v > 129) return false;
    *arch = v;
    return true;
}

bool cg_cuda_parse_math(const char *name, CuMath *math)
{
    if (!strcmp(name, "tf32")) return *math = CU_MATH_TF32, true;
    if (!strcmp(name, "f32")) return *math = CU_MATH_F32, true;
    return false;
}
