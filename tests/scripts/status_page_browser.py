#!/usr/bin/env python3
"""Drives Debian's headless chromium over the DevTools protocol (stdlib only)
against the controller's status page, for status_page_browser_test.sh.

The browser talks CDP over --remote-debugging-pipe: NUL-terminated JSON
messages, it reads fd 3 and writes fd 4. Steps:
  1. open URL; no console errors, no exceptions, no error log entries (a CSP
     violation of the inline script is one);
  2. the DOM has every --agent ID with its --health text, and the live
     indicator says "live" (the EventSource is connected);
  3. a screenshot goes to --screenshot;
  4. --update CMD runs (it commits a change; its last stdout line is the new
     revision); without a reload (a window marker survives), the environment
     section shows that revision and the --new-agent ID appears;
  5. with script execution disabled, a fresh load still shows the agents.
Prints "ok   - ..." / "FAIL - ..." lines; exits 1 if anything failed.
Starts and stops only its own browser process, by pid.
"""
import argparse
import base64
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

failures = 0


def ok(msg):
    print("ok   - " + msg, flush=True)


def bad(msg, detail=""):
    global failures
    failures += 1
    print("FAIL - " + msg, flush=True)
    if detail:
        for line in str(detail).splitlines()[-30:]:
            print("       " + line, flush=True)


