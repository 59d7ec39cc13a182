/* cnnrun: loads a compiled model.so through its public API (dlopen), runs it
 * on .npy, JPEG or PNG (--image) or seeded random inputs, and writes or summarises
 * the outputs; --bench times it, --profile times each kernel, --top prints the best
 * classes, named with --labels;
 * --device-buffers keeps a CUDA model's inputs and outputs on the device.
 * Exit 0 on success, else 1. */
#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"
#include "cnnc/model.h"
#include "cnnrun_cuda.h"
#include "image.h"
#include "ir.h"
#include "model_api.h"
#include "support.h"

#define MAX_INPUT_FILES 16
#define MAX_IMAGES 4096

typedef struct Options {
    const char *model;
    const char *inputs[MAX_INPUT_FILES]; /* FILE or NAME=FILE */
    int ninputs;
    const char *out; /* --output */
    const char *images[MAX_IMAGES];
    int nimages;
    ImagePrep prep;
    int nmean, nstd;                /* values given with --mean, --std; 0: the default */
    bool prep_given;                /* --resize, --mean or --std */
    const char *labels, *dump_input;
    int64_t threads, bench, warmup, top, device_index;
    cnn_device device;
    uint64_t seed;
    bool profile, sort_by_time, device_buffers, verify;
} Options;

/* One model instance with its buffers: runs take run_in and run_out, the host buffers
 * in and out, or with --device-buffers their copies on the device. */
typedef struct Session {
    cnn_model *m;
    int32_t nin, nout;
    cnn_tensor_info *in_info, *out_info;
    cnn_tensor *in, *out, *run_in, *run_out;
    CudaBuffers cuda;
    char **labels; /* --labels: the names of the first output's classes */
    int64_t nlabels;
    char *label_text;
} Session;

static const char usage[] =
    "usage: cnnrun MODEL.so [options] [NAME=X.npy ...]\n"
    "\n"
    "Runs a model compiled by cnnc and summarises or writes its outputs.\n"
    "\n"
    "  --input X.npy       the input (NAME=X.npy for a model with several inputs);\n"
    "                      without it, inputs are uniform random in [-1, 1)\n"
    "  --seed S            seed of the random inputs (default 0; as 'cnnc run')\n"
    "  --image FILE        a JPEG or PNG image as one item of the batch (repeat it for\n"
    "                      each item; the model's one input must be [N, 1 or 3, H, W]),\n"
    "                      preprocessed as torchvision's Resize(256), CenterCrop(H, W),\n"
    "                      ToTensor(), Normalize(mean, std); 1 channel: luminance as\n"
    "                      PIL's convert('L')\n"
    "  --resize N          the short side after resizing (default 256; 0: none)\n"
    "  --mean a,b,c        per-channel mean of the [0, 1] values, one value or one per\n"
    "                      channel (default 3 channels: ImageNet's 0.485,0.456,0.406;\n"
    "                      1 channel: 0)\n"
    "  --std a,b,c         per-channel deviation (default 0.229,0.224,0.225; 1 channel: 1)\n"
    "  --dump-input X.npy  write the input as given to the model (several inputs:\n"
    "                      X.NAME.npy)\n"
    "  --output Y.npy      write the output (with several outputs: Y.NAME.npy)\n"
    "  --threads N         worker threads, 0: one per core (default 0)\n"
    "  --device cpu|cuda   where to run: the model's own device (the default) or an\n"
    "                      error saying why not\n"
    "  --device-index N    which CUDA device (default 0)\n"
    "  --device-buffers    CUDA models: inputs and outputs in device memory, copied in\n"
    "                      once before the runs and out after them, so a run (and\n"
    "                      --bench) is the network alone: one CUDA graph launch\n"
    "  --bench N           time N runs; prints median and p90 latency, throughput\n"
    "  --warmup N          untimed runs before them (default 1)\n"
    "  --profile           time each kernel over the --bench runs (default 20): time per\n"
    "                      run, share and GFLOP/s of each, in execution order\n"
    "  --profile-sort=time the same, slowest kernel first\n"
    "  --top K             the K largest values of each batch item of the first output\n"
    "  --labels FILE       name the classes in --top: one name a line, or 'imagenet'\n"
    "                      for ImageNet's 1000 classes\n"
    "  --verify            first check the weights against the checksum cnnc stored\n"
    "                      with them (CPU models)\n"
    "  --help\n";

