/* openapi.h - the OpenAPI description briefd serves at GET /openapi.json.
 *
 * docs/openapi.yaml is converted to JSON at build time (cmake/openapi_json.py) and embedded
 * into the binary by cmake/embed.cmake (${CMAKE_BINARY_DIR}/openapi_doc.c), so briefd reads
 * no file at run time and serves exactly the description it was built with.
 *
 * Ownership: everything here is static, read-only data that lives as long as the process;
 * nothing is allocated or freed. */
#ifndef BRIEFD_OPENAPI_H
#define BRIEFD_OPENAPI_H

#include <stddef.h>

#include "dash.h" /* struct dash_asset: one embedded file */

/* The description as JSON ("application/json"), never NULL in a complete build. */
const struct dash_asset *openapi_json(void);

/* The generated table (defined in openapi_doc.c): one entry, "/openapi.json". */
extern const struct dash_asset openapi_assets[];
extern const size_t openapi_assets_count;

#endif
