#!/bin/bash
# SPDX-License-Identifier: MIT
# The dashboard page (GET /) in a real browser: headless Chromium loads it from a
# daemon holding known generations, with no network but the daemon's loopback port.
# The rendered DOM (--dump-dom, after the page's scripts ran in virtual time) must
# list every model with the figures of `metricsctl stats --since 1h --json`, printed
# as metricsctl prints them; screenshots at a laptop's and a phone's width must not be
# blank (many distinct colours: the charts' lines and text), and the page must not
# be wider than a phone's screen.
. "$(dirname "$0")/../harness/harness.sh"
require curl python3 identify
CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
[ -n "$CHROMIUM" ] || skip "chromium not installed"

HP=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
start_daemon --http "127.0.0.1:$HP"
"$ITEST" send --socket "$SOCK" --procs 1 --threads 2 --total 900 --seed 21 || fail "send"
wait_flushed 900
"$METRICSCTL" stats --since 1h --json >"$TMP/stats.json" || fail "metricsctl stats"

# Chromium keeps its profile, caches and crash dumps in $TMP, and never leaves it.
browse() {
    HOME=$TMP XDG_CONFIG_HOME=$TMP/xdg XDG_CACHE_HOME=$TMP/xdg timeout 90 "$CHROMIUM" --headless \
        --no-sandbox --disable-gpu --disable-dev-shm-usage --no-first-run --disable-extensions \
        --disable-background-networking --disable-sync --user-data-dir="$TMP/chrome" \
        --virtual-time-budget=8000 "$@" "http://127.0.0.1:$HP/" 2>>"$TMP/chromium.log"
}
browse --window-size=1280,1500 --dump-dom >"$TMP/dom.html" || fail "chromium --dump-dom"
[ -s "$TMP/dom.html" ] || fail "chromium dumped nothing"

python3 - "$TMP/dom.html" "$TMP/stats.json" <<'PY' || fail "the page's figures differ from metricsctl's"
import json, sys
from html.parser import HTMLParser

class Rows(HTMLParser):
    """The rows of #models: {model: {class: (text, data-value)}}, and body data-loaded."""
    def __init__(self):
        super().__init__()
        self.rows, self.row, self.cell, self.loaded, self.in_models = {}, None, None, False, False
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "body" and a.get("data-loaded") == "1":
            self.loaded = True
        if tag == "table":
            self.in_models = a.get("id") == "models"
        if self.in_models and tag == "tr" and "data-model" in a:
            self.row = self.rows.setdefault(a["data-model"], {})
        if self.row is not None and tag == "td":
            self.cell = [a.get("class", ""), "", a.get("data-value")]
    def handle_data(self, d):
        if self.cell is not None:
            self.cell[1] += d
    def handle_endtag(self, tag):
        if tag == "td" and self.cell is not None:
            self.row[self.cell[0]] = (self.cell[1].strip(), self.cell[2])
            self.cell = None
        if tag == "tr":
            self.row = None
        if tag == "table":
            self.in_models = False

def num(v):  # metricsctl's rule: 3 significant digits, at most 2 decimals
    if v is None:
        return "-"
    return f"{v:.0f}" if abs(v) >= 100 else f"{v:.1f}" if abs(v) >= 10 else f"{v:.2f}"

p = Rows()
p.feed(open(sys.argv[1]).read())
want = {m["model"]: m for m in json.load(open(sys.argv[2]))["models"]}
ok = p.loaded
if not p.loaded:
    print("the page never loaded its data (body has no data-loaded)")
if set(p.rows) != set(want):
    print("models on the page", sorted(p.rows), "!= metricsctl's", sorted(want))
    ok = False
for model, m in sorted(want.items()):
    row = p.rows.get(model, {})
    checks = [("requests", str(m["requests"])), ("error-rate", num(m["error_rate"] * 100))]
    for key, cls in (("ttft_ms", "ttft"), ("tpot_ms", "tpot"), ("e2e_ms", "e2e")):
        s = m[key]
        checks.append((cls, f"{num(s['p50'])} / {num(s['p95'])} / {num(s['p99'])}"))
    checks.append(("tps", num(m["decode_tps"]["p50"])))
    for cls, text in checks:
        got = row.get(cls, ("(missing)", None))[0]
        if got != text:
            print(f"{model} {cls}: page shows {got!r}, metricsctl {text!r}")
            ok = False
    print(f"{model}: requests {row.get('requests', ('?',))[0]}, TTFT ms {row.get('ttft', ('?',))[0]}, "
          f"e2e ms {row.get('e2e', ('?',))[0]}")
sys.exit(0 if ok else 1)
PY

browse --window-size=390,1600 --dump-dom >"$TMP/dom-phone.html" || fail "chromium --dump-dom at 390 px"
grep -q 'data-fits="1"' "$TMP/dom-phone.html" || fail "the page is wider than a 390 px screen"

for size in 1280,1500 390,1600; do
    w=${size%,*}
    browse --window-size="$size" --hide-scrollbars --screenshot="$TMP/shot-$w.png" >/dev/null ||
        fail "chromium --screenshot at $size"
    [ -s "$TMP/shot-$w.png" ] || fail "no screenshot at $size"
    colours=$(identify -format '%k' "$TMP/shot-$w.png")
    dims=$(identify -format '%wx%h' "$TMP/shot-$w.png")
    echo "screenshot ${dims}: $colours distinct colours"
    # A blank or unstyled page has a handful; text, the model swatches and the
    # charts' antialiased lines give hundreds.
    [ "$colours" -ge 200 ] || fail "the screenshot at $size looks blank ($colours colours)"
done
# Keep the screenshots for a person to look at (the build tree, not $TMP).
mkdir -p "$BUILD_DIR/test-output"
cp "$TMP"/shot-*.png "$BUILD_DIR/test-output/" 2>/dev/null || true
stop_daemon
echo "PASS"
