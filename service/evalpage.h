/* evalpage.h - the readable forms of an evaluation report, all rendered from the report.json
 * tree (evalrep.h), so that they cannot disagree: report.json's text (indented, numbers
 * exact), the Markdown arms table (what `briefd eval` prints), report.md and report.html (a
 * standalone page: inline CSS and SVG charts, no script, nothing fetched).
 *
 * Figures are printed the same way everywhere: quality scores, refine rates and APGR/CPT
 * with 3 decimals ("%.3f"), costs with 6 significant digits ("%.6g"), latencies in whole
 * milliseconds ("%.0f"), sweep thresholds with "%.6g"; a null figure is "n/a". The charts:
 * quality against cost per job for each arm (with its 95% interval); and, from the sweep,
 * refine rate against mean overall quality and against cost per job, one line per swept
 * policy, with the arms as reference points.
 *
 * Ownership: every function returns a malloc'd NUL-terminated string (caller frees), NULL
 * on OOM; the tree is only read. */
#ifndef BRIEFD_EVALPAGE_H
#define BRIEFD_EVALPAGE_H

struct cJSON;

/* report.json: the tree as indented JSON with exact numbers, and a final newline. */
char *evalpage_json(const struct cJSON *rep);
/* The arms table in Markdown (header, separator, one row per arm). */
char *evalpage_table(const struct cJSON *rep);
/* report.md. */
char *evalpage_markdown(const struct cJSON *rep);
/* report.html. */
char *evalpage_html(const struct cJSON *rep);

#endif
