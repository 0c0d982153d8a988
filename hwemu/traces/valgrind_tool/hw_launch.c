/* Start-up shim for the hwtrace tool.

   Valgrind's launcher finds a tool through $VALGRIND_LIB, which 'hwemu trace record' points at
   its build directory, and starts <dir>/hwtrace-amd64-linux: this program. It gives the real
   tool (hwtrace-amd64-linux.bin, next to it) the environment the launcher built, minus the
   VALGRIND_LIB entry hwemu added (or with the user's own VALGRIND_LIB value put back, which
   hwemu passes in HWEMU_SAVED_VALGRIND_LIB). The order of the other variables is kept. The
   traced program then starts with exactly the environment it has under a stock tool such as
   cachegrind; that matters because its start-up code walks the environment, so an extra or
   reordered variable changes the instructions and addresses it executes. The real tool finds
   Valgrind's preload libraries in Valgrind's own directory. */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

int main(int argc, char **argv)
{
    static const char saved_key[] = "HWEMU_SAVED_VALGRIND_LIB=";
    static const char lib_key[] = "VALGRIND_LIB=";
    char *saved = NULL;
    size_t n = 0, i, j;
    char **env;
    char self[4096], real[4200];
    ssize_t len;

    (void)argc;
    while (environ[n])
        n++;
    for (i = 0; i < n; i++)
        if (strncmp(environ[i], saved_key, sizeof saved_key - 1) == 0)
            saved = environ[i] + sizeof saved_key - 1;
    env = calloc(n + 1, sizeof *env);
    if (!env)
        return 127;
    for (i = 0, j = 0; i < n; i++) {
        if (strncmp(environ[i], saved_key, sizeof saved_key - 1) == 0)
            continue;
        if (strncmp(environ[i], lib_key, sizeof lib_key - 1) == 0) {
            if (saved) {
                char *v = malloc(sizeof lib_key + strlen(saved));
                if (!v)
                    return 127;
                strcpy(v, lib_key);
                strcat(v, saved);
                env[j++] = v;
            }
            continue;
        }
        env[j++] = environ[i];
    }
    env[j] = NULL;

    len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len < 0) {
        perror("hwtrace launcher: /proc/self/exe");
        return 127;
    }
    self[len] = '\0';
    snprintf(real, sizeof real, "%s.bin", self);
    execve(real, argv, env);
    fprintf(stderr, "hwtrace launcher: cannot run %s: %s\n", real, strerror(errno));
    return 127;
}