class Browser:
    def __init__(self, chromium, profile):
        to_browser_r, self.to_browser = os.pipe()
        self.from_browser, from_browser_w = os.pipe()
        # Above 4, so that setting up fds 3 and 4 cannot close one of them.
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (to_browser_r, from_browser_w)]
        os.close(to_browser_r)
        os.close(from_browser_w)
        to_browser_r, from_browser_w = high
        args = [chromium, "--headless=new", "--remote-debugging-pipe",
                "--user-data-dir=" + profile, "--no-first-run", "--no-default-browser-check",
                "--disable-gpu", "--disable-extensions", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-default-apps",
                "--mute-audio", "--window-size=1280,1000", "--hide-scrollbars", "about:blank"]
        if os.geteuid() == 0:
            args.insert(1, "--no-sandbox")

        # The browser's fds 3 and 4, set up by a shell that then execs it.
        shell = 'exec 3<&%d 4>&%d %d<&- %d>&-; exec "$@"' % (
            to_browser_r, from_browser_w, to_browser_r, from_browser_w)
        self.log = open(os.path.join(profile, "chromium.log"), "wb")
        self.proc = subprocess.Popen(["bash", "-c", shell, "chromium"] + args,
                                     pass_fds=(to_browser_r, from_browser_w),
                                     stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self.buf = b""
        self.next_id = 0
        self.events = []
        self.session = None

    def send(self, method, params=None, session=True, timeout=30):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session and self.session:
            msg["sessionId"] = self.session
        os.write(self.to_browser, json.dumps(msg).encode() + b"\0")
        want = self.next_id
        deadline = time.monotonic() + timeout
        while True:
            m = self.read(deadline)
            if m is None:
                raise RuntimeError("no answer to %s within %ss" % (method, timeout))
            if m.get("id") == want:
                if "error" in m:
                    raise RuntimeError("%s: %s" % (method, m["error"]))
                return m.get("result", {})
            if "method" in m:
                self.events.append(m)

    def read(self, deadline):
        import select
        while b"\0" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([self.from_browser], [], [], left)
            if not r:
                return None
            chunk = os.read(self.from_browser, 1 << 20)
            if not chunk:
                raise RuntimeError("the browser closed the pipe (see chromium.log)")
            self.buf += chunk
        raw, self.buf = self.buf.split(b"\0", 1)
        return json.loads(raw)

    def pump(self, seconds):
        """Collects events for up to `seconds`."""
        deadline = time.monotonic() + seconds
        while True:
            m = self.read(deadline)
            if m is None:
                return
            if "method" in m:
                self.events.append(m)

    def wait_event(self, method, timeout):
        deadline = time.monotonic() + timeout
        for i, e in enumerate(self.events):
            if e["method"] == method:
                del self.events[i]
                return e
        while True:
            m = self.read(deadline)
            if m is None:
                return None
            if m.get("method") == method:
                return m
            if "method" in m:
                self.events.append(m)

    def eval(self, expr):
        r = self.send("Runtime.evaluate", {"expression": expr, "returnByValue": True})
        if "exceptionDetails" in r:
            raise RuntimeError("evaluate %s: %s" % (expr, r["exceptionDetails"]))
        return r["result"].get("value")

    def close(self):
        try:
            self.send("Browser.close", session=False, timeout=5)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def errors_in(events):
    out = []
    for e in events:
        p = e.get("params", {})
        if e["method"] == "Runtime.exceptionThrown":
            out.append("exception: " + json.dumps(p.get("exceptionDetails", {}))[:400])
        elif e["method"] == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            out.append("console.%s: %s" % (p.get("type"), json.dumps(p.get("args"))[:400]))
        elif e["method"] == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            out.append("log: %s (%s)" % (p["entry"].get("text"), p["entry"].get("url", "")))
    return out


def new_page(b):
    target = b.send("Target.createTarget", {"url": "about:blank"}, session=False)["targetId"]
    b.session = b.send("Target.attachToTarget", {"targetId": target, "flatten": True},
                       session=False)["sessionId"]
    for domain in ("Page", "Runtime", "Log", "DOM"):
        b.send(domain + ".enable")
    return target


def navigate(b, url):
    b.events = [e for e in b.events if e["method"] != "Page.loadEventFired"]
    b.send("Page.navigate", {"url": url})
    return b.wait_event("Page.loadEventFired", 30) is not None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--env", required=True, help="environment name (section id env-NAME)")
    ap.add_argument("--agent", action="append", default=[], help="NAME=HEALTH")
    ap.add_argument("--screenshot", required=True)
    ap.add_argument("--update", required=True, help="shell command; last stdout line: revision")
    ap.add_argument("--new-agent", required=True)
    ap.add_argument("--chromium", default=shutil.which("chromium") or "chromium")
    args = ap.parse_args()

    profile = tempfile.mkdtemp(prefix="status-page-chromium-")
    b = Browser(args.chromium, profile)
    try:
        run(b, args)
    except Exception as e:  # a broken protocol exchange is a failure, loudly
        bad("the browser session", repr(e))
        try:
            with open(os.path.join(profile, "chromium.log"), errors="replace") as f:
                print(f.read()[-3000:])
        except OSError:
            pass
    finally:
        b.close()
        shutil.rmtree(profile, ignore_errors=True)
    return 1 if failures else 0


def agent_row(env, name):
    return "document.getElementById(%s)" % json.dumps("agent-%s-%s" % (env, name))


def run(b, args):
    new_page(b)
    if navigate(b, args.url):
        ok("the page loads in chromium")
    else:
        bad("the page did not fire its load event")
    # The EventSource connects; the indicator says so.
    deadline = time.monotonic() + 20
    live = None
    while time.monotonic() < deadline:
        live = b.eval("document.getElementById('live') && document.getElementById('live').textContent")
        if live == "live":
            break
        b.pump(0.2)
    if live == "live":
        ok("the live indicator says live (the event stream is connected)")
    else:
        bad("the live indicator says %r" % live)
    b.pump(0.5)
    errs = errors_in(b.events)
    if errs:
        bad("console errors or exceptions on load", "\n".join(errs))
    else:
        ok("no console errors, exceptions or error log entries on load")

    b.eval("window.__loaded = 4242")
    for spec in args.agent:
        name, health = spec.split("=", 1)
        got = b.eval(agent_row(args.env, name) + "?.querySelector('.health')?.textContent")
        if got == health:
            ok("the DOM shows agent %s as %s" % (name, health))
        else:
            bad("agent %s: health cell %r, want %r" % (name, got, health))
    endpoint = b.eval(agent_row(args.env, args.agent[0].split("=")[0]) +
                      "?.querySelector('.endpoint a')?.href")
    if endpoint and endpoint.startswith("http://127.0.0.1:"):
        ok("the agent's endpoint is a link (%s)" % endpoint)
    else:
        bad("no endpoint link: %r" % endpoint)

    shot = b.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
    data = base64.b64decode(shot["data"])
    os.makedirs(os.path.dirname(os.path.abspath(args.screenshot)), exist_ok=True)
    with open(args.screenshot, "wb") as f:
        f.write(data)
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000:
        ok("screenshot saved: %s (%d bytes)" % (args.screenshot, len(data)))
    else:
        bad("the screenshot is not a PNG with content (%d bytes)" % len(data))

    # A commit: the section changes without a reload.
    out = subprocess.run(["bash", "-c", args.update], capture_output=True, text=True)
    lines = out.stdout.strip().splitlines()
    if out.returncode != 0 or not lines:
        bad("the update command failed", out.stdout + out.stderr)
        return
    revision = lines[-1].strip()
    section = "document.getElementById(%s)" % json.dumps("env-" + args.env)
    deadline = time.monotonic() + 120
    seen = None
    while time.monotonic() < deadline:
        seen = b.eval("[window.__loaded, !!%s, (%s?.innerHTML || '').includes(%s), "
                      "(document.getElementById(%s)?.innerHTML || '').includes(%s)]" %
                      (agent_row(args.env, args.new_agent), section, json.dumps(revision[:12]),
                       json.dumps("history-" + args.env), json.dumps(revision[:12])))
        if seen[1] and seen[2] and seen[3]:
            break
        b.pump(0.3)
    if seen and seen[1] and seen[2] and seen[3]:
        ok("without a reload, the section shows revision %s, agent %s and the new history "
           "entry" % (revision[:12], args.new_agent))
    else:
        bad("the section did not update to %s with agent %s: %r" %
            (revision[:12], args.new_agent, seen))
    if seen and seen[0] == 4242:
        ok("the page was not reloaded (the window marker survived)")
    else:
        bad("the page was reloaded: marker %r" % (seen[0] if seen else None))
    health = b.eval(agent_row(args.env, args.new_agent) + "?.querySelector('.health')?.textContent")
    if health == "healthy":
        ok("the new agent shows as healthy")
    else:
        bad("the new agent's health: %r" % health)
    b.pump(0.3)
    errs = errors_in(b.events)
    if errs:
        bad("console errors or exceptions during the update", "\n".join(errs))
    else:
        ok("no console errors or exceptions during the update")
    shot = b.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
    updated = os.path.splitext(args.screenshot)[0] + "_updated.png"
    with open(updated, "wb") as f:
        f.write(base64.b64decode(shot["data"]))
    print("screenshot after the update: " + updated, flush=True)

    # Without JavaScript: the server-rendered page has everything.
    b.send("Emulation.setScriptExecutionDisabled", {"value": True})
    if not navigate(b, args.url):
        bad("without JavaScript, the page did not load")
        return
    html = b.send("DOM.getOuterHTML", {"nodeId": b.send("DOM.getDocument")["root"]["nodeId"]})
    html = html["outerHTML"]
    missing = [spec.split("=")[0] for spec in args.agent + [args.new_agent + "=x"]
               if ('id="agent-%s-%s"' % (args.env, spec.split("=")[0])) not in html]
    if not missing and '<span id="live">static</span>' in html:
        ok("with JavaScript disabled, the page shows every agent (and no live stream)")
    else:
        bad("with JavaScript disabled: missing %s" % missing, html[:2000])


if __name__ == "__main__":
    sys.exit(main())
