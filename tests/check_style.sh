#!/usr/bin/env bash
# check_style.sh - let machines keep the style (docs/STYLE.md): every function of briefd's C
# stays under a complexity and length budget, measured with pmccabe (Debian package).
# Budget: modified cyclomatic complexity <= 25, <= 80 lines.
set -euo pipefail
cd "$(dirname "$0")/.."
MAX_CC=25
MAX_LINES=80
if ! command -v pmccabe >/dev/null; then
    echo "check_style: pmccabe is missing (deploy/setup.sh installs it)" >&2
    exit 1
fi
over=$(pmccabe base/*.c service/*.c service/http/*.c clients/*.c router/*.c policies/*.c bench/sim/*.c 2>/dev/null |
       awk -v cc="$MAX_CC" -v ln="$MAX_LINES" '$1 > cc || $5 > ln')
n=$(pmccabe base/*.c service/*.c service/http/*.c clients/*.c router/*.c policies/*.c bench/sim/*.c 2>/dev/null | wc -l)
if [ -n "$over" ]; then
    echo "check_style: functions over budget (complexity > $MAX_CC or lines > $MAX_LINES):"
    echo "$over"
    echo "check_style: 0 passed, 1 failed"
    exit 1
fi
echo "check_style: $n functions within budget (complexity <= $MAX_CC, lines <= $MAX_LINES)"
