/* A CGI program in C for Atoll's WAGI tests, built with clang and Debian's
 * wasi-libc (see atoll-testkit): reads the method, the query string and
 * stdin, and answers with a CGI header block and a plain-text body. */
#include <stdio.h>
#include <stdlib.h>

int main(void) {
    const char *method = getenv("REQUEST_METHOD");
    const char *query = getenv("QUERY_STRING");
    char body[4096];
    size_t n = fread(body, 1, sizeof body - 1, stdin);
    body[n] = '\0';
    printf("Content-Type: text/plain\r\n");
    printf("X-Lang: c\r\n");
    printf("\r\n");
    printf("hello from C\n");
    printf("method=%s\n", method ? method : "(unset)");
    printf("query=%s\n", query ? query : "(unset)");
    printf("stdin=%s\n", body);
    return 0;
}
