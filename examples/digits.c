/* digits: the C API of a compiled model (include/cnnc/model.h) at work. Opens each model.so built by
 *     cnnc models/mnist_cnn.cnn --weights=models/mnist_cnn.safetensors --batch=B -o mnist_cnn.so,
 * classifies the handwritten digits of DIGITS_DIR (images.npy, labels.npy) with it and prints its
 * accuracy and latency; a few of the first model's answers are drawn.
 *     usage: digits DIGITS_DIR MODEL.so... */
#include <dlfcn.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cnnc/model.h"

enum { CLASSES = 10, SIDE = 28, MAX_DRAWN = 4 };

/* The model's functions, looked up in the .so given on the command line. */
typedef struct Api {
    void *lib; /* the dlopen handle */
    void (*options_init)(cnn_options *opt);
    cnn_status (*create)(const cnn_options *opt, cnn_model **out);
    void (*destroy)(cnn_model *m);
    cnn_status (*input_info)(const cnn_model *m, int32_t i, cnn_tensor_info *info);
    cnn_status (*output_info)(const cnn_model *m, int32_t i, cnn_tensor_info *info);
    int32_t (*num_threads)(const cnn_model *m);
    cnn_status (*run)(cnn_model *m, const cnn_tensor *in, int32_t nin, cnn_tensor *out,
                      int32_t nout);
    const char *(*status_string)(cnn_status s);
} Api;

typedef struct Digits {
    float *images; /* [n][SIDE][SIDE], as fed to the network */
    float *labels; /* [n] */
    long n;
} Digits;

static void *xmalloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (!p) {
        fputs("digits: out of memory\n", stderr);
        exit(1);
    }
    return p;
}

/* POSIX lets dlsym's result stand for a function; memcpy keeps ISO C's pedantic mode quiet. */
static bool sym(void *lib, const char *name, void *fn)
{
    void *p = dlsym(lib, name);
    if (!p) fprintf(stderr, "digits: %s\n", dlerror());
    else memcpy(fn, &p, sizeof p);
    return p != NULL;
}

static bool load_api(const char *path, Api *api)
{
    void *lib = api->lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!lib) return fprintf(stderr, "digits: %s\n", dlerror()), false;
    api->options_init = cnn_options_init;
    return sym(lib, "cnn_model_create", &api->create) &&
           sym(lib, "cnn_model_destroy", &api->destroy) &&
           sym(lib, "cnn_model_input_info", &api->input_info) &&
           sym(lib, "cnn_model_output_info", &api->output_info) &&
           sym(lib, "cnn_model_num_threads", &api->num_threads) &&
           sym(lib, "cnn_model_run", &api->run) &&
           sym(lib, "cnn_status_string", &api->status_string);
}

/* The element count of an .npy header, a Python dict such as
 * {'descr': '<f4', 'fortran_order': False, 'shape': (360, 1, 28, 28), }, or -1 unless it
 * describes little-endian float32 in C order. */
static long npy_count(const char *header)
{
    const char *s = strstr(header, "'shape': (");
    if (!strstr(header, "'<f4'") || !strstr(header, "'fortran_order': False") || !s) return -1;
    long count = 1;
    for (s += 10; *s != ')'; s += strspn(s, ", ")) {
        char *end;
        long dim = strtol(s, &end, 10);
        if (end == s || dim < 0) return -1;
        count *= dim;
        s = end;
    }
    return count;
}

/* Reads a float32 .npy file (versions 1 to 3) into a new array of *count floats. */
static float *read_npy(const char *path, long *count)
{
    FILE *f = fopen(path, "rb");
    unsigned char pre[12];
    float *data = NULL;
    *count = -1;
    if (f && fread(pre, 1, 10, f) == 10 && !memcmp(pre, "\x93NUMPY", 6) &&
        (pre[6] == 1 || fread(pre + 10, 1, 2, f) == 2)) {
        size_t len = (size_t)pre[8] | (size_t)pre[9] << 8;
        if (pre[6] > 1) len |= (size_t)pre[10] << 16 | (size_t)pre[11] << 24;
        char *header = xmalloc(len + 1);
        header[fread(header, 1, len, f)] = '\0';
        *count = npy_count(header);
        free(header);
    }
    if (*count >= 0) data = xmalloc((size_t)*count * sizeof *data);
    if (!data || fread(data, sizeof *data, (size_t)*count, f) != (size_t)*count ||
        fgetc(f) != EOF) {
        fprintf(stderr, "digits: %s: not a float32 .npy file\n", path);
        exit(1);
    }
    fclose(f);
    return data;
}

static void check(const Api *api, cnn_status s, const char *what)
{
    if (s == CNN_OK) return;
    fprintf(stderr, "digits: %s: %s\n", what, api->status_string(s));
    exit(1);
}

static int argmax(const float *v)
{
    int best = 0;
    for (int i = 1; i < CLASSES; i++)
        if (v[i] > v[best]) best = i;
    return best;
}

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

/* Classifies every digit in batches of the model's batch size (the last one padded with zeros)
 * into pred[], `passes` times over, and returns each run's time in ms (run_ms[]). */
