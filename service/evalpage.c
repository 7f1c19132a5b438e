/* evalpage.c - report.json text, the Markdown table, report.md and report.html (evalpage.h). */
#include "evalpage.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonx.h"
#include "sbuf.h"

#define NCOLS 12
#define CELL 64
#define CHART_W 640
#define CHART_H 360
#define CHART_L 78    /* margins: left, right, top, bottom */
#define CHART_R 24
#define CHART_T 34
#define CHART_B 52

static const char *const arm_cols[NCOLS] = {
    "arm", "n", "refine rate", "overall", "overall 95% CI", "coherence", "faithfulness",
    "brevity", "cost per job (USD)", "total cost (USD)", "latency p50 (ms)", "latency p95 (ms)"};

static const char *const palette[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e",
                                      "#8c564b", "#e377c2", "#17becf"};
#define PALETTE_N (sizeof(palette) / sizeof(palette[0]))

/* ---- reading the tree ---- */

static const cJSON *get(const cJSON *o, const char *path)
{
    char buf[128], *save = NULL;

    snprintf(buf, sizeof(buf), "%s", path);
    for (char *t = strtok_r(buf, ".", &save); t && o; t = strtok_r(NULL, ".", &save))
        o = cJSON_GetObjectItemCaseSensitive(o, t);
    return o;
}

/* The number at path, or NAN when it is null or absent. */
static double num(const cJSON *o, const char *path)
{
    const cJSON *v = get(o, path);

    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static const char *str(const cJSON *o, const char *path)
{
    const char *s = cJSON_GetStringValue(get(o, path));

    return s ? s : "";
}

/* ---- figures ---- */

/* How a figure is printed: scores, rates, APGR/CPT; costs, thresholds; counts, ms. */
enum fmt { F3, G6, F0 };

static void fmt(char *out, enum fmt f, double v)
{
    if (!isfinite(v))
        snprintf(out, CELL, "n/a");
    else if (f == F3)
        snprintf(out, CELL, "%.3f", v);
    else if (f == G6)
        snprintf(out, CELL, "%.6g", v);
    else
        snprintf(out, CELL, "%.0f", v);
}

static void fmt_ci(char *out, const cJSON *ci)
{
    double lo = cJSON_GetNumberValue(cJSON_GetArrayItem(ci, 0));
    double hi = cJSON_GetNumberValue(cJSON_GetArrayItem(ci, 1));

    if (cJSON_GetArraySize(ci) == 2 && isfinite(lo) && isfinite(hi))
        snprintf(out, CELL, "[%.3f, %.3f]", lo, hi);
    else
        snprintf(out, CELL, "n/a");
}

/* The arms table's cells of one arm. */
static void arm_cells(const cJSON *arm, char cells[NCOLS][CELL])
{
    snprintf(cells[0], CELL, "%s", arm->string);
    fmt(cells[1], F0, num(arm, "n"));
    fmt(cells[2], F3, num(arm, "refine_rate"));
    fmt(cells[3], F3, num(arm, "quality.overall"));
    fmt_ci(cells[4], get(arm, "quality.overall_ci95"));
    fmt(cells[5], F3, num(arm, "quality.coherence"));
    fmt(cells[6], F3, num(arm, "quality.faithfulness"));
    fmt(cells[7], F3, num(arm, "quality.brevity"));
    fmt(cells[8], G6, num(arm, "cost_usd.per_job"));
    fmt(cells[9], G6, num(arm, "cost_usd.total"));
    fmt(cells[10], F0, num(arm, "latency_ms.total.p50"));
    fmt(cells[11], F0, num(arm, "latency_ms.total.p95"));
}

/* ---- report.json ---- */

static void indent(struct sbuf *b, int depth)
{
    sbuf_addc(b, '\n');
    for (int i = 0; i < depth; i++)
        sbuf_add(b, "  ", 2);
}

/* Re-indent compact JSON text (strings copied as they are). */
static void reindent(struct sbuf *b, const char *s)
{
    int depth = 0, in_str = 0, esc = 0;

    for (; *s; s++) {
        char c = *s;
        if (in_str) {
            sbuf_addc(b, c);
            esc = !esc && c == '\\';
            in_str = esc || c != '"';
            continue;
        }
        if ((c == '{' || c == '[') && (s[1] == '}' || s[1] == ']')) {
            sbuf_addc(b, c);
            sbuf_addc(b, *++s);
        } else if (c == '{' || c == '[') {
            sbuf_addc(b, c);
            indent(b, ++depth);
        } else if (c == '}' || c == ']') {
            indent(b, --depth);
            sbuf_addc(b, c);
        } else if (c == ',') {
            sbuf_addc(b, c);
            indent(b, depth);
        } else {
            sbuf_addc(b, c);
            if (c == ':')
                sbuf_addc(b, ' ');
            in_str = c == '"';
        }
    }
    sbuf_addc(b, '\n');
}

char *evalpage_json(const cJSON *rep)
{
    struct sbuf b = {0};
    char *compact = jsonx_print(rep);

    if (!compact)
        return NULL;
    reindent(&b, compact);
    free(compact);
    return sbuf_take(&b);
}

/* ---- Markdown ---- */

/* s with '|' escaped and line breaks as spaces (a table cell). */
static void md_cell(struct sbuf *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '|')
            sbuf_add(b, "\\|", 2);
        else
            sbuf_addc(b, *s == '\n' || *s == '\r' ? ' ' : *s);
    }
}