static bool parse_int(const char *flag, const char *s, int64_t lo, int64_t hi, int64_t *v)
{
    char *end;
    errno = 0;
    long long x = (*s >= '0' && *s <= '9') ? strtoll(s, &end, 10) : -1;
    if (*s < '0' || *s > '9' || errno || *end || x < lo || x > hi) {
        cli_fail("%s expects an integer in [%" PRId64 ", %" PRId64 "], got '%s'", flag, lo, hi, s);
        return false;
    }
    *v = x;
    return true;
}

/* --mean, --std: 1 or 3 comma-separated numbers (std positive). */
static bool parse_floats(const char *flag, const char *s, float *v, int *n)
{
    const char *p = s;
    char *end;
    for (*n = 0; *n < 3; p = end + 1) {
        errno = 0;
        double x = strtod(p, &end);
        bool ok = end != p && !errno && isfinite(x) && (*end == ',' || !*end) &&
                  (strcmp(flag, "--std") != 0 || x > 0);
        if (!ok)
            break;
        v[(*n)++] = (float)x;
        if (!*end && *n != 2) {
            if (*n == 1)
                v[1] = v[2] = v[0];
            return true;
        }
        if (!*end)
            break;
    }
    cli_fail("%s expects 1 or 3 comma-separated %snumbers, got '%s'", flag,
             strcmp(flag, "--std") ? "" : "positive ", s);
    return false;
}

static bool add_input(Options *o, const char *v)
{
    if (o->ninputs == MAX_INPUT_FILES)
        return cli_fail("too many inputs (at most %d)", MAX_INPUT_FILES), false;
    o->inputs[o->ninputs++] = v;
    return true;
}

static bool parse_option(void *ctx, int argc, char **argv, int *i)
{
    Options *o = ctx;
    bool bad = false;
    const char *v;
    if ((v = cli_flag_value("--input", argc, argv, i, &bad)))
        return add_input(o, v);
    if ((v = cli_flag_value("--image", argc, argv, i, &bad))) {
        if (o->nimages == MAX_IMAGES)
            return cli_fail("too many images (at most %d)", MAX_IMAGES), false;
        return o->images[o->nimages++] = v, true;
    }
    if ((v = cli_flag_value("--resize", argc, argv, i, &bad))) {
        int64_t n;
        o->prep_given = true;
        return parse_int("--resize", v, 0, 16384, &n) && (o->prep.resize = (int32_t)n, true);
    }
    if ((v = cli_flag_value("--mean", argc, argv, i, &bad)))
        return o->prep_given = true, parse_floats("--mean", v, o->prep.mean, &o->nmean);
    if ((v = cli_flag_value("--std", argc, argv, i, &bad)))
        return o->prep_given = true, parse_floats("--std", v, o->prep.std, &o->nstd);
    if ((v = cli_flag_value("--labels", argc, argv, i, &bad)))
        return o->labels = v, true;
    if ((v = cli_flag_value("--dump-input", argc, argv, i, &bad)))
        return o->dump_input = v, true;
    if ((v = cli_flag_value("--output", argc, argv, i, &bad)) ||
        (v = cli_flag_value("-o", argc, argv, i, &bad)))
        return o->out = v, true;
    if ((v = cli_flag_value("--threads", argc, argv, i, &bad)))
        return parse_int("--threads", v, 0, 1024, &o->threads);
    if ((v = cli_flag_value("--device-index", argc, argv, i, &bad)))
        return parse_int("--device-index", v, 0, 1024, &o->device_index);
    if ((v = cli_flag_value("--device", argc, argv, i, &bad))) {
        if (strcmp(v, "cpu") != 0 && strcmp(v, "cuda") != 0)
            return cli_fail("--device expects cpu or cuda, got '%s'", v), false;
        return o->device = strcmp(v, "cpu") == 0 ? CNN_DEVICE_CPU : CNN_DEVICE_CUDA, true;
    }
    if ((v = cli_flag_value("--bench", argc, argv, i, &bad)))
        return parse_int("--bench", v, 1, 100000000, &o->bench);
    if ((v = cli_flag_value("--warmup", argc, argv, i, &bad)))
        return parse_int("--warmup", v, 0, 100000000, &o->warmup);
    if ((v = cli_flag_value("--top", argc, argv, i, &bad)))
        return parse_int("--top", v, 1, 1000000, &o->top);
    if ((v = cli_flag_value("--seed", argc, argv, i, &bad)))
        return cli_parse_u64(v, &o->seed) ||
               (cli_fail("--seed expects a non-negative integer, got '%s'", v), false);
    if (!strcmp(argv[*i], "--profile"))
        return o->profile = true;
    if (!strcmp(argv[*i], "--device-buffers"))
        return o->device_buffers = true;
    if (!strcmp(argv[*i], "--verify"))
        return o->verify = true;
    if ((v = cli_flag_value("--profile-sort", argc, argv, i, &bad))) {
        if (strcmp(v, "time") != 0)
            return cli_fail("--profile-sort expects 'time', got '%s'", v), false;
        return o->profile = o->sort_by_time = true;
    }
    if (!bad)
        cli_fail("unknown option '%s' (see cnnrun --help)", argv[*i]);
    return false;
}

