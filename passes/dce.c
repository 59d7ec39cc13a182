/* dce.c: dead-node elimination. A node is live if a graph output depends on
 * it; everything else (unused branches, weights nothing reads) goes. Graph
 * inputs stay even when unused: they are part of the model's interface. */
#include "passes.h"

bool pass_dce(Graph *g, const PassOptions *opt, Diag *d)
{
    (void)opt;
    (void)d;
    pass_remove_unused(g, NULL);
    return true;
}
