#!/bin/bash
# SPDX-License-Identifier: MIT
# metricsctl top in a real terminal, driven through tmux (issue 18): it draws its table
# on the alternate screen, refreshes, changes its sort on a key, quits on q, and gives
# the terminal back as it found it (stty settings, main screen) after q, SIGTERM, and
# a SIGTSTP/SIGCONT round trip.
. "$(dirname "$0")/../harness/harness.sh"
require tmux
export TERM=${TERM:-xterm-256color}
[ "$TERM" = dumb ] && export TERM=xterm-256color
TM="tmux -S $TMP/tmux.sock -f /dev/null"
at_exit "$TM kill-server 2>/dev/null"
ctl() { "$METRICSCTL" --socket "$SOCK" "$@"; }

start_daemon --sample-interval 0
ctl send --model alpha --ttft-ms 100 --e2e-ms 1000 --tokens 100 || fail send
ctl send --model beta --ttft-ms 300 --e2e-ms 2000 --tokens 10 || fail send
wait_flushed 2

# A pane that records the terminal's settings, runs top, and records them again.
cat >"$TMP/pane.sh" <<PANE
stty -a >"$TMP/stty.before"
echo "main screen marker"
"$METRICSCTL" --socket "$SOCK" top
echo "top exited \$?" >"$TMP/top.rc"
stty -a >"$TMP/stty.after"
sleep 30
PANE
screen() { $TM capture-pane -p -t t; }
shows() { screen | grep -q "$1"; }
start_pane() {
    rm -f "$TMP/top.rc" "$TMP/stty.before" "$TMP/stty.after"
    # A tmux server starting on a loaded machine can die before its first client is
    # answered ("server exited unexpectedly"): start it once more before failing.
    $TM new-session -d -s t -x 120 -y 20 "bash $TMP/pane.sh" 2>"$TMP/tmux.err" || {
        $TM kill-server 2>/dev/null || true
        sleep 0.5
        $TM new-session -d -s t -x 120 -y 20 "bash $TMP/pane.sh" \
            || fail "tmux new-session: $(cat "$TMP/tmux.err")"
    }
    wait_for "top draws its table" shows "^MODEL  *IN FLIGHT"
}
top_pid() { pgrep -f -n -- "$METRICSCTL --socket $SOCK top" || true; }

# (a) the table, the sort key, q.
start_pane
screen >"$TMP/frame1"
grep -q "metricsctl top .* sorted by tokens/s" "$TMP/frame1" || fail "(a) header: $(cat "$TMP/frame1")"
! grep -q "main screen marker" "$TMP/frame1" || fail "(a) top is not on the alternate screen"
# sorted by tokens/s: alpha (100 tokens) above beta (10)
[ "$(grep -Eo '^(alpha|beta) ' "$TMP/frame1" | tr -d ' ' | tr '\n' ,)" = "alpha,beta," ] \
    || fail "(a) order by tokens/s: $(cat "$TMP/frame1")"
$TM send-keys -t t l
wait_for "sort by TTFT p95" shows "sorted by TTFT p95"
[ "$(screen | grep -Eo '^(alpha|beta) ' | tr -d ' ' | tr '\n' ,)" = "beta,alpha," ] \
    || fail "(a) order by TTFT p95: $(screen)"
$TM send-keys -t t R
wait_for "reversed" shows "reversed"
$TM send-keys -t t q
wait_for "top exits on q" [ -s "$TMP/stty.after" ]
[ "$(cat "$TMP/top.rc")" = "top exited 0" ] || fail "(a) top exit: $(cat "$TMP/top.rc")"
diff -u "$TMP/stty.before" "$TMP/stty.after" || fail "(a) terminal settings not restored after q"
screen | grep -q "main screen marker" || fail "(a) main screen not restored: $(screen)"
! screen | grep -q "^MODEL" || fail "(a) top's table left on the main screen"
$TM kill-session -t t

# (b) SIGTSTP then SIGCONT: the terminal is given back while stopped, taken again after.
start_pane
pid=$(top_pid)
[ -n "$pid" ] || fail "(b) no top process"
stopped() { [ "$(ps -o stat= -p "$pid" | cut -c1)" = T ]; }
kill -TSTP "$pid"
for _ in $(seq 1 600); do stopped && break; sleep 0.1; done
stopped || fail "(b) top (pid $pid) did not stop on SIGTSTP in 60 s: $(ps -o pid,stat,wchan:24,args -p "$pid"; pgrep -af metricsctl; cat /proc/"$pid"/status 2>&1 | grep -E 'State|Sig')"
wait_for "main screen while stopped" shows "main screen marker"
kill -CONT "$pid"
wait_for "top redraws after SIGCONT" shows "^MODEL  *IN FLIGHT"
# (c) SIGTERM: exits and restores.
kill -TERM "$pid"
wait_for "top exits on SIGTERM" [ -s "$TMP/stty.after" ]
diff -u "$TMP/stty.before" "$TMP/stty.after" || fail "(c) terminal settings not restored after SIGTERM"
screen | grep -q "main screen marker" || fail "(c) main screen not restored after SIGTERM"
$TM kill-session -t t

# (d) not a terminal: --once prints one plain frame, no escape codes.
ctl top --once >"$TMP/once.txt"
grep -q "^alpha " "$TMP/once.txt" && ! grep -q $'\033' "$TMP/once.txt" || fail "(d) top --once: $(cat -v "$TMP/once.txt")"
echo "metricsctl top in tmux: ok"