/* The model, then inputs as NAME=FILE. */
static bool add_operand(void *ctx, const char *arg)
{
    Options *o = ctx;
    if (!o->model)
        return o->model = arg, true;
    if (strchr(arg, '='))
        return add_input(o, arg);
    return cli_fail("unexpected argument '%s' (inputs are NAME=X.npy)", arg), false;
}

/* 0: go on; 1: bad command line; 2: --help handled. */
static int parse_args(Options *o, int argc, char **argv)
{
    static const CliParser parser = {usage, NULL, parse_option, add_operand, NULL};
    int rc = cli_parse(&parser, o, argc, argv, 1);
    if (rc)
        return rc;
    if (!o->model)
        return cli_fail("no model given (see cnnrun --help)"), 1;
    if (o->warmup >= 0 && !o->bench && !o->profile)
        return cli_fail("--warmup needs --bench"), 1;
    if (o->nimages && o->ninputs)
        return cli_fail("--image and --input (or NAME=FILE) cannot be combined"), 1;
    if (o->prep_given && !o->nimages)
        return cli_fail("--resize, --mean and --std need --image"), 1;
    if (o->labels && !o->top)
        return cli_fail("--labels needs --top"), 1;
    return 0;
}

/* dlopen searches the library path for a bare name; a user means the file. */
static bool load_api(ModelApi *a, const Options *o)
{
    char buf[4096], err[8448];
    const char *path = o->model;
    if (!strchr(path, '/') && snprintf(buf, sizeof buf, "./%s", path) < (int)sizeof buf)
        path = buf;
    if (!model_api_open(a, path, err, sizeof err)) return cli_fail("%s", err), false;
    if (o->profile && !a->set_profiling) {
        cli_fail("'%s' cannot be profiled (compiled by an older cnnc)", o->model);
        dlclose(a->lib);
        return false;
    }
    return true;
}

static int64_t numel(const cnn_tensor_info *t)
{
    return (int64_t)(t->size / sizeof(float));
}

static char *shape_str(int32_t rank, const int64_t *dims, char *buf, size_t n)
{
    TensorType t = ir_type_f32(rank, dims);
    return ir_type_str(&t, buf, n);
}

static int32_t input_index(const Session *s, const char *name, size_t len)
{
    for (int32_t i = 0; i < s->nin; i++)
        if (strlen(s->in_info[i].name) == len && !strncmp(s->in_info[i].name, name, len))
            return i;
    return -1;
}

/* The file for input `name` among the inputs given: NAME=FILE, or a bare FILE
 * when the model has one input. */
static const char *input_file(const Options *o, const Session *s, int32_t in)
{
    for (int i = 0; i < o->ninputs; i++) {
        const char *eq = strchr(o->inputs[i], '=');
        if (eq && input_index(s, o->inputs[i], (size_t)(eq - o->inputs[i])) == in)
            return eq + 1;
    }
    return s->nin == 1 && o->ninputs == 1 ? o->inputs[0] : NULL;
}

static bool check_input_options(const Options *o, const Session *s)
{
    if (o->ninputs == 0)
        return true;
    if (o->ninputs > s->nin)
        return cli_fail("%d input files for %d input(s)", o->ninputs, s->nin), false;
    bool ok = true;
    for (int i = 0; i < o->ninputs && s->nin > 1; i++) {
        const char *a = o->inputs[i], *eq = strchr(a, '=');
        if (!eq)
            cli_fail("input file '%s' needs a name: the model has %d inputs (NAME=FILE)", a,
                     s->nin);
        else if (input_index(s, a, (size_t)(eq - a)) < 0)
            cli_fail("the model has no input named '%.*s'", (int)(eq - a), a);
        ok = ok && eq && input_index(s, a, (size_t)(eq - a)) >= 0;
    }
    for (int32_t i = 0; i < s->nin && ok; i++)
        if (!input_file(o, s, i))
            cli_fail("no input file for input '%s'", s->in_info[i].name), ok = false;
    return ok;
}

