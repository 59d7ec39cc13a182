/* fuzz_session.c: a network typed a line at a time (frontend/session.c), as
 * at the REPL's prompt. Text that fails must leave the session as it was (its
 * graph prints the same), and the network built must survive the IR round
 * trip. The session's graph gets random weights, so they are kept small. */
#include "frontend.h"
#include "fuzz.h"
#include "session.h"

#include <stdlib.h>
#include <string.h>

static char *session_text(FeSession *s)
{
    Graph *g = fe_session_graph(s, 1, NULL);
    char *text = g ? fuzz_print(g) : NULL;
    ir_graph_free(g);
    return text;
}

/* The session's graph as text, kept while no statement succeeds. */
typedef struct State {
    FeSession *s;
    char *text;
    bool known;
} State;

static const char *state_text(State *st)
{
    if (!st->known)
        st->text = session_text(st->s);
    st->known = true;
    return st->text;
}

/* Feeds `text` (lines gathered until they are complete); false while more is needed. */
static bool feed(State *st, const char *text, int32_t line)
{
    const char *before = state_text(st);
    FeFeed f = fe_session_feed(st->s, text, "fuzz", line, NULL, NULL, NULL);
    if (f == FE_FEED_ERROR) {
        char *after = session_text(st->s);
        if ((before || after) && (!before || !after || strcmp(before, after) != 0)) {
            fprintf(stderr, "a failed statement changed the session:\n%s\n"
                            "before:\n%s\nafter:\n%s",
                    text, before ? before : "(none)", after ? after : "(none)");
            abort();
        }
        free(after);
    } else if (f == FE_FEED_OK) {
        free(st->text);
        st->text = NULL;
        st->known = false;
    }
    return f != FE_FEED_MORE;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_cstring(data, size);
    FeOptions opt = {.limits = {.max_steps = 100000, .max_nodes = 2000,
                                .max_weights = 1 << 16}};
    FeSession *s = fe_session_new(&opt);
    if (!fe_session_begin(s, "fuzz(x: f32[N=1, 3, 8, 8])", "fuzz", NULL))
        abort();
    State st = {.s = s};
    char *pending = ir_xmalloc(size + 2), *line = text;
    size_t len = 0;
    int32_t first = 1;
    for (int32_t no = 1; line; no++) {
        char *end = strchr(line, '\n');
        size_t n = end ? (size_t)(end - line) : strlen(line);
        if (len == 0)
            first = no;
        else
            pending[len++] = '\n';
        memcpy(pending + len, line, n);
        len += n;
        pending[len] = '\0';
        if (feed(&st, pending, first))
            len = 0;
        line = end ? end + 1 : NULL;
    }
    Graph *g = fe_session_graph(s, 1, NULL);
    if (g)
        fuzz_round_trip(g);
    ir_graph_free(g);
    free(st.text);
    fe_session_free(s);
    free(pending);
    free(text);
    return 0;
}
