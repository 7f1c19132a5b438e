#!/usr/bin/env python3
"""run.py - briefd's mutation runner (tests/mutants/README.md).

Each mutant of mutants.json (a file, an exact pattern found there once, its replacement, the
tests expected to catch it, a line saying why it matters) is applied in turn to one scratch
copy of the tree, which is rebuilt (plain cmake, no ccache, -j2) and run against the mutant's
tests only, in the order listed, until one fails. A mutant is "caught" when a test fails (or
runs past the time limit), "survived" when every test passes. The scratch copy is reverted
after each mutant. Results go to results.json (kept between runs, so a subset can be re-run)
and results.md (the table).

    tests/mutants/run.py                   # every mutant, after a baseline run of their tests
    tests/mutants/run.py --only a,b        # some of them
    tests/mutants/run.py --list            # the mutants and their tests

Only the Python standard library; no third-party mutation tool.
"""
import argparse
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
MUTANTS = os.path.join(HERE, "mutants.json")
RESULTS_JSON = os.path.join(HERE, "results.json")
RESULTS_MD = os.path.join(HERE, "results.md")
UNIT_DIR = os.path.join(ROOT, "tests")
IT_DIR = os.path.join(ROOT, "tests", "integration")
BUILDS = {"normal": ("build", ["-DCMAKE_BUILD_TYPE=Debug"]),
          "asan": ("build-asan", ["-DBRIEFD_SANITIZE=ON"])}
TEST_TIMEOUT_S = 900        # one test id; a mutant that hangs a test counts as caught
BUILD_TIMEOUT_S = 1800