static void random_input(const cnn_tensor_info *t, uint64_t seed, float *x)
{
    cli_random_input(x, numel(t), seed, t->name);
}

static bool load_input(const cnn_tensor_info *t, const char *path, float *x)
{
    char err[512], want[128], got[128];
    NpyArray a;
    if (!ir_npy_read(path, &a, err, sizeof err))
        return cli_fail("%s", err), false;
    bool same = a.rank == t->rank;
    for (int32_t d = 0; same && d < a.rank; d++)
        same = a.dims[d] == t->dims[d];
    if (same)
        memcpy(x, a.data, t->size);
    else
        cli_fail("input '%s' expects %s, got %s from '%s'", t->name,
             shape_str(t->rank, t->dims, want, sizeof want),
             shape_str(a.rank, a.dims, got, sizeof got), path);
    free(a.data);
    return same;
}

/* The status in words, with the model's detail when it gave one. */
static void fail_status(const ModelApi *api, const char *what, cnn_status st)
{
    const char *detail = api->last_error ? api->last_error() : "";
    if (detail && *detail)
        cli_fail("%s: %s (%s)", what, api->status_string(st), detail);
    else
        cli_fail("%s: %s", what, api->status_string(st));
}

static bool open_session(const ModelApi *api, const Options *o, Session *s)
{
    cnn_options opt;
    api->options_init(&opt);
    opt.api_version = CNN_API_VERSION; /* the version this tool was built against */
    opt.num_threads = (int32_t)o->threads;
    opt.device = o->device;
    opt.device_index = (int32_t)o->device_index;
    opt.flags = o->device_buffers ? CNN_DEVICE_POINTERS : 0;
    cnn_status st = api->create(&opt, &s->m);
    if (st != CNN_OK)
        return fail_status(api, o->device_buffers ? "cannot create the model with "
                           "--device-buffers" : "cannot create the model", st), false;
    s->nin = api->num_inputs(s->m);
    s->nout = api->num_outputs(s->m);
    s->in_info = ir_xcalloc((size_t)s->nin + 1, sizeof *s->in_info);
    s->out_info = ir_xcalloc((size_t)s->nout + 1, sizeof *s->out_info);
    s->in = ir_xcalloc((size_t)s->nin + 1, sizeof *s->in);
    s->out = ir_xcalloc((size_t)s->nout + 1, sizeof *s->out);
    for (int32_t i = 0; i < s->nin; i++) {
        api->input_info(s->m, i, &s->in_info[i]);
        s->in[i] = (cnn_tensor){ir_xcalloc(s->in_info[i].size + 1, 1), s->in_info[i].size};
    }
    for (int32_t i = 0; i < s->nout; i++) {
        api->output_info(s->m, i, &s->out_info[i]);
        s->out[i] = (cnn_tensor){ir_xcalloc(s->out_info[i].size + 1, 1), s->out_info[i].size};
    }
    s->run_in = s->in;
    s->run_out = s->out;
    return true;
}

static void close_session(const ModelApi *api, Session *s)
{
    for (int32_t i = 0; i < s->nin; i++)
        free(s->in[i].data);
    for (int32_t i = 0; i < s->nout; i++)
        free(s->out[i].data);
    cnnrun_cuda_close(&s->cuda);
    if (s->run_in != s->in)
        free(s->run_in);
    if (s->run_out != s->out)
        free(s->run_out);
    free(s->in);
    free(s->out);
    free(s->in_info);
    free(s->out_info);
    free(s->labels);
    free(s->label_text);
    api->destroy(s->m);
}