static void md_row(struct sbuf *b, char cells[][CELL], int n)
{
    for (int i = 0; i < n; i++) {
        sbuf_add(b, "| ", 2);
        md_cell(b, cells[i]);
        sbuf_addc(b, ' ');
    }
    sbuf_add(b, "|\n", 2);
}

static void md_header(struct sbuf *b, const char *const *cols, int n)
{
    for (int i = 0; i < n; i++)
        sbuf_printf(b, "| %s ", cols[i]);
    sbuf_add(b, "|\n", 2);
    for (int i = 0; i < n; i++)
        sbuf_add(b, i ? "|---:" : "|---", i ? 5 : 4);
    sbuf_add(b, "|\n", 2);
}

static void md_arms(struct sbuf *b, const cJSON *rep)
{
    const cJSON *arm;
    char cells[NCOLS][CELL];

    md_header(b, arm_cols, NCOLS);
    cJSON_ArrayForEach(arm, get(rep, "arms")) {
        arm_cells(arm, cells);
        md_row(b, cells, NCOLS);
    }
}

char *evalpage_table(const cJSON *rep)
{
    struct sbuf b = {0};

    md_arms(&b, rep);
    return sbuf_take(&b);
}

/* "APGR 0.812; CPT(50%) 0.220, CPT(80%) 0.410", or the note. */
static void routing_line(char *out, size_t len, const cJSON *rep)
{
    char a[CELL], c50[CELL], c80[CELL];
    const char *note = cJSON_GetStringValue(get(rep, "quality_gap.note"));

    fmt(a, F3, num(rep, "apgr"));
    fmt(c50, F3, num(rep, "cpt.50"));
    fmt(c80, F3, num(rep, "cpt.80"));
    if (note)
        snprintf(out, len, "APGR and CPT: n/a (%s)", note);
    else
        snprintf(out, len, "APGR %s; CPT(50%%) %s, CPT(80%%) %s (quality gap refine - draft "
                 "%.3f over the %.0f documents with both briefs judged)", a, c50, c80,
                 num(rep, "quality_gap.gap"), num(rep, "quality_gap.n"));
}

static const char *const sweep_cols[6] = {"policy", "threshold", "refine rate",
                                          "cost per job (USD)", "overall", "PGR"};

static void sweep_cells(const cJSON *rep, const cJSON *pt, char cells[6][CELL])
{
    double gap = num(rep, "quality_gap.gap"), q = num(pt, "overall");
    int has_note = cJSON_IsString(get(rep, "quality_gap.note"));

    snprintf(cells[0], CELL, "%s (policies[%.0f])", str(pt, "policy"), num(pt, "index"));
    fmt(cells[1], G6, num(pt, "threshold"));
    fmt(cells[2], F3, num(pt, "refine_rate"));
    fmt(cells[3], G6, num(pt, "cost_per_job"));
    fmt(cells[4], F3, q);
    fmt(cells[5], F3, has_note ? NAN : (q - num(rep, "quality_gap.draft")) / gap);
}

