#!/usr/bin/env bash
# check.sh - check a Grafana dashboard against what briefd's /metrics really emits.
#
#   deploy/grafana/check.sh METRICS.txt [DASHBOARD.json]
#
# METRICS.txt is a capture of GET /metrics (curl -s http://127.0.0.1:8080/metrics > m.txt);
# DASHBOARD.json defaults to briefd-dashboard.json next to this script.
# Checks that:
#   - the dashboard is valid JSON;
#   - every briefd_* name it mentions (queries, descriptions, variables) is a metric in the
#     capture: a sample name, or a family declared by a "# TYPE" line (histogram base names);
#   - in queries, every label a briefd_* selector matches on (except the target labels job
#     and instance, which Prometheus adds, and deployment, which the scrape configuration
#     sets: docs/METRICS.md) is a label of that metric, and every value it compares with = is
#     a value seen in the capture; every label in "by (...)" / "without (...)" exists on some
#     briefd metric the query uses (le: on a histogram bucket). A metric the capture declares
#     but has no samples of (a counter nothing has counted yet) is noted, its labels unchecked.
# Exit 0 when all hold, 1 otherwise (each problem is printed). Needs python3.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    echo "usage: $0 METRICS.txt [DASHBOARD.json]" >&2
    exit 2
fi
metrics=$1
dash=${2:-$here/briefd-dashboard.json}

exec python3 - "$metrics" "$dash" <<'PY'
import json, re, sys

metrics_path, dash_path = sys.argv[1], sys.argv[2]
problems = []

# --- the capture: families, sample names, label names and values per sample name ---
families = {}          # family -> type
samples = {}           # sample name -> {label: set(values)}
sample_re = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+\S+')
label_re = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
with open(metrics_path, encoding="utf-8") as f:
    for line in f:
        line = line.rstrip("\n")
        if line.startswith("# TYPE "):
            parts = line.split()
            if len(parts) >= 4:
                families[parts[2]] = parts[3]
            continue
        if not line or line.startswith("#"):
            continue
        m = sample_re.match(line)
        if not m:
            problems.append(f"{metrics_path}: unparsable line: {line[:80]}")
            continue
        labels = samples.setdefault(m.group(1), {})
        for k, v in label_re.findall(m.group(3) or ""):
            labels.setdefault(k, set()).add(v)
if not families and not samples:
    print(f"{metrics_path}: no metrics found (is it a /metrics capture?)", file=sys.stderr)
    sys.exit(1)

def known(name):
    return name in samples or name in families

# --- the dashboard ---
try:
    with open(dash_path, encoding="utf-8") as f:
        dash = json.load(f)
except (OSError, ValueError) as e:
    print(f"{dash_path}: not valid JSON: {e}", file=sys.stderr)
    sys.exit(1)

strings = []            # every string in the dashboard
exprs = []              # (where, expr) of every query
def walk(node, path):
    if isinstance(node, dict):
        for k, v in node.items():
            p = f"{path}.{k}"
            if k in ("expr", "query", "definition") and isinstance(v, str):
                exprs.append((p, v))
            walk(v, p)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            walk(v, f"{path}[{i}]")
    elif isinstance(node, str):
        strings.append((path, node))
walk(dash, "$")

name_re = re.compile(r'\bbriefd_[a-zA-Z0-9_:]*')
used = {}
for where, s in strings:
    for n in name_re.findall(s):
        used.setdefault(n, where)
for n, where in sorted(used.items()):
    if not known(n):
        problems.append(f"{n}: not in {metrics_path} (first used at {where})")

# --- selectors and grouping labels in queries ---
IMPLICIT = {"job", "instance", "deployment"}   # target labels, not briefd's
sel_re = re.compile(r'\b(briefd_[a-zA-Z0-9_:]*)\s*\{([^}]*)\}')
matcher_re = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')
group_re = re.compile(r'\b(?:by|without)\s*\(([^)]*)\)')
for where, e in exprs:
    names_here = set(name_re.findall(e))
    for metric, body in sel_re.findall(e):
        if metric not in samples:
            if known(metric):
                print(f"note: {metric} has no samples in the capture; its labels are not checked")
            continue
        have = samples[metric]
        for label, op, value in matcher_re.findall(body):
            if label in IMPLICIT:
                continue
            if label not in have:
                problems.append(f"{where}: {metric} has no label '{label}'")
            elif op == "=" and "$" not in value and value not in have[label]:
                problems.append(f"{where}: {metric}{{{label}=\"{value}\"}} never seen "
                                f"(values: {', '.join(sorted(have[label]))})")
    sampled = {n for n in names_here if n in samples}
    for group in group_re.findall(e):
        for label in (x.strip() for x in group.split(",")):
            if not label or label in IMPLICIT:
                continue
            if not sampled:
                continue   # as for selectors: no samples, no labels to check against
            if not any(label in samples.get(n, {}) for n in names_here):
                problems.append(f"{where}: grouping label '{label}' is on none of "
                                f"{', '.join(sorted(names_here))}")

for p in problems:
    print(p)
if problems:
    print(f"FAIL: {len(problems)} problem(s)")
    sys.exit(1)
print(f"OK: {dash_path}: {len(used)} briefd metric names and {len(exprs)} queries "
      f"match {metrics_path}")
PY
