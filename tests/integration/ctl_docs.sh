#!/bin/bash
# SPDX-License-Identifier: MIT
# metricsctl's help, its man page and the README agree: every command `metricsctl --help`
# lists is a command in man/metricsctl.1 and in the README's usage block, and the other
# way round; every option a command's --help prints is in the man page (in that
# command's entry, or among the options of every command), and every option the man
# page or the README names exists in some help. No daemon: all of it is text.
. "$(dirname "$0")/../harness/harness.sh"
require python3
SRC=$(cd "$(dirname "$0")/../.." && pwd)

"$METRICSCTL" --help >"$TMP/main.txt" || fail "metricsctl --help"
cmds=$(awk '/^Commands:/ { on = 1; next } on && /^$/ { exit } on { print $1 }' "$TMP/main.txt")
[ "$(echo "$cmds" | wc -w)" -ge 13 ] || fail "too few commands in --help: $cmds"
for c in $cmds; do
    "$METRICSCTL" "$c" --help >"$TMP/help.$c" || fail "metricsctl $c --help"
done
python3 - "$SRC/man/metricsctl.1" "$SRC/README.md" "$TMP" $cmds <<'PY' || fail "help, man page and README disagree"
import re, sys
man_path, readme_path, tmp, cmds = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]

def unroff(s):
    s = s.replace("\\-", "-").replace("\\(em", "-")
    return re.sub(r"\\f[BIRP]", "", s)

man = unroff(open(man_path).read())
# The man page's sections, and in COMMANDS one entry per .TP (its first line names it).
sections = re.split(r"^\.SH ", man, flags=re.M)
sec = {x.split("\n", 1)[0].strip(): x for x in sections[1:]}
entries = {}
for e in re.split(r"^\.TP\n", sec["COMMANDS"], flags=re.M)[1:]:
    words = re.sub(r'^\.[A-Z]+ ', "", e.split("\n", 1)[0]).replace('"', " ").split()
    entries[words[0]] = e
def opts(text):
    """The --options text names, but not the daemon's ("metricsd --label-dimension")."""
    text = re.sub(r"metricsd --[a-z-]+", "", text)
    return set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", text))
common = opts(sec["OPTIONS"])
bad = []
if set(entries) != set(cmds):
    bad.append("commands: help %s, man page %s" % (sorted(cmds), sorted(entries)))
main_opts = opts(open(tmp + "/main.txt").read().split("Options of every command:", 1)[1].split("\n\n", 1)[0])
if main_opts - common:
    bad.append("metricsctl --help options not in the man page's OPTIONS: %s" % sorted(main_opts - common))
if common - main_opts:
    bad.append("the man page's OPTIONS not in metricsctl --help: %s" % sorted(common - main_opts))
known = set(main_opts)
for c in cmds:
    helped = opts(open("%s/help.%s" % (tmp, c)).read())
    known |= helped
    missing = helped - common - opts(entries.get(c, ""))
    if missing:
        bad.append("%s --help options not in its man entry: %s" % (c, sorted(missing)))
    extra = opts(entries.get(c, "")) - helped
    if extra:
        bad.append("man entry of %s names options its --help lacks: %s" % (c, sorted(extra)))
# The README's usage block: one `metricsctl CMD ...` line (and its continuations) each.
readme = open(readme_path).read()
block = readme.split("## Using it", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
rcmds, cur = {}, None
for line in block.splitlines():
    m = re.match(r"metricsctl (\w+)", line)
    if m:
        cur = m.group(1)
        rcmds.setdefault(cur, "")
    elif not line.startswith(" "):
        cur = None
    if cur:
        rcmds[cur] += line.split("#", 1)[0] + "\n"
if set(rcmds) != set(cmds):
    bad.append("commands: help %s, README %s" % (sorted(cmds), sorted(rcmds)))
for c, text in rcmds.items():
    helped = opts(open("%s/help.%s" % (tmp, c)).read()) if c in cmds else set()
    extra = opts(text) - helped
    if extra:
        bad.append("README's %s line names options its --help lacks: %s" % (c, sorted(extra)))
for line in bad:
    print(line)
print("%d commands, %d options: help, man page and README %s" % (len(cmds), len(known), "disagree" if bad else "agree"))
sys.exit(1 if bad else 0)
PY
echo "metricsctl help, man page and README agree: ok"