static const char *const doc_cols[7] = {"id", "decision", "draft overall", "refine overall",
                                        "unsupported numbers (draft)",
                                        "unsupported numbers (refine)", "error"};

static void join_numbers(char *out, const cJSON *arr)
{
    const cJSON *it;

    out[0] = '\0';
    cJSON_ArrayForEach(it, arr)
        snprintf(out + strlen(out), CELL - strlen(out), "%s%s", out[0] ? ", " : "",
                 it->valuestring);
}

static void doc_cells(const cJSON *d, char cells[7][CELL])
{
    const cJSON *dec = get(d, "decision");

    snprintf(cells[0], CELL, "%s", str(d, "id"));
    snprintf(cells[1], CELL, "%s", cJSON_IsString(dec) ? dec->valuestring : "n/a");
    fmt(cells[2], F3, num(d, "scores.draft.overall"));
    fmt(cells[3], F3, num(d, "scores.refine.overall"));
    join_numbers(cells[4], get(d, "checks.draft.unsupported_numbers"));
    join_numbers(cells[5], get(d, "checks.refine.unsupported_numbers"));
    snprintf(cells[6], CELL, "%s", str(d, "error"));
}

static void md_body(struct sbuf *b, const cJSON *rep)
{
    const cJSON *it;
    char line[600], cells[NCOLS][CELL];

    routing_line(line, sizeof(line), rep);
    sbuf_printf(b, "\n## Routing\n\n%s\n\n", line);
    if (cJSON_GetArraySize(get(rep, "sweep")) > 0) {
        sbuf_adds(b, "Threshold sweep (each policy's threshold varied alone; quality over "
                     "the documents with both briefs judged):\n\n");
        md_header(b, sweep_cols, 6);
        cJSON_ArrayForEach(it, get(rep, "sweep")) {
            sweep_cells(rep, it, cells);
            md_row(b, cells, 6);
        }
    }
    sbuf_adds(b, "\n## Documents\n\n");
    md_header(b, doc_cols, 7);
    cJSON_ArrayForEach(it, get(rep, "documents")) {
        doc_cells(it, cells);
        md_row(b, cells, 7);
    }
}

char *evalpage_markdown(const cJSON *rep)
{
    struct sbuf b = {0};
    char ev[CELL];

    fmt(ev, G6, num(rep, "evaluation_usd"));
    sbuf_printf(&b, "# briefd eval\n\nDataset `%s`: %.0f documents (%.0f failed). Config "
                "version %s. Models: draft `%s`, refine `%s`, judge `%s`.\n\n",
                str(rep, "dataset.path"), num(rep, "dataset.n"), num(rep, "dataset.failed"),
                str(rep, "config_version"), str(rep, "models.draft"), str(rep, "models.refine"),
                str(rep, "judge"));
    md_arms(&b, rep);
    sbuf_printf(&b, "\nJudge: %.0f calls (%.0f failed, %.0f null judgements), %s USD of "
                "evaluation spend (not in any arm's cost).\n",
                num(rep, "judgements.calls"), num(rep, "judgements.failed"),
                num(rep, "judgements.null"), ev);
    md_body(&b, rep);
    return sbuf_take(&b);
}

/* ---- HTML ---- */

static void esc(struct sbuf *b, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&': sbuf_adds(b, "&amp;"); break;
        case '<': sbuf_adds(b, "&lt;"); break;
        case '>': sbuf_adds(b, "&gt;"); break;
        case '"': sbuf_adds(b, "&quot;"); break;
        case '\'': sbuf_adds(b, "&#39;"); break;
        default: sbuf_addc(b, *s);
        }
    }
}

