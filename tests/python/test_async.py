# SPDX-License-Identifier: MIT
"""From asyncio: generations on the loop, and queries that wait without blocking it
(a daemon that accepts and never answers: the loop keeps ticking, the query gives up
at its timeout and says why)."""
import asyncio
import os
import socket
import tempfile
import time
import unittest

import mdtest
import metricsd


class OnTheLoop(mdtest.DaemonTest):
    def test_concurrent_generations_and_astats(self):
        c = self.client()

        async def one(i):
            with c.generation("py-async") as g:
                await asyncio.sleep(0.01)
                for _ in range(5):
                    g.token()
                    await asyncio.sleep(0)

        async def main():
            await asyncio.gather(*(one(i) for i in range(50)))
            c.flush(10)
            return await c.astats("py-async")

        asyncio.run(main())
        self.d.wait_flushed(50)
        st = asyncio.run(c.astats("py-async"))
        self.assertEqual(st.model("py-async").requests, 50)
        self.assertEqual(st.model("py-async").output_tokens, 250)
        self.assertEqual(asyncio.run(c.astatus()).counters["generations_accepted"], 50)

    def test_cancelled_task_records_a_cancellation(self):
        c = self.client()

        async def stream():
            with c.generation("py-acancel") as g:
                g.token()
                await asyncio.sleep(30)

        async def main():
            t = asyncio.create_task(stream())
            await asyncio.sleep(0.05)
            t.cancel()
            with self.assertRaises(asyncio.CancelledError):
                await t

        asyncio.run(main())
        c.flush(10)
        self.d.wait_flushed(1)
        m = self.d.model("py-acancel")
        self.assertEqual((m["requests"], m["cancelled"], m["errors"]), (1, 1, 0))


class SilentDaemon(unittest.TestCase):
    def test_query_waits_off_the_loop_and_times_out(self):
        tmp = tempfile.TemporaryDirectory(prefix="metricsd-pytest.")
        self.addCleanup(tmp.cleanup)
        path = os.path.join(tmp.name, "silent.sock")
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(srv.close)
        srv.bind(path)
        srv.listen(16)                     # accepts (the backlog) and never answers
        c = metricsd.Client(path, "silent")
        self.addCleanup(c.close)

        async def main():
            ticks = 0

            async def ticker():
                nonlocal ticks
                while True:
                    await asyncio.sleep(0.01)
                    ticks += 1

            t = asyncio.create_task(ticker())
            t0 = time.monotonic()
            st = await c.astats(timeout=1.0)
            waited = time.monotonic() - t0
            t.cancel()
            return st, waited, ticks

        st, waited, ticks = asyncio.run(main())
        self.assertIsNotNone(st.error)
        self.assertIn("silent.sock", st.error)
        self.assertGreaterEqual(waited, 0.9)
        self.assertLess(waited, 30)
        # The loop ran during the wait: a blocked loop would have ticked at most once.
        self.assertGreater(ticks, 10)


if __name__ == "__main__":
    unittest.main()
