/* path: the folders the program's files go in, made before the files are. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "app.h"

void app_make_parent(const char *path, mode_t mode)
{
    char dir[CONFIG_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == NULL || slash == dir)
        return;
    *slash = '\0';
    for (char *p = dir + 1; *p != '\0'; p++)
        if (*p == '/') {
            *p = '\0';
            mkdir(dir, 0755);
            *p = '/';
        }
    mkdir(dir, mode);
}