static void html_table(struct sbuf *b, const char *id, const char *const *cols, int n,
                       char (*rows)[NCOLS][CELL], size_t nrows)
{
    sbuf_printf(b, "<table id=\"%s\">\n<thead><tr>", id);
    for (int i = 0; i < n; i++) {
        sbuf_adds(b, "<th>");
        esc(b, cols[i]);
        sbuf_adds(b, "</th>");
    }
    sbuf_adds(b, "</tr></thead>\n<tbody>\n");
    for (size_t r = 0; r < nrows; r++) {
        sbuf_adds(b, "<tr>");
        for (int i = 0; i < n; i++) {
            sbuf_adds(b, i ? "<td class=\"num\">" : "<td>");
            esc(b, rows[r][i]);
            sbuf_adds(b, "</td>");
        }
        sbuf_adds(b, "</tr>\n");
    }
    sbuf_adds(b, "</tbody>\n</table>\n");
}

/* ---- charts ---- */

struct pt {
    double x, y, lo, hi;        /* lo/hi: an error bar when finite */
    const char *label;
};

struct series {
    const char *name, *color;
    struct pt *p;
    size_t n;
    int line;                   /* join the points (sorted by x) */
};

struct axis {
    double lo, hi, step;
};

static double nice_step(double span)
{
    double raw = span / 5, mag = pow(10, floor(log10(raw))), f = raw / mag;

    return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
}

/* An axis over [lo, hi], widened a little and to whole steps. */
static void make_axis(struct axis *a, double lo, double hi)
{
    if (!isfinite(lo) || !isfinite(hi)) {
        lo = 0;
        hi = 1;
    }
    if (hi - lo < 1e-12) {
        double pad = fabs(lo) > 1e-12 ? fabs(lo) * 0.1 : 1;
        lo -= pad;
        hi += pad;
    }
    a->step = nice_step(hi - lo);
    a->lo = floor(lo / a->step) * a->step;
    a->hi = ceil(hi / a->step) * a->step;
}

static double px(const struct axis *a, double v, double p0, double p1)
{
    return p0 + (v - a->lo) / (a->hi - a->lo) * (p1 - p0);
}

static void extent(const struct series *s, size_t ns, double *xl, double *xh, double *yl,
                   double *yh)
{
    *xl = *yl = INFINITY;
    *xh = *yh = -INFINITY;
    for (size_t i = 0; i < ns; i++)
        for (size_t k = 0; k < s[i].n; k++) {
            const struct pt *p = &s[i].p[k];
            *xl = fmin(*xl, p->x);
            *xh = fmax(*xh, p->x);
            *yl = fmin(*yl, isfinite(p->lo) ? p->lo : p->y);
            *yh = fmax(*yh, isfinite(p->hi) ? p->hi : p->y);
        }
}

static void chart_axes(struct sbuf *b, const struct axis *ax, const struct axis *ay,
                       const char *xlabel, const char *ylabel)
{
    double x0 = CHART_L, x1 = CHART_W - CHART_R, y0 = CHART_H - CHART_B, y1 = CHART_T;

    for (double v = ax->lo; v <= ax->hi + ax->step / 2; v += ax->step) {
        double x = px(ax, v, x0, x1);
        sbuf_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"grid\"/>"
                    "<text x=\"%.1f\" y=\"%.1f\" class=\"tick\" text-anchor=\"middle\">%.4g"
                    "</text>\n", x, y0, x, y1, x, y0 + 16, fabs(v) < ax->step / 1e6 ? 0 : v);
    }
    for (double v = ay->lo; v <= ay->hi + ay->step / 2; v += ay->step) {
        double y = px(ay, v, y0, y1);
        sbuf_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"grid\"/>"
                    "<text x=\"%.1f\" y=\"%.1f\" class=\"tick\" text-anchor=\"end\">%.4g"
                    "</text>\n", x0, y, x1, y, x0 - 6, y + 4, fabs(v) < ay->step / 1e6 ? 0 : v);
    }
    sbuf_printf(b, "<text x=\"%.1f\" y=\"%d\" class=\"axis\" text-anchor=\"middle\">", (x0 + x1) / 2,
                CHART_H - 12);
    esc(b, xlabel);
    sbuf_printf(b, "</text><text x=\"16\" y=\"%.1f\" class=\"axis\" text-anchor=\"middle\" "
                "transform=\"rotate(-90 16 %.1f)\">", (y0 + y1) / 2, (y0 + y1) / 2);
    esc(b, ylabel);
    sbuf_adds(b, "</text>\n");
}

