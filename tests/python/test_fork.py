# SPDX-License-Identifier: MIT
"""fork: workers forked from a process that holds a client record through it (the
library opens the child's own connection), even when another thread held the Python
side's lock at the moment of the fork."""
import os
import threading
import time
import unittest

import mdtest


class Fork(mdtest.DaemonTest):
    def _child(self, c, model, n):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                for _ in range(n):
                    with c.generation(model) as g:
                        g.token(3)
                code = 0 if c.flush(20) else 2
            finally:
                os._exit(code)
        return pid

    def test_forked_workers_generations_arrive(self):
        c = self.client()
        with c.generation("py-fork") as g:  # the parent is connected before the fork
            g.token(3)
        self.assertTrue(c.flush(10))
        pids = [self._child(c, "py-fork", 20) for _ in range(3)]
        for _ in range(10):
            with c.generation("py-fork") as g:
                g.token(3)
        for p in pids:
            _, st = os.waitpid(p, 0)
            self.assertEqual(os.waitstatus_to_exitcode(st), 0)
        self.assertTrue(c.flush(10))
        self.d.wait_flushed(71)
        m = self.d.model("py-fork")
        self.assertEqual((m["requests"], m["output_tokens"]), (71, 213))
        # each worker had a connection of its own
        self.assertGreaterEqual(self.d.counter("hellos"), 4)

    def test_fork_while_another_thread_holds_the_lock(self):
        c = self.client()
        held, release = threading.Event(), threading.Event()

        def holder():
            with c._mu:
                held.set()
                release.wait(30)

        t = threading.Thread(target=holder)
        t.start()
        held.wait(30)
        try:
            pid = self._child(c, "py-fork-lock", 5)
        finally:
            release.set()
            t.join()
        deadline = time.monotonic() + 60
        while True:
            done, st = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
                self.fail("the child hung on the lock held at fork")
            time.sleep(0.02)
        self.assertEqual(os.waitstatus_to_exitcode(st), 0)
        self.d.wait_flushed(5)
        self.assertEqual(self.d.model("py-fork-lock")["requests"], 5)


if __name__ == "__main__":
    unittest.main()
