/* SPDX-License-Identifier: MIT */
#include <hbone/version.h>

const char *hbone_version_string(void)
{
    return HBONE_VERSION;
}

uint32_t hbone_version_number(void)
{
    return HBONE_VERSION_NUM;
}
