/* session.h: a network built one statement at a time, as typed at a prompt.
 * A session holds block definitions and at most one network; text fed to it
 * extends the network, and a deep copy of the network so far can be taken at
 * any point to compile or run. */
#ifndef CNNC_SESSION_H
#define CNNC_SESSION_H

#include "frontend.h"

typedef struct FeSession FeSession;
typedef enum { FE_FEED_OK, FE_FEED_ERROR, FE_FEED_MORE } FeFeed;
typedef void (*FeEcho)(void *ctx, const char *line);

/* `opt` (may be NULL) applies to every network the session starts: --batch
 * replaces the leading symbolic dim of inputs of loaded files and headers alike.
 * Every Diag argument below may be NULL (errors are then counted nowhere). */
FeSession *fe_session_new(const FeOptions *opt);
void fe_session_free(FeSession *s);
/* Loads a model file (its blocks and network, whose statements run; its return sets the
 * outputs), replacing what the session held. A file of blocks only leaves the session
 * with those blocks and no network. false after reporting errors (session unchanged). */
bool fe_session_load(FeSession *s, const char *path, Diag *d);
/* Starts an empty network: `header` is what a network header holds, e.g.
 * "net(image: f32[N=1, 1, 28, 28])" (a leading `network` is allowed). Blocks
 * defined so far stay; the previous network, if any, is dropped. false after
 * reporting errors (session unchanged). */
bool fe_session_begin(FeSession *s, const char *header, const char *srcname, Diag *d);
/* Feeds text holding statements of the network body (assignments, expression statements,
 * if/for, `return`) and/or `block` definitions, as typed at a prompt. Locations use
 * `srcname` and line numbers starting at `line`. FE_FEED_MORE: the text is incomplete
 * (an open brace/bracket/parenthesis, a trailing operator or comma, a missing `{`): call
 * again with the next line appended (same `line`). On success each assigned variable (or
 * the value of a bare expression) is described through `echo` (may be NULL), e.g.
 * "x: f32[1, 64, 26, 26]", "3", "block basic(x, planes, stride=1)",
 * "output fc2: f32[1, 10]". The text is all or nothing: on error (reported to `d`) the
 * session is as before the call (nodes, variables, names, blocks, outputs) and nothing
 * is echoed. `return a, b` sets the outputs without ending the session; an output named
 * by a layer (`return dense(x, 10) as fc2`) also becomes a variable of that name when
 * none exists. A block defined again replaces the earlier definition for later calls. */
FeFeed fe_session_feed(FeSession *s, const char *text, const char *srcname, int32_t line,
                       Diag *d, FeEcho echo, void *ctx);
bool fe_session_has_network(const FeSession *s);
/* Binds PARAM data from a .safetensors file by name (tensors the network lacks are an
 * error as in fe_bind_safetensors; parameters the file lacks keep what they had).
 * All or nothing. */
bool fe_session_bind_weights(FeSession *s, const char *path, Diag *d);
/* A deep copy (ir_graph_clone) of the network so far, outputs = the last `return`, else the
 * last tensor assigned (or shown by a bare expression). Unbound parameters get
 * fe_random_weights-style deterministic data from `seed`; bound ones keep theirs. The copy
 * holds every node built so far (also those no output needs: pass_dce drops them). NULL
 * (with an error) when there is no network or no tensor yet. The caller frees it. */
Graph *fe_session_graph(FeSession *s, uint64_t seed, Diag *d);
/* Names for completion: the variables in scope, the blocks, and the node names (layers,
 * parameters, inputs), each once. Writes at most `max` and returns how many it wrote;
 * with names == NULL returns how many there are. The strings stay valid until the next
 * call that changes the session. */
int32_t fe_session_names(const FeSession *s, const char **names, int32_t max);
/* The node holding the value of variable `name` in scope, else the node named `name`, as
 * numbered in the graph fe_session_graph returns; -1 if neither (or not a tensor). */
int32_t fe_session_lookup(const FeSession *s, const char *name);

#endif
