/* The first failure of a header reader, written into its caller's buffer:
 * shared by av1_headers.c and h264_headers.c, which cffi compiles into one
 * translation unit (hence the guard). */
#ifndef DV_READER_FAILURE_H
#define DV_READER_FAILURE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

static void dv_first_failure(int *failed, char *err, size_t errlen, const char *fmt, va_list ap)
{
    if (*failed)
        return;  /* the first failure is the one to report */
    *failed = 1;
    if (errlen)
        vsnprintf(err, errlen, fmt, ap);
}

#endif