/* --image: one file per batch item of the model's one input, [N, 1 or 3, H, W]. */
static bool load_images(const Options *o, const Session *s)
{
    char ts[128], err[1024];
    const cnn_tensor_info *t = &s->in_info[0];
    if (s->nin != 1)
        return cli_fail("--image needs a model with one input; it has %d", s->nin), false;
    if (t->rank != 4 || (t->dims[1] != 1 && t->dims[1] != 3))
        return cli_fail("--image needs an input of shape [N, 1 or 3, H, W]; input '%s' is %s",
                        t->name, shape_str(t->rank, t->dims, ts, sizeof ts)), false;
    int32_t c = (int32_t)t->dims[1];
    if (o->nimages != t->dims[0])
        return cli_fail("%d image%s for a batch of %" PRId64 " (input '%s' is %s)", o->nimages,
                        o->nimages == 1 ? "" : "s", t->dims[0], t->name,
                        shape_str(t->rank, t->dims, ts, sizeof ts)), false;
    if (c == 1 && (o->nmean == 3 || o->nstd == 3))
        return cli_fail("--mean and --std take one value for a model of 1 channel"), false;
    ImagePrep p = o->prep;
    if (c == 1) { /* [0, 1] as they come unless told */
        p.mean[0] = o->nmean ? p.mean[0] : 0.0f;
        p.std[0] = o->nstd ? p.std[0] : 1.0f;
    }
    int64_t item = c * t->dims[2] * t->dims[3];
    for (int i = 0; i < o->nimages; i++)
        if (!image_load_tensor(o->images[i], &p, c, t->dims[2], t->dims[3],
                               (float *)s->in[0].data + i * item, err, sizeof err))
            return cli_fail("%s", err), false;
    return true;
}

static bool dump_inputs(const Options *o, const Session *s)
{
    bool ok = true;
    for (int32_t k = 0; k < s->nin && ok; k++) {
        const cnn_tensor_info *t = &s->in_info[k];
        char err[512], *path = cli_output_path(o->dump_input, t->name, s->nin);
        if (!ir_npy_write(path, s->in[k].data, t->rank, t->dims, err, sizeof err))
            cli_fail("%s", err), ok = false;
        free(path);
    }
    return ok;
}

static bool fill_inputs(const Options *o, const Session *s)
{
    if (o->nimages)
        return load_images(o, s) && (!o->dump_input || dump_inputs(o, s));
    if (!check_input_options(o, s))
        return false;
    for (int32_t i = 0; i < s->nin; i++) {
        const char *path = o->ninputs ? input_file(o, s, i) : NULL;
        if (!path)
            random_input(&s->in_info[i], o->seed, s->in[i].data);
        else if (!load_input(&s->in_info[i], path, s->in[i].data))
            return false;
    }
    return !o->dump_input || dump_inputs(o, s);
}

/* The classes of a batch item of the first output: its size after the batch dim. */
static int64_t classes_per_item(const Session *s)
{
    const cnn_tensor_info *t = &s->out_info[0];
    int64_t batch = t->rank > 1 ? t->dims[0] : 1;
    return batch ? numel(t) / batch : 0;
}

/* A whole text file, NUL-terminated (free() it); NULL after saying why. */
static char *read_text(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return cli_fail("--labels: cannot open '%s': %s", path, strerror(errno)), NULL;
    struct stat st = {0};
    long len = fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) && fseek(f, 0, SEEK_END) == 0
                   ? ftell(f) : -1;
    char *text = NULL;
    if (len < 0 || len > (64L << 20) || fseek(f, 0, SEEK_SET) != 0)
        cli_fail("--labels: cannot read '%s'%s", path, len > 0 ? " (over 64 MiB)" : "");
    else {
        text = ir_xmalloc((size_t)len + 1);
        *size = fread(text, 1, (size_t)len, f);
        text[*size] = 0;
        if (ferror(f)) {
            cli_fail("--labels: cannot read '%s': %s", path, strerror(errno));
            free(text);
            text = NULL;
        }
    }
    fclose(f);
    return text;
}

/* --labels FILE: one name a line (a last line without its newline counts, a CR before the
 * newline does not); the count must be the output's number of classes. */