static void classify(const Api *api, cnn_model *m, const Digits *d, long batch, int passes,
                     int *pred, double *run_ms)
{
    const long pixels = SIDE * SIDE;
    float *in = xmalloc((size_t)(batch * pixels) * sizeof *in);
    float *out = xmalloc((size_t)(batch * CLASSES) * sizeof *out);
    cnn_tensor tin = {in, (size_t)(batch * pixels) * sizeof *in};
    cnn_tensor tout = {out, (size_t)(batch * CLASSES) * sizeof *out};
    for (int p = 0; p < passes; p++) {
        for (long first = 0; first < d->n; first += batch) {
            long k = d->n - first < batch ? d->n - first : batch;
            memset(in, 0, tin.size);
            memcpy(in, d->images + first * pixels, (size_t)(k * pixels) * sizeof *in);
            double t0 = now_ms();
            check(api, api->run(m, &tin, 1, &tout, 1), "cnn_model_run");
            *run_ms++ = now_ms() - t0;
            for (long i = 0; i < k; i++) pred[first + i] = argmax(out + i * CLASSES);
        }
    }
    free(in);
    free(out);
}

/* Draws digits side by side, two image rows per text row, denser characters for darker ink;
 * text rows blank in every digit are left out. */
static void draw(const Digits *d, const long *which, int count, const int *pred)
{
    static const char ramp[] = " .:-=+*#%@";
    char line[MAX_DRAWN * (SIDE + 2) + 1];
    for (int j = 0; j < count; j++) {
        long i = which[j];
        int true_label = (int)d->labels[i];
        if (pred[i] == true_label) snprintf(line, SIDE + 1, "#%ld: %d", i, pred[i]);
        else snprintf(line, SIDE + 1, "#%ld: %d, true %d", i, pred[i], true_label);
        printf("%-*s", j + 1 < count ? SIDE + 2 : 0, line);
    }
    putchar('\n');
    for (int y = 0; y < SIDE; y += 2) {
        char *c = line;
        for (int j = 0; j < count; j++, c += 2) {
            const float *img = d->images + which[j] * SIDE * SIDE;
            float lo = img[0], hi = img[0];
            for (int p = 1; p < SIDE * SIDE; p++) lo = fminf(lo, img[p]), hi = fmaxf(hi, img[p]);
            for (int x = 0; x < SIDE; x++) {
                float v = (img[y * SIDE + x] + img[(y + 1) * SIDE + x]) / 2;
                *c++ = ramp[(int)((v - lo) / (hi - lo + 1e-6f) * (sizeof ramp - 1))];
            }
            c[0] = c[1] = ' ';
        }
        while (c > line && c[-1] == ' ') c--;
        *c = '\0';
        if (c > line) puts(line);
    }
}

/* The first few digits, then the first few the network got wrong. */
static void show(const Digits *d, const int *pred)
{
    long which[MAX_DRAWN];
    int count = 0;
    for (long i = 0; i < d->n && count < MAX_DRAWN; i++) which[count++] = i;
    draw(d, which, count, pred);
    count = 0;
    for (long i = 0; i < d->n && count < MAX_DRAWN; i++)
        if (pred[i] != (int)d->labels[i]) which[count++] = i;
    if (count) draw(d, which, count, pred);
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void load_digits(const char *dir, Digits *d)
{
    char path[4096];
    long pixels;
    snprintf(path, sizeof path, "%s/images.npy", dir);
    d->images = read_npy(path, &pixels);
    snprintf(path, sizeof path, "%s/labels.npy", dir);
    d->labels = read_npy(path, &d->n);
    if (pixels != d->n * SIDE * SIDE) {
        fprintf(stderr, "digits: %s: %ld labels for %ld pixels\n", dir, d->n, pixels);
        exit(1);
    }
}

/* Runs one compiled model over all digits: prints its accuracy and latency, and, if asked,
 * draws a few of its answers first. */
static void evaluate(const char *path, const Digits *d, bool drawing)
{
    Api api;
    cnn_options opt;
    cnn_model *m;
    cnn_tensor_info in, out;
    if (!load_api(path, &api)) exit(1);
    api.options_init(&opt);
    check(&api, api.create(&opt, &m), "cnn_model_create");
    check(&api, api.input_info(m, 0, &in), "cnn_model_input_info");
    check(&api, api.output_info(m, 0, &out), "cnn_model_output_info");
    long batch = (long)in.dims[0];
    if (in.size != (size_t)batch * SIDE * SIDE * sizeof(float) ||
        out.size != (size_t)batch * CLASSES * sizeof(float)) {
        fprintf(stderr, "digits: %s does not map %dx%d images to %d classes\n", path, SIDE, SIDE,
                CLASSES);
        exit(1);
    }

    /* Enough passes over the data for at least 20 timed runs (for a median worth the name). */
    long runs = (d->n + batch - 1) / batch;
    int passes = runs >= 20 ? 1 : (int)((20 + runs - 1) / runs);
    int *pred = xmalloc((size_t)d->n * sizeof *pred);
    double *run_ms = xmalloc((size_t)(runs * passes) * sizeof *run_ms);
    classify(&api, m, d, batch, passes, pred, run_ms);
    long correct = 0;
    for (long i = 0; i < d->n; i++) correct += pred[i] == (int)d->labels[i];
    if (drawing) show(d, pred);
    qsort(run_ms, (size_t)(runs * passes), sizeof *run_ms, by_value);
    double median = run_ms[runs * passes / 2];
    printf("%s: %ld/%ld correct (%.2f%%); batch %ld: median %.3f ms per run, %.3f ms per image, "
           "%d threads\n", path, correct, d->n, 100.0 * correct / d->n, batch, median,
           median / batch, api.num_threads(m));
    api.destroy(m);
    dlclose(api.lib);
    free(run_ms);
    free(pred);
}

int main(int argc, char **argv)
{
    Digits d;
    if (argc < 3) {
        fputs("usage: digits DIGITS_DIR MODEL.so...\n", stderr);
        return 1;
    }
    load_digits(argv[1], &d);
    for (int i = 2; i < argc; i++) evaluate(argv[i], &d, i == 2);
    free(d.images);
    free(d.labels);
    return 0;
}
