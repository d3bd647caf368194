"""The dashboard under a fleet's load: 100 symbols at 1 bar per second each.

Starts mosquitto on a free local port and ``engine dashboard`` in a child
process, and publishes what a live engine's mqtt sink publishes with
``bars = true``: per symbol and bar, the bar event and the symbol's retained
status (200 messages a second for 100 symbols). Prints:

* the dashboard's CPU (% of one core, from /proc) over the same window while
  idle (connected, nothing published), under the load with no page open, and
  under the load with the fleet page open in a headless chromium (the
  server-sent events pushed); the publisher's own CPU in the same windows is
  the reference on this shared machine;
* the page: first load (navigation to the 100 rows drawn), the time from a
  status published to its row changing in the page, and how long the page's
  main thread was busy (long tasks, largest gap between two frames) under
  the load;
* the page weight (every file the page loads, as sent).

    .venv/bin/python bench/dashboard.py [--symbols 100] [--seconds 20]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from mqtt_publish import start_mosquitto

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "bench-dashboard-token-0123456789"
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def iso(ts: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(ts / 1e9))


def own_cpu() -> float:
    t = os.times()
    return t.user + t.system


class Publisher:
    """What a live engine publishes for ``symbols`` symbols at one bar per second each."""

    def __init__(self, port: int, symbols: int) -> None:
        import paho.mqtt.client as paho

        self.symbols = [f"S{k:03d}" for k in range(symbols)]
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="bench-engine")
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.seq = 0
        self.running = threading.Event()
        self.stopped = threading.Event()
        self.sent = 0
        status = {"schema": 1, "engine": "bench", "online": True, "reason": None, "mode": "live",
                  "symbols": [*self.symbols, "PROBE"], "shard": None, "control": True, "batch": False,
                  "since": "2026-12-06T00:00:00.000Z", "events": 0, "published": 0, "dropped": 0, "queued": 0,
                  "connects": 1}  # fmt: skip
        self.client.publish("engine/bench/status", json.dumps(status), qos=1, retain=True)

    def status(self, symbol: str, ts: int, close: float) -> str:
        return json.dumps({
            "schema": 1, "engine": "bench", "symbol": symbol, "state": "watch", "position": "0", "avg_price": None,
            "last_bar": {"ts": ts, "time": iso(ts), "close": close},
            "pending_order": None, "halted": None, "paused": False, "seq": self.seq, "ts": ts, "time": None,
        })  # fmt: skip

    def run(self) -> None:
        n = len(self.symbols)
        bar = 0
        start = time.monotonic()
        while not self.stopped.is_set():
            if not self.running.is_set():
                self.running.wait(0.1)
                start, bar = time.monotonic(), bar
                continue
            ts = (1_800_000_000 + bar * 60) * 10**9
            for k, symbol in enumerate(self.symbols):
                due = start + bar + k / n
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                close = 100 + (bar % 50) * 0.1 + k * 0.01
                self.seq += 1
                event = {"schema": 1, "seq": self.seq, "engine": "bench", "symbol": symbol, "event": "bar", "ts": ts,
                         "time": None, "open": close, "high": close + 0.2, "low": close - 0.2, "close": close,
                         "volume": 1.0}  # fmt: skip
                self.client.publish(f"engine/bench/{symbol}/bar", json.dumps(event), qos=1)
                self.client.publish(f"engine/bench/{symbol}/status", self.status(symbol, ts, close), qos=1, retain=True)
                self.sent += 2
            bar += 1

    def probe(self, value: float) -> None:
        self.client.publish("engine/bench/PROBE/status", self.status("PROBE", 1_800_000_000 * 10**9, value), qos=1)

    def close(self) -> None:
        self.stopped.set()
        self.client.loop_stop()
        self.client.disconnect()


def window(pid: int, seconds: float) -> tuple[float, float]:
    """(% of a core the dashboard used, % the publisher used) over ``seconds``."""
    d0, p0, t0 = cpu_seconds(pid), own_cpu(), time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - t0
    return 100 * (cpu_seconds(pid) - d0) / elapsed, 100 * (own_cpu() - p0) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        broker, port = start_mosquitto(work)
        env = {k: v for k, v in os.environ.items() if k != "ENGINE_DISABLE_PLUGIN_AUTOLOAD"}
        dash = subprocess.Popen(
            [sys.executable, "-m", "engine_core", "dashboard", "--mqtt", f"127.0.0.1:{port}", "--port", "0",
             "--token", TOKEN, "--reports", str(work / "reports")],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
        )  # fmt: skip
        url = None
        for line in dash.stdout:  # type: ignore[union-attr]
            found = re.search(r"open (http://\S+)", line)
            if found:
                url = found[1]
                break
        assert url is not None, "the dashboard printed no address"
        base = url.split("/?")[0]
        pub = Publisher(port, args.symbols)
        thread = threading.Thread(target=pub.run, daemon=True)
        thread.start()
        try:
            time.sleep(2)
            idle = window(dash.pid, args.seconds / 2)
            pub.running.set()
            time.sleep(3)
            sent = pub.sent
            loaded = window(dash.pid, args.seconds)
            rate = (pub.sent - sent) / args.seconds
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=["--no-sandbox"])
                page = browser.new_page(viewport={"width": 1500, "height": 950})
                page.goto(url)
                page.wait_for_function(f"document.querySelectorAll('tbody tr[data-key]').length >= {args.symbols}")
                loads, weights = [], []
                for _ in range(3):
                    t0 = time.monotonic()
                    page.goto(f"{base}/?r={time.time()}", wait_until="commit")
                    page.wait_for_function(f"document.querySelectorAll('tbody tr[data-key]').length >= {args.symbols}")
                    loads.append(time.monotonic() - t0)
                    weights.append(
                        page.evaluate(
                            "() => performance.getEntriesByType('navigation')"
                            ".concat(performance.getEntriesByType('resource'))"
                            ".filter(e => !e.name.includes('/api/stream'))"
                            ".map(e => ({name: e.name.split('?')[0], size: e.encodedBodySize || 0}))"
                        )
                    )
                page.evaluate(
                    """() => {
                    window.__long = 0; window.__gap = 0; let last = performance.now();
                    new PerformanceObserver((l) => { for (const e of l.getEntries()) window.__long += e.duration; })
                      .observe({ entryTypes: ['longtask'] });
                    const frame = (t) => {
                      window.__gap = Math.max(window.__gap, t - last); last = t; requestAnimationFrame(frame);
                    };
                    requestAnimationFrame(frame);
                    window.__seen = {};
                    new MutationObserver(() => {
                      const td = document.querySelector('tr[data-key="bench/PROBE"] td.close');
                      if (td) window.__seen[td.textContent] = Date.now();
                    }).observe(document.querySelector('tbody'), { subtree: true, childList: true });
                    }"""
                )
                latencies = []
                d0, p0, t0 = cpu_seconds(dash.pid), own_cpu(), time.monotonic()
                for i in range(int(args.seconds)):
                    value = 5000 + i
                    sent_at = time.time() * 1000
                    pub.probe(float(value))
                    text = f"{value:,}"
                    page.wait_for_function(f"() => window.__seen[{text!r}] !== undefined", timeout=10_000)
                    latencies.append(page.evaluate(f"() => window.__seen[{text!r}]") - sent_at)
                    page.wait_for_timeout(max(0, 1000 - (time.time() * 1000 - sent_at)))
                elapsed = time.monotonic() - t0
                with_page = [100 * (cpu_seconds(dash.pid) - d0) / elapsed, 100 * (own_cpu() - p0) / elapsed]
                busy = page.evaluate("() => ({long: window.__long, gap: window.__gap})")
                browser.close()
        finally:
            pub.close()
            dash.terminate()
            dash.wait(10)
            broker.terminate()
            broker.wait(10)
    files: dict[str, int] = {}
    for entry in weights[-1]:
        files[entry["name"].replace(base, "") or "/"] = entry["size"]
    print(f"dashboard bench: {args.symbols} symbols, 1 bar/s each: {rate:.0f} messages/s published (bar + status)")
    print(
        "  CPU of the dashboard, % of one core (publisher's own in the same window, for reference), "
        f"{args.seconds:g} s windows:"
    )
    print(f"    idle, connected            {idle[0]:6.2f}%   (publisher {idle[1]:5.2f}%)")
    print(f"    under load, no page open   {loaded[0]:6.2f}%   (publisher {loaded[1]:5.2f}%)")
    print(f"    under load, fleet page open{with_page[0]:7.2f}%   (publisher {with_page[1]:5.2f}%)")
    print(f"  first load to {args.symbols} rows drawn: " + ", ".join(f"{t * 1000:.0f} ms" for t in loads))
    if latencies:
        latencies.sort()
        print(
            f"  status published -> row changed in the page: median {statistics.median(latencies):.0f} ms, "
            f"max {latencies[-1]:.0f} ms ({len(latencies)} probes)"
        )
    print(
        f"  page main thread under load: long tasks {busy['long']:.0f} ms in total, "
        f"largest frame gap {busy['gap']:.0f} ms"
    )
    total = sum(files.values())
    print(
        f"  page weight: {total / 1024:.0f} KiB in {len(files)} files ("
        + ", ".join(f"{k} {v / 1024:.1f} KiB" for k, v in sorted(files.items()))
        + ")"
    )


if __name__ == "__main__":
    main()
