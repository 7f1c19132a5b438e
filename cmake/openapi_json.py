#!/usr/bin/env python3
"""openapi_json.py - docs/openapi.yaml as JSON, for GET /openapi.json (run by the build).

    python3 cmake/openapi_json.py IN.yaml OUT.json

Reads YAML the way YAML 1.2's core schema (and so `redocly lint`'s parser) reads it: only
true/false are booleans (`yes`, `on` ... are strings) and dates stay strings. Refuses what
JSON cannot hold, naming the place: a repeated key, a key that is not a string (quote
status codes: '200'), a value that is not a string, number, boolean, null, mapping or
sequence, a number that is not finite. Writes compact UTF-8 JSON, members in file order, so
the same YAML always gives the same bytes. Needs python3-yaml (deploy/setup.sh installs it).
"""
import json
import math
import os
import re
import sys

import yaml


class Mistake(Exception):
    pass


class Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 core booleans, no timestamps, and repeated keys refused."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise Mistake("line %d: repeated key %r" % (key_node.start_mark.line + 1, key))
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers
            if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
Loader.add_implicit_resolver("tag:yaml.org,2002:bool",
                             re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                             list("tTfF"))


def check(value, where):
    """Raise Mistake unless value is plain JSON."""
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise Mistake("%s: key %r is not a string (quote it)" % (where or "/", k))
            check(v, where + "/" + k.replace("~", "~0").replace("/", "~1"))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            check(v, "%s/%d" % (where, i))
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise Mistake("%s: %r is not a JSON number" % (where, value))
    elif value is not None and not isinstance(value, (str, bool, int)):
        raise Mistake("%s: a %s is not JSON (quote it)" % (where, type(value).__name__))


def convert(text):
    """The JSON text of the YAML text (raises Mistake or yaml.YAMLError)."""
    doc = yaml.load(text, Loader=Loader)  # noqa: S506 - a SafeLoader subclass
    check(doc, "")
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"), allow_nan=False) + "\n"


def main(argv):
    if len(argv) != 3:
        sys.stderr.write("usage: openapi_json.py IN.yaml OUT.json\n")
        return 2
    src, dst = argv[1], argv[2]
    try:
        with open(src, encoding="utf-8") as f:
            out = convert(f.read())
    except (Mistake, yaml.YAMLError, OSError, UnicodeDecodeError) as e:
        sys.stderr.write("%s: %s\n" % (src, e))
        return 1
    tmp = dst + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(out)
    os.replace(tmp, dst)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
