/* version: what `tessera version` prints: the program's own version and the
 * versions of every library linked in, read from the libraries at run time
 * where they can tell (so a static build shows what it really carries). */
#ifndef APP_VERSION_H
#define APP_VERSION_H

#include <stdio.h>

void version_print(FILE *out);

#endif