static int cmp_pt(const void *a, const void *b)
{
    double x = ((const struct pt *)a)->x, y = ((const struct pt *)b)->x;

    return x < y ? -1 : x > y;
}

static void chart_series(struct sbuf *b, const struct series *s, const struct axis *ax,
                         const struct axis *ay)
{
    double x0 = CHART_L, x1 = CHART_W - CHART_R, y0 = CHART_H - CHART_B, y1 = CHART_T;

    if (s->line && s->n > 1) {
        qsort(s->p, s->n, sizeof(*s->p), cmp_pt);
        sbuf_printf(b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"",
                    s->color);
        for (size_t k = 0; k < s->n; k++)
            sbuf_printf(b, "%s%.1f,%.1f", k ? " " : "", px(ax, s->p[k].x, x0, x1),
                        px(ay, s->p[k].y, y0, y1));
        sbuf_adds(b, "\"/>\n");
    }
    for (size_t k = 0; k < s->n; k++) {
        const struct pt *p = &s->p[k];
        double x = px(ax, p->x, x0, x1), y = px(ay, p->y, y0, y1);
        if (isfinite(p->lo) && isfinite(p->hi))
            sbuf_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                        "stroke-width=\"2\"/>", x, px(ay, p->lo, y0, y1), x,
                        px(ay, p->hi, y0, y1), s->color);
        sbuf_printf(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"%d\" fill=\"%s\"><title>", x, y,
                    s->line ? 3 : 5, s->color);
        esc(b, p->label ? p->label : s->name);
        sbuf_printf(b, ": %.6g, %.6g</title></circle>", p->x, p->y);
        if (p->label) { /* right of the point, or left of it near the right edge */
            int left = x > CHART_W - CHART_R - 70;
            sbuf_printf(b, "<text x=\"%.1f\" y=\"%.1f\" class=\"label\" text-anchor=\"%s\">",
                        left ? x - 8 : x + 8, y - 6, left ? "end" : "start");
            esc(b, p->label);
            sbuf_adds(b, "</text>");
        }
        sbuf_addc(b, '\n');
    }
}

static void chart_legend(struct sbuf *b, const struct series *s, size_t ns)
{
    double x = CHART_L + 8;

    for (size_t i = 0; i < ns; i++) {
        sbuf_printf(b, "<rect x=\"%.1f\" y=\"10\" width=\"10\" height=\"10\" fill=\"%s\"/>"
                    "<text x=\"%.1f\" y=\"19\" class=\"legend\">", x, s[i].color, x + 14);
        esc(b, s[i].name);
        sbuf_adds(b, "</text>\n");
        x += 24 + 7 * (double)strlen(s[i].name);
    }
}

static void chart(struct sbuf *b, const char *title, const char *xlabel, const char *ylabel,
                  const struct series *s, size_t ns)
{
    double xl, xh, yl, yh;
    struct axis ax, ay;

    extent(s, ns, &xl, &xh, &yl, &yh);
    make_axis(&ax, xl, xh);
    make_axis(&ay, yl, yh);
    sbuf_adds(b, "<figure>\n");
    sbuf_printf(b, "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 %d %d\" "
                "width=\"%d\" height=\"%d\" role=\"img\" aria-label=\"", CHART_W, CHART_H,
                CHART_W, CHART_H);
    esc(b, title);
    sbuf_adds(b, "\">\n");
    chart_axes(b, &ax, &ay, xlabel, ylabel);
    for (size_t i = 0; i < ns; i++)
        chart_series(b, &s[i], &ax, &ay);
    chart_legend(b, s, ns);
    sbuf_adds(b, "</svg>\n<figcaption>");
    esc(b, title);
    sbuf_adds(b, "</figcaption>\n</figure>\n");
}