def log(msg):
    print("[mutants %s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


# --- the mutants -------------------------------------------------------------------------

def load_mutants():
    with open(MUTANTS) as f:
        doc = json.load(f)
    seen = set()
    for m in doc["mutants"]:
        for k in ("id", "file", "pattern", "replacement", "tests", "why"):
            if k not in m:
                raise SystemExit("mutant %s: no %r" % (m.get("id"), k))
        if m["id"] in seen:
            raise SystemExit("mutant id %s twice" % m["id"])
        seen.add(m["id"])
        m.setdefault("build", "normal")
        if m["build"] not in BUILDS:
            raise SystemExit("mutant %s: build must be one of %s" % (m["id"], list(BUILDS)))
        if not m["tests"]:
            raise SystemExit("mutant %s: no tests" % m["id"])
        for t in m["tests"]:
            test_kind(t)      # refuses an unknown test
    return doc["mutants"]


MODULE_DIRS = ("base", "clients", "policies", "router", "service", "service/http")


def uncovered_modules(mutants):
    """The .c files of the module folders that no mutant touches."""
    have = {m["file"] for m in mutants}
    out = []
    for d in MODULE_DIRS:
        for name in sorted(os.listdir(os.path.join(ROOT, d))):
            rel = d + "/" + name
            if name.endswith(".c") and rel not in have:
                out.append(rel)
    return out


def test_kind(t):
    """'unit' (a tests/test_*.c program or check_style) or 'it' (a unittest id)."""
    if t == "check_style" or (t.startswith("test_") and "." not in t and
                              os.path.exists(os.path.join(UNIT_DIR, t + ".c"))):
        return "unit"
    if os.path.exists(os.path.join(IT_DIR, t.split(".")[0] + ".py")):
        return "it"
    raise SystemExit("unknown test %r (a tests/test_*.c name, check_style, or a unittest id "
                     "of tests/integration)" % t)


def targets_of(tests):
    out = []
    for t in tests:
        if test_kind(t) == "it":
            out += ["briefd", "briefd-modelsim"]
        elif t != "check_style":
            out.append(t)
    return sorted(set(out))


# --- the scratch tree ----------------------------------------------------------------------

class Scratch:
    def __init__(self, path):
        self.path = path
        self.src = os.path.join(path, "src")

    def build_dir(self, kind):
        return os.path.join(self.path, BUILDS[kind][0])

    def copy(self):
        """The tracked files of the working tree as they are now (edits included). A file
        already in the copy with the same content is left alone; a changed one is written
        afresh (a new mtime, so the build recompiles it); files gone from the tree go."""
        files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                                "--exclude-standard"], cwd=ROOT, check=True,
                               capture_output=True).stdout.split(b"\0")
        keep, changed = set(), 0
        for rel in files:
            rel = rel.decode()
            if not rel or rel == "node_modules" or rel.startswith("node_modules/"):
                continue
            src = os.path.join(ROOT, rel)
            if not os.path.isfile(src) or os.path.islink(src):
                continue
            keep.add(rel)
            dst = os.path.join(self.src, rel)
            with open(src, "rb") as f:
                data = f.read()
            if os.path.isfile(dst):
                with open(dst, "rb") as f:
                    if f.read() == data:
                        continue
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            with open(dst, "wb") as f:
                f.write(data)
            shutil.copymode(src, dst)
            changed += 1
        for dirpath, dirnames, filenames in os.walk(self.src):
            dirnames[:] = [d for d in dirnames if d != "node_modules"]
            for name in filenames:
                rel = os.path.relpath(os.path.join(dirpath, name), self.src)
                if rel not in keep:
                    os.remove(os.path.join(dirpath, name))
        link = os.path.join(self.src, "node_modules")
        nm = os.path.realpath(os.path.join(ROOT, "node_modules"))
        if os.path.isdir(nm) and not os.path.islink(link):   # browser and SDK tests (read only)
            os.symlink(nm, link)
        log("scratch copy: %d files in %s (%d written)" % (len(keep), self.src, changed))

    def configure(self, kind):
        """Configure (again: the copy's CMakeLists may have changed; quick once cached)."""
        bdir = self.build_dir(kind)
        args = ["cmake", "-S", self.src, "-B", bdir, "-DCMAKE_C_COMPILER_LAUNCHER=",
                "-DBRIEFD_FUZZ=OFF"] + BUILDS[kind][1]
        r = subprocess.run(args, capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit("cmake configure failed:\n%s%s" % (r.stdout, r.stderr))

    def build(self, kind, targets):
        """0 on success, else the tail of the compiler's output."""
        if not targets:
            return None
        r = subprocess.run(["cmake", "--build", self.build_dir(kind), "-j2", "--target"] +
                           targets, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
        if r.returncode != 0:
            return (r.stdout + r.stderr)[-3000:]
        return None

    def run_test(self, kind, t):
        """(passed, seconds, tail of output)."""
        bdir = self.build_dir(kind)
        env = dict(os.environ)
        env.pop("CI", None)
        if test_kind(t) == "unit":
            if t == "check_style":
                cmd, cwd = [os.path.join(self.src, "tests", "check_style.sh")], self.src
            else:
                cmd, cwd = [os.path.join(bdir, "tests", t)], os.path.join(bdir, "tests")
        else:
            cmd, cwd = [sys.executable, "-m", "unittest", t], os.path.join(
                self.src, "tests", "integration")
            env["BRIEFD_BIN"] = os.path.join(bdir, "briefd")
            env["BRIEFD_SIM_BIN"] = os.path.join(bdir, "briefd-modelsim")
            env["BRIEFD_ARTIFACTS"] = os.path.join(bdir, "artifacts")
        t0 = time.time()
        try:
            r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                               timeout=TEST_TIMEOUT_S, start_new_session=True)
        except subprocess.TimeoutExpired as e:
            out = (e.stdout or b"")
            out = out.decode("utf-8", "replace") if isinstance(out, bytes) else out
            return False, time.time() - t0, "timed out after %d s\n%s" % (TEST_TIMEOUT_S,
                                                                         out[-1500:])
        out = r.stdout + r.stderr
        return r.returncode == 0, time.time() - t0, out[-3000:]


# --- one mutant ----------------------------------------------------------------------------

def apply(scratch, m):
    """Mutate the scratch copy; returns the original text."""
    path = os.path.join(scratch.src, m["file"])
    with open(path, encoding="utf-8") as f:
        text = f.read()
    n = text.count(m["pattern"])
    if n != 1:
        raise ValueError("the pattern occurs %d times in %s" % (n, m["file"]))
    with open(path, "w", encoding="utf-8") as f:
        f.write(text.replace(m["pattern"], m["replacement"], 1))
    return text


def revert(scratch, m, text):
    with open(os.path.join(scratch.src, m["file"]), "w", encoding="utf-8") as f:
        f.write(text)


def run_mutant(scratch, m):
    res = {"id": m["id"], "file": m["file"], "tests": m["tests"], "build": m["build"],
           "at": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    t0 = time.time()
    try:
        original = apply(scratch, m)
    except (OSError, ValueError) as e:
        res.update(status="invalid", detail=str(e), seconds=0)
        return res
    try:
        err = scratch.build(m["build"], targets_of(m["tests"]))
        if err is not None:
            res.update(status="invalid", detail="the mutant does not build:\n" + err)
            return res
        res["status"] = "survived"
        for t in m["tests"]:
            ok, secs, out = scratch.run_test(m["build"], t)
            log("  %s: %s (%.0f s)" % (t, "passed" if ok else "FAILED", secs))
            if not ok:
                res.update(status="caught", caught_by=t,
                           detail="timed out" if out.startswith("timed out") else
                           failure_line(out))
                break
    finally:
        revert(scratch, m, original)
        res["seconds"] = round(time.time() - t0, 1)
    return res


def failure_line(out):
    """The most telling line of a failed test's output: a unit test's first failed CHECK,
    else the last exception line of a unittest traceback, else the last line."""
    lines = [l.strip() for l in out.splitlines() if l.strip()]
    for line in lines:
        if "CHECK" in line and "failed" in line:
            return line[:300]
    for line in reversed(lines):
        if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Expired)\b", line):
            return line[:300]
    return lines[-1][:300] if lines else ""


# --- baseline, results ---------------------------------------------------------------------

def baseline(scratch, mutants):
    """Every test the mutants name must pass on the unmutated tree."""
    for kind in sorted({m["build"] for m in mutants}):
        tests = []
        for m in mutants:
            if m["build"] == kind:
                tests += [t for t in m["tests"] if t not in tests]
        err = scratch.build(kind, targets_of(tests))
        if err is not None:
            raise SystemExit("the unmutated tree does not build (%s):\n%s" % (kind, err))
        for t in tests:
            ok, secs, out = scratch.run_test(kind, t)
            log("baseline %s %s: %s (%.0f s)" % (kind, t, "passed" if ok else "FAILED", secs))
            if not ok:
                raise SystemExit("baseline: %s fails without any mutant; fix it first:\n%s"
                                 % (t, out))


def load_results():
    if os.path.exists(RESULTS_JSON):
        with open(RESULTS_JSON) as f:
            return {r["id"]: r for r in json.load(f)["results"]}
    return {}


def tree_version():
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                          capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    return head + ("+edits" if dirty else "")


def md_cell(s):
    return str(s).replace("|", "\\|").replace("\n", " ")


def write_results(mutants, results):
    order = [m["id"] for m in mutants]
    rows = [results[i] for i in order if i in results]
    with open(RESULTS_JSON, "w") as f:
        json.dump({"results": rows}, f, indent=1, sort_keys=True)
        f.write("\n")
    by_id = {m["id"]: m for m in mutants}
    counts = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    lines = ["# Mutation results", "",
             "Written by `tests/mutants/run.py` (how to run it: [README.md](README.md)). A "
             "mutant is *caught* when one of its tests fails (or hangs past %d s), *survived* "
             "when all pass; *invalid* when it does not apply or build. A survivor is "
             "either killed by a new test or explained in `mutants.json` (`equivalent`)." %
             TEST_TIMEOUT_S, "",
             "Summary: %d mutants; %s." % (len(rows), ", ".join(
                 "%d %s" % (n, s) for s, n in sorted(counts.items()))), "",
             "| mutant | file | build | result | caught by | how it failed | s | run at (tree) | "
             "what it breaks |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        m = by_id[r["id"]]
        result = r["status"]
        if result == "survived" and m.get("equivalent"):
            result = "survived (explained below)"
        how = r.get("detail", "") if r["status"] == "caught" else ""
        lines.append("| `%s` | `%s` | %s | %s | %s | %s | %s | %s (%s) | %s |" % (
            r["id"], r["file"], r["build"], result,
            "`%s`" % r["caught_by"] if r.get("caught_by") else "",
            md_cell(how[:140]), r.get("seconds", ""), r.get("at", ""), r.get("tree", ""),
            md_cell(m["why"])))
    explained = [m for m in mutants if m.get("equivalent")]
    if explained:
        lines += ["", "## Survivors explained", ""]
        for m in explained:
            lines.append("- `%s`: %s" % (m["id"], m["equivalent"]))
    bad = [r for r in rows if r["status"] in ("survived", "invalid")
           and not by_id[r["id"]].get("equivalent")]
    if bad:
        lines += ["", "## Open", ""]
        for r in bad:
            lines.append("- `%s` %s: %s" % (r["id"], r["status"], md_cell(r.get("detail", ""))))
    with open(RESULTS_MD, "w") as f:
        f.write("\n".join(lines) + "\n")


# --- main ----------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", help="comma-separated mutant ids")
    ap.add_argument("--list", action="store_true", help="list the mutants and exit")
    ap.add_argument("--scratch", default=os.environ.get("BRIEFD_MUTANTS_DIR",
                                                        "/tmp/briefd-mutants"),
                    help="the scratch directory (default /tmp/briefd-mutants)")
    ap.add_argument("--no-baseline", action="store_true",
                    help="skip the run of the tests on the unmutated tree")
    ap.add_argument("--keep-copy", action="store_true",
                    help="reuse the scratch copy as it is (do not copy the tree again)")
    a = ap.parse_args()
    mutants = load_mutants()
    missing = uncovered_modules(mutants)
    if missing:
        log("modules without a mutant (add one): %s" % " ".join(missing))
    if a.list:
        for m in mutants:
            print("%-34s %-24s %s" % (m["id"], m["file"], " ".join(m["tests"])))
        return 1 if missing else 0
    chosen = mutants
    if a.only:
        want = a.only.split(",")
        unknown = [w for w in want if w not in {m["id"] for m in mutants}]
        if unknown:
            raise SystemExit("unknown mutant(s): %s" % unknown)
        chosen = [m for m in mutants if m["id"] in want]
    scratch = Scratch(a.scratch)
    os.makedirs(a.scratch, exist_ok=True)
    if not (a.keep_copy and os.path.isdir(scratch.src)):
        scratch.copy()
    for kind in sorted({m["build"] for m in chosen}):
        scratch.configure(kind)
    if not a.no_baseline:
        baseline(scratch, chosen)
    results = load_results()
    tree = tree_version()
    t0 = time.time()
    for i, m in enumerate(chosen):
        log("%d/%d %s (%s)" % (i + 1, len(chosen), m["id"], m["file"]))
        r = run_mutant(scratch, m)
        r["tree"] = tree
        results[m["id"]] = r
        log("  -> %s%s" % (r["status"], " by " + r["caught_by"] if r.get("caught_by") else
                           (": " + r.get("detail", "")[:200] if r["status"] == "invalid"
                            else "")))
        write_results(mutants, results)
    left = [m["id"] for m in chosen if results[m["id"]]["status"] in ("survived", "invalid")
            and not m.get("equivalent")]
    log("done in %.0f min; not caught: %s" % ((time.time() - t0) / 60, left or "none"))
    return 1 if left else 0


if __name__ == "__main__":
    sys.exit(main())
