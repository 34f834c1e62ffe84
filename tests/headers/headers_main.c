/* SPDX-License-Identifier: MIT */
/* The header units compile on their own or the build fails. Running the
 * test also checks that the generated version.h matches the library. */
#include <stdio.h>
#include <string.h>

#include <hbone/version.h>

int main(void)
{
    if (hbone_version_number() != HBONE_VERSION_NUM ||
        strcmp(hbone_version_string(), HBONE_VERSION) != 0) {
        fprintf(stderr, "header says %s, library says %s\n", HBONE_VERSION, hbone_version_string());
        return 1;
    }
    return 0;
}