/* ---- the page ---- */

static const char page_css[] =
    "body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;"
    "max-width:1100px;padding:0 1rem;color:#222}"
    "table{border-collapse:collapse;margin:1rem 0;font-size:.9rem}"
    "th,td{border:1px solid #ccc;padding:.3rem .5rem;text-align:left;vertical-align:top}"
    "td.num{text-align:right;font-variant-numeric:tabular-nums}th{background:#f3f3f3}"
    "figure{display:inline-block;margin:1rem 1rem 1rem 0}figcaption{font-size:.85rem;color:#555}"
    "svg{border:1px solid #ddd;background:#fff}.grid{stroke:#eee}"
    ".tick{font-size:11px;fill:#555}.axis{font-size:12px;fill:#222}"
    ".label{font-size:12px;fill:#222}.legend{font-size:12px;fill:#222}"
    ".note{color:#8a4b00}";

/* One point per arm: x = the figure at xpath, y = overall, with its interval. */
static size_t arm_points(const cJSON *rep, const char *xpath, struct pt *p, int bars)
{
    const cJSON *arm;
    size_t n = 0;

    cJSON_ArrayForEach(arm, get(rep, "arms")) {
        const cJSON *ci = get(arm, "quality.overall_ci95");
        p[n] = (struct pt){num(arm, xpath), num(arm, "quality.overall"), NAN, NAN, arm->string};
        if (bars && cJSON_GetArraySize(ci) == 2) {
            p[n].lo = cJSON_GetNumberValue(cJSON_GetArrayItem(ci, 0));
            p[n].hi = cJSON_GetNumberValue(cJSON_GetArrayItem(ci, 1));
        }
        if (isfinite(p[n].x) && isfinite(p[n].y))
            n++;
    }
    return n;
}

static void arms_chart(struct sbuf *b, const cJSON *rep)
{
    struct pt p[3];
    struct series s = {"arms (95% interval of the mean overall)", palette[0], p, 0, 0};

    s.n = arm_points(rep, "cost_usd.per_job", p, 1);
    if (s.n)
        chart(b, "Quality against cost per job, per arm", "cost per job (USD)",
              "mean overall quality (1-5)", &s, 1);
}

/* The arms as points at (refine rate, the figure at ypath). */
static size_t arm_rate_points(const cJSON *rep, const char *ypath, struct pt *p)
{
    size_t n = arm_points(rep, ypath, p, 0);

    for (size_t k = 0; k < n; k++) {
        p[k].y = p[k].x;
        p[k].x = num(get(get(rep, "arms"), p[k].label), "refine_rate");
    }
    return n;
}

#define MAX_SERIES 16

/* The sweep as one line per swept policy (its points are consecutive in the sweep), plus
 * the arms. ycost: y is the cost per job, else the mean overall quality. */
static void sweep_chart(struct sbuf *b, const cJSON *rep, int ycost)
{
    const cJSON *sw = get(rep, "sweep"), *it;
    size_t npts = (size_t)cJSON_GetArraySize(sw), used = 0, ns = 0;
    struct pt *all = calloc(npts + 3, sizeof(*all));
    struct series s[MAX_SERIES + 1];
    char names[MAX_SERIES][64];
    int last = -1;

    if (!all || npts == 0) {
        free(all);
        return;
    }
    cJSON_ArrayForEach(it, sw) {
        int idx = (int)num(it, "index");
        struct pt p = {num(it, "refine_rate"), num(it, ycost ? "cost_per_job" : "overall"),
                       NAN, NAN, NULL};
        if (idx != last) {
            if (ns == MAX_SERIES)
                break;
            snprintf(names[ns], sizeof(names[ns]), "%s (policies[%d])", str(it, "policy"), idx);
            s[ns] = (struct series){names[ns], palette[(ns + 1) % PALETTE_N], all + used, 0, 1};
            ns++;
            last = idx;
        }
        if (isfinite(p.x) && isfinite(p.y)) {
            all[used++] = p;
            s[ns - 1].n++;
        }
    }
    s[ns] = (struct series){"arms", "#444", all + used, 0, 0};
    s[ns].n = arm_rate_points(rep, ycost ? "cost_usd.per_job" : "quality.overall", all + used);
    ns++;
    chart(b, ycost ? "Threshold sweep: refine rate against cost per job"
                   : "Threshold sweep: refine rate against mean overall quality",
          "refine rate", ycost ? "cost per job (USD)" : "mean overall quality (1-5)", s, ns);
    free(all);
}