static bool load_labels(const Options *o, Session *s)
{
    if (s->nout == 0 || s->out_info[0].rank == 0)
        return cli_fail("--top needs an output of rank 1 or more"), false;
    int64_t want = classes_per_item(s);
    if (!strcmp(o->labels, "imagenet")) {
        s->labels = ir_xcalloc((size_t)imagenet_class_count + 1, sizeof *s->labels);
        for (int i = 0; i < imagenet_class_count; i++)
            s->labels[i] = (char *)imagenet_classes[i];
        s->nlabels = imagenet_class_count;
    } else {
        size_t size;
        if (!(s->label_text = read_text(o->labels, &size)))
            return false;
        int64_t lines = 0;
        for (size_t i = 0; i < size; i++)
            lines += s->label_text[i] == '\n';
        s->labels = ir_xcalloc((size_t)lines + 2, sizeof *s->labels);
        for (char *p = s->label_text; *p;) {
            char *nl = strchr(p, '\n');
            if (nl)
                *nl = 0;
            size_t len = strlen(p);
            if (len && p[len - 1] == '\r')
                p[len - 1] = 0;
            s->labels[s->nlabels++] = p;
            if (!nl)
                break;
            p = nl + 1;
        }
    }
    if (s->nlabels != want)
        return cli_fail("--labels: '%s' has %" PRId64 " name%s, the output '%s' has %" PRId64
                        " classes", o->labels, s->nlabels, s->nlabels == 1 ? "" : "s",
                        s->out_info[0].name, want), false;
    return true;
}