static void html_arms(struct sbuf *b, const cJSON *rep)
{
    char (*rows)[NCOLS][CELL] = calloc(3, sizeof(*rows));
    const cJSON *arm;
    size_t n = 0;

    if (!rows)
        return;
    cJSON_ArrayForEach(arm, get(rep, "arms")) {
        if (n < 3)
            arm_cells(arm, rows[n++]);
    }
    html_table(b, "arms", arm_cols, NCOLS, rows, n);
    free(rows);
}

static void html_rows(struct sbuf *b, const cJSON *rep, const char *what)
{
    int sweep = strcmp(what, "sweep") == 0;
    const cJSON *arr = get(rep, what), *it;
    size_t n = (size_t)cJSON_GetArraySize(arr), k = 0;
    char (*rows)[NCOLS][CELL] = calloc(n ? n : 1, sizeof(*rows));

    if (!rows)
        return;
    cJSON_ArrayForEach(it, arr) {
        if (sweep)
            sweep_cells(rep, it, rows[k++]);
        else
            doc_cells(it, rows[k++]);
    }
    if (n)
        html_table(b, what, sweep ? sweep_cols : doc_cols, sweep ? 6 : 7, rows, n);
    free(rows);
}

static void html_head(struct sbuf *b, const cJSON *rep)
{
    char ev[CELL];

    fmt(ev, G6, num(rep, "evaluation_usd"));
    sbuf_adds(b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                 "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
                 "<title>briefd eval: ");
    esc(b, str(rep, "dataset.path"));
    sbuf_printf(b, "</title>\n<style>%s</style>\n</head>\n<body>\n<h1>briefd eval</h1>\n<p>"
                "Dataset <code>", page_css);
    esc(b, str(rep, "dataset.path"));
    sbuf_printf(b, "</code>: %.0f documents (%.0f failed). Config version <code>%s</code>. "
                "Models: draft <code>", num(rep, "dataset.n"), num(rep, "dataset.failed"),
                str(rep, "config_version"));
    esc(b, str(rep, "models.draft"));
    sbuf_adds(b, "</code>, refine <code>");
    esc(b, str(rep, "models.refine"));
    sbuf_adds(b, "</code>, judge <code>");
    esc(b, str(rep, "judge"));
    sbuf_printf(b, "</code>. Judge: %.0f calls (%.0f failed, %.0f null judgements), %s USD of "
                "evaluation spend (not in any arm's cost).</p>\n",
                num(rep, "judgements.calls"), num(rep, "judgements.failed"),
                num(rep, "judgements.null"), ev);
}

char *evalpage_html(const cJSON *rep)
{
    struct sbuf b = {0};
    char line[600];

    html_head(&b, rep);
    sbuf_adds(&b, "<h2>Arms</h2>\n");
    html_arms(&b, rep);
    arms_chart(&b, rep);
    routing_line(line, sizeof(line), rep);
    sbuf_printf(&b, "<h2>Routing</h2>\n<p id=\"routing\"%s>",
                cJSON_IsString(get(rep, "quality_gap.note")) ? " class=\"note\"" : "");
    esc(&b, line);
    sbuf_adds(&b, "</p>\n");
    sweep_chart(&b, rep, 0);
    sweep_chart(&b, rep, 1);
    html_rows(&b, rep, "sweep");
    sbuf_adds(&b, "<h2>Documents</h2>\n");
    html_rows(&b, rep, "documents");
    sbuf_adds(&b, "</body>\n</html>\n");
    return sbuf_take(&b);
}