static bool run_once(const ModelApi *api, const Session *s)
{
    cnn_status st = api->run(s->m, s->run_in, s->nin, s->run_out, s->nout);
    if (st != CNN_OK)
        fail_status(api, "run failed", st);
    return st == CNN_OK;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median and p90 are nearest-rank over the sorted times t; throughput counts
 * batch items (the first dimension of the first input) over the total time. */
static void print_bench(const ModelApi *api, const Options *o, const Session *s, double *t)
{
    double total = 0;
    for (int64_t i = 0; i < o->bench; i++)
        total += t[i];
    qsort(t, (size_t)o->bench, sizeof *t, cmp_double);
    int64_t batch = s->nin && s->in_info[0].rank > 0 ? s->in_info[0].dims[0] : 1;
    double per_s = total > 0 ? 1e3 * (double)o->bench / total : 0;
    int32_t nt = api->num_threads(s->m);
    char where[64];
    if (api->device && api->device(s->m) == CNN_DEVICE_CUDA)
        snprintf(where, sizeof where, "CUDA device %" PRId64, o->device_index);
    else
        snprintf(where, sizeof where, "%d thread%s", nt, nt == 1 ? "" : "s");
    printf("bench: %" PRId64 " runs after %" PRId64 " warm-up, %s, batch %" PRId64 "%s\n",
           o->bench, o->warmup, where, batch, o->profile ? ", profiling on" : "");
    printf("latency: median %.3f ms  p90 %.3f ms  min %.3f ms  max %.3f ms\n",
           t[(o->bench - 1) / 2], t[(o->bench * 9 + 9) / 10 - 1], t[0], t[o->bench - 1]);
    printf("throughput: %.1f runs/s  %.1f items/s\n", per_s, per_s * (double)batch);
}

/* Kernels of a profile, in the order printed. */
typedef struct Profile {
    cnn_kernel_info *k;
    int32_t *order;
    int32_t n;
    double kernel_ms, flops; /* per run, all kernels */
} Profile;

static const Profile *sort_profile;

static int cmp_time(const void *a, const void *b)
{
    double x = sort_profile->k[*(const int32_t *)a].seconds;
    double y = sort_profile->k[*(const int32_t *)b].seconds;
    int32_t i = *(const int32_t *)a, j = *(const int32_t *)b;
    return x != y ? (x < y) - (x > y) : (i > j) - (i < j);
}

static int name_width(const Profile *p, bool op)
{
    int w = op ? 2 : 6;
    for (int32_t i = 0; i < p->n; i++) {
        int len = (int)strlen(op ? p->k[i].op : p->k[i].name);
        w = len > w ? len : w;
    }
    return w > 40 ? 40 : w;
}

static void print_gflops(double flops, double ms)
{
    if (flops > 0 && ms > 0)
        printf("  %9.2f\n", flops / (ms * 1e6));
    else
        printf("  %9s\n", "-");
}

/* Per kernel: mean ms per run, share of the kernels' sum, GFLOP/s; then the
 * kernels' sum against the measured wall time of a run. */
static void print_profile(const Profile *p, double run_ms)
{
    int nw = name_width(p, false), ow = name_width(p, true);
    printf("%5s  %-*s  %-*s  %9s  %6s  %9s\n", "#", nw, "kernel", ow, "op", "ms/run", "share",
           "GFLOP/s");
    for (int32_t r = 0; r < p->n; r++) {
        const cnn_kernel_info *k = &p->k[p->order[r]];
        double ms = k->calls ? 1e3 * k->seconds / (double)k->calls : 0;
        printf("%5d  %-*.*s  %-*.*s  %9.4f  %5.1f%%", p->order[r], nw, nw, k->name, ow, ow,
               k->op, ms, p->kernel_ms > 0 ? 100.0 * ms / p->kernel_ms : 0.0);
        print_gflops((double)k->flops, ms);
    }
    printf("total: kernels %.4f ms/run, run %.4f ms/run (kernels %.1f%%), %.2f GFLOP/run, "
           "%.2f GFLOP/s\n",
           p->kernel_ms, run_ms, run_ms > 0 ? 100.0 * p->kernel_ms / run_ms : 0.0,
           p->flops * 1e-9, run_ms > 0 ? p->flops / (run_ms * 1e6) : 0.0);
}

static bool report_profile(const ModelApi *api, const Options *o, const Session *s, double run_ms)
{
    Profile p = {0};
    p.n = api->num_kernels(s->m);
    p.k = ir_xcalloc((size_t)p.n + 1, sizeof *p.k);
    p.order = ir_xcalloc((size_t)p.n + 1, sizeof *p.order);
    for (int32_t i = 0; i < p.n; i++) {
        cnn_status st = api->kernel_info(s->m, i, &p.k[i]);
        if (st != CNN_OK) {
            fail_status(api, "kernel info", st);
            free(p.k);
            free(p.order);
            return false;
        }
        p.order[i] = i;
        p.kernel_ms += p.k[i].calls ? 1e3 * p.k[i].seconds / (double)p.k[i].calls : 0;
        p.flops += (double)p.k[i].flops;
    }
    sort_profile = &p;
    if (o->sort_by_time)
        qsort(p.order, (size_t)p.n, sizeof *p.order, cmp_time);
    print_profile(&p, run_ms);
    free(p.k);
    free(p.order);
    return true;
}

static bool set_profiling(const ModelApi *api, const Session *s, int on)
{
    cnn_status st = api->set_profiling(s->m, on);
    if (st != CNN_OK)
        fail_status(api, "cannot switch profiling", st);
    return st == CNN_OK;
}

/* Times o->bench runs after the warm-up; with --profile, each kernel too. */
static bool bench(const ModelApi *api, const Options *o, const Session *s)
{
    for (int64_t i = 0; i < o->warmup; i++)
        if (!run_once(api, s))
            return false;
    if (o->profile && !set_profiling(api, s, 1))
        return false;
    double *t = ir_xmalloc((size_t)o->bench * sizeof *t), total = 0;
    bool ok = true;
    for (int64_t i = 0; i < o->bench && ok; i++) {
        double t0 = now_ms();
        ok = run_once(api, s);
        t[i] = now_ms() - t0;
        total += t[i];
    }
    ok = ok && (!o->profile || set_profiling(api, s, 0));
    if (ok)
        print_bench(api, o, s, t);
    if (ok && o->profile)
        ok = report_profile(api, o, s, total / (double)o->bench);
    free(t);
    return ok;
}

/* Top-k of one batch item by insertion into a sorted list: k is small. Ties
 * keep the lower index first. */
static void print_top(const Options *o, const Session *s, int64_t item, const float *v,
                      int64_t n, int64_t k, int64_t *best)
{
    int64_t have = 0;
    for (int64_t i = 0; i < n; i++) {
        if (have == k && !(v[i] > v[best[k - 1]]))
            continue;
        int64_t j = have < k ? have++ : k - 1;
        for (; j > 0 && v[i] > v[best[j - 1]]; j--)
            best[j] = best[j - 1];
        best[j] = i;
    }
    printf("%s[%" PRId64 "]", s->out_info[0].name, item);
    if (item < o->nimages)
        printf(" %s", o->images[item]);
    printf(" top-%" PRId64 ":", have);
    for (int64_t j = 0; j < have; j++) {
        printf("%s %" PRId64, j ? "," : "", best[j]);
        if (s->labels)
            printf(" %s", s->labels[best[j]]);
        printf(" (%.6g)", v[best[j]]);
    }
    printf("\n");
}

static bool print_tops(const Options *o, const Session *s)
{
    if (s->nout == 0 || s->out_info[0].rank == 0)
        return cli_fail("--top needs an output of rank 1 or more"), false;
    const cnn_tensor_info *t = &s->out_info[0];
    int64_t batch = t->rank > 1 ? t->dims[0] : 1;
    int64_t per = classes_per_item(s);
    int64_t k = o->top < per ? o->top : per;
    int64_t *best = ir_xcalloc((size_t)k + 1, sizeof *best);
    for (int64_t b = 0; b < batch && k > 0; b++)
        print_top(o, s, b, (const float *)s->out[0].data + b * per, per, k, best);
    free(best);
    return true;
}

static bool write_outputs(const Options *o, const Session *s)
{
    bool ok = true;
    for (int32_t k = 0; k < s->nout && ok; k++) {
        const cnn_tensor_info *t = &s->out_info[k];
        if (!o->out) {
            char ts[128];
            cli_print_summary(t->name, shape_str(t->rank, t->dims, ts, sizeof ts), s->out[k].data,
                              numel(t));
            continue;
        }
        char err[512], *path = cli_output_path(o->out, t->name, s->nout);
        if (!ir_npy_write(path, s->out[k].data, t->rank, t->dims, err, sizeof err))
            cli_fail("%s", err), ok = false;
        free(path);
    }
    return ok;
}

/* --device-buffers: device copies of the inputs and room for the outputs, in the primary
 * context of the model's device (the runtime's). */
static bool to_device(const ModelApi *api, const Options *o, Session *s)
{
    char err[1024];
    if (!api->device || api->device(s->m) != CNN_DEVICE_CUDA)
        return cli_fail("--device-buffers needs a CUDA model; '%s' runs on the CPU", o->model),
               false;
    if (!cnnrun_cuda_open(&s->cuda, (int32_t)o->device_index, err, sizeof err))
        return cli_fail("--device-buffers: %s", err), false;
    s->run_in = ir_xcalloc((size_t)s->nin + 1, sizeof *s->run_in);
    s->run_out = ir_xcalloc((size_t)s->nout + 1, sizeof *s->run_out);
    if (!cnnrun_cuda_alloc(&s->cuda, s->in, s->run_in, s->nin, true, err, sizeof err) ||
        !cnnrun_cuda_alloc(&s->cuda, s->out, s->run_out, s->nout, false, err, sizeof err))
        return cli_fail("--device-buffers: %s", err), false;
    return true;
}

static bool from_device(Session *s)
{
    char err[1024];
    if (!cnnrun_cuda_download(&s->cuda, s->run_out, s->out, s->nout, err, sizeof err))
        return cli_fail("--device-buffers: %s", err), false;
    return true;
}

static bool verify_weights(const ModelApi *api, const Options *o, const Session *s)
{
    if (!api->verify)
        return cli_fail("'%s' has no checksum of its weights (compiled by an older cnnc)",
                        o->model), false;
    cnn_status st = api->verify(s->m);
    if (st != CNN_OK) {
        char what[4200];
        snprintf(what, sizeof what, "%s: cannot verify the weights", o->model);
        return fail_status(api, what, st), false;
    }
    printf("weights: checksum verified\n");
    return true;
}

static int run(const ModelApi *api, const Options *o)
{
    Session s;
    memset(&s, 0, sizeof s);
    if (!open_session(api, o, &s))
        return 1;
    bool ok = !o->verify || verify_weights(api, o, &s);
    ok = ok && (!o->labels || load_labels(o, &s));
    ok = ok && fill_inputs(o, &s);
    ok = ok && (!o->device_buffers || to_device(api, o, &s));
    ok = ok && (o->bench ? bench(api, o, &s) : run_once(api, &s));
    ok = ok && (!o->device_buffers || from_device(&s));
    ok = ok && write_outputs(o, &s);
    ok = ok && (!o->top || print_tops(o, &s));
    close_session(api, &s);
    return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
    cli_set_program("cnnrun");
    Options o;
    memset(&o, 0, sizeof o);
    image_prep_imagenet(&o.prep);
    o.warmup = -1;
    int rc = parse_args(&o, argc, argv);
    if (rc)
        return rc == 2 ? 0 : 1;
    if (o.profile && !o.bench)
        o.bench = 20;
    if (o.warmup < 0)
        o.warmup = o.bench ? 1 : 0;
    ModelApi api;
    if (!load_api(&api, &o))
        return 1;
    rc = run(&api, &o);
    dlclose(api.lib);
    if (fflush(stdout) != 0)
        return cli_fail("cannot write the standard output"), 1;
    return rc;
}
