#!/usr/bin/env python3
"""Drives Berth's web console in headless Chromium over the DevTools protocol
(--remote-debugging-pipe: NUL-separated JSON on fds 3 and 4), standard library only.

Usage: webui.py BASE_URL TOKEN ARTIFACT_DIR SCENARIO ARGS...
  consoles DOMAIN   log in (a wrong token first), the serial console, the VNC display, destroy
                    (screenshots login-wrong-token.png, list.png, serial.png, vnc.png, stopped.png)
  spice DOMAIN      log in, the SPICE display through spice-html5 (spice.png)
  install DOMAIN KICKSTART_URL
                    the new-guest form: the first medium of the library, 1 GiB disk, the
                    kickstart; the progress, the installer on the serial console, the installed
                    guest running (install-form.png, install-console.png, installed.png)
Prints one line per step; exits non-zero with the reason at the first failed step.
"""
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

base, token, artifacts, scenario = sys.argv[1:5]
arguments = sys.argv[5:]
os.makedirs(artifacts, exist_ok=True)


class Browser:
    def __init__(self):
        self.profile = tempfile.mkdtemp(prefix="berth-chromium-")
        to_child_r, self.to_child = os.pipe()
        self.from_child, from_child_w = os.pipe()

        # Chromium reads commands on fd 3 and answers on fd 4.
        self.process = subprocess.Popen(
            ["sh", "-c", f'exec "$@" 3<&{to_child_r} 4>&{from_child_w}', "sh",
             shutil.which("chromium") or "chromium", "--headless=new", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
             "--no-first-run", "--user-data-dir=" + self.profile, "--window-size=1280,1000", "about:blank"],
            pass_fds=(to_child_r, from_child_w),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_child_r)
        os.close(from_child_w)
        self.buffer = b""
        self.next_id = 0
        self.session = None
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.call("Page.enable")
        self.call("Runtime.enable")

    def call(self, method, params=None, timeout=30):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if self.session:
            message["sessionId"] = self.session
        os.write(self.to_child, json.dumps(message).encode() + b"\0")
        deadline = time.time() + timeout
        while time.time() < deadline:
            while b"\0" in self.buffer:
                raw, self.buffer = self.buffer.split(b"\0", 1)
                answer = json.loads(raw)
                if answer.get("id") == self.next_id:
                    if "error" in answer:
                        raise RuntimeError(f"{method}: {answer['error']}")
                    return answer.get("result", {})
            chunk = os.read(self.from_child, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium exited")
            self.buffer += chunk
        raise RuntimeError(f"{method}: no answer in {timeout} s")

    def evaluate(self, expression):
        result = self.call("Runtime.evaluate", {"expression": expression, "awaitPromise": True, "returnByValue": True})
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait(self, expression, what, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                if self.evaluate(expression):
                    return
            except RuntimeError:
                pass  # the page is navigating
            time.sleep(0.25)
        self.screenshot("failure.png")
        text = self.evaluate("document.body ? document.body.innerText.slice(0, 800) : ''")
        raise SystemExit(f"FAIL: {what} (not seen in {timeout} s; page text: {text!r})")

    def screenshot(self, name):
        data = self.call("Page.captureScreenshot", {"format": "png"})["data"]
        with open(os.path.join(artifacts, name), "wb") as f:
            f.write(base64.b64decode(data))

    def navigate(self, url):
        self.call("Page.navigate", {"url": url})

    def type(self, text):
        for ch in text:
            if ch == "\r":
                params = {"key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13, "text": "\r"}
            else:
                params = {"key": ch, "text": ch}
            self.call("Input.dispatchKeyEvent", dict(params, type="keyDown"))
            self.call("Input.dispatchKeyEvent", dict(params, type="keyUp"))

    def close(self):
        self.process.kill()
        self.process.wait()
        shutil.rmtree(self.profile, ignore_errors=True)


def step(text):
    print("ok:", text, flush=True)


# Pixels of the display's canvas that are not the background: the guest's text console drawn.
LIT = ("(() => { const c = document.querySelector('#screen canvas'); if (!c || !c.width) return 0;"
       " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0;"
       " for (let i = 0; i < d.length; i += 4) if (d[i] + d[i + 1] + d[i + 2] > 60) n++; return n; })()")


def row(domain):
    return f"document.querySelector('tr[data-name={json.dumps(domain)}]')"


def log_in(browser, wrong_first):
    browser.navigate(base + "/ui/")
    browser.wait("location.pathname === '/ui/login' && !!document.querySelector('#token')", "the login page without a session")
    step("no session: the login page")
    if wrong_first:
        browser.evaluate("document.querySelector('#token').value = 'wrong-token'; document.querySelector('form').submit(); true")
        browser.wait("!!document.querySelector('#login-error')", "the login page again after a wrong token")
        browser.screenshot("login-wrong-token.png")
        step("wrong token: the login page, with the error")
    browser.evaluate(f"document.querySelector('#token').value = {json.dumps(token)}; document.querySelector('form').submit(); true")
    browser.wait("document.querySelector('#live').className === 'on'", "the event stream connected")


def open_display(browser, domain, protocol, shot):
    browser.evaluate(f"{row(domain)}.querySelector('a.name').click(); true")
    browser.wait("!document.querySelector('#domain').hidden", "the domain's details")
    browser.evaluate("document.querySelector('button[data-tab=display]').click(); true")
    browser.wait(f"document.querySelector('#display-status').textContent === 'connected ({protocol})'",
                 f"{protocol} connected through berthd", timeout=40)
    browser.wait(f"{LIT} > 500", f"a {protocol} canvas that is not blank", timeout=60)
    time.sleep(1)
    browser.screenshot(shot)
    step(f"{protocol} console: {browser.evaluate(LIT)} lit pixels on the canvas")


def consoles(browser, domain):
    log_in(browser, wrong_first=True)
    browser.wait(f"{row(domain)} && {row(domain)}.dataset.state === 'running'", "the guest listed as running")
    browser.evaluate("window.berthMarker = 'same page'; true")
    browser.screenshot("list.png")
    step("logged in: the guest is listed as running")

    browser.evaluate(f"{row(domain)}.querySelector('a.name').click(); true")
    browser.wait("!document.querySelector('#domain').hidden", "the domain's details")
    browser.evaluate("document.querySelector('button[data-tab=serial]').click(); true")
    rows_text = "(document.querySelector('#terminal .xterm-rows') || {textContent: ''}).textContent"
    browser.wait(f"{rows_text}.includes('BERTH-GUEST-READY')", "the guest's READY line in the terminal")
    step("serial console: BERTH-GUEST-READY in the terminal")
    time.sleep(1)  # the WebSocket opens after the log's tail is drawn
    browser.evaluate("document.querySelector('#terminal textarea').focus(); true")
    browser.type("echo hi-$((6*7))\r")
    browser.wait(f"{rows_text}.includes('hi-42')", "the answer hi-42 to a typed command")
    browser.screenshot("serial.png")
    step("serial console: typed 'echo hi-$((6*7))', read hi-42")

    open_display(browser, domain, "VNC", "vnc.png")

    browser.evaluate(f"{row(domain)}.querySelector('button[data-action=destroy]').click(); true")
    browser.wait(f"{row(domain)}.dataset.state === 'shut off'", "the list showing the guest shut off")
    if browser.evaluate("window.berthMarker") != "same page":
        raise SystemExit("FAIL: the page reloaded to show the new state")
    browser.screenshot("stopped.png")
    step("destroy from the page: the list shows 'shut off' without a reload")


def spice(browser, domain):
    log_in(browser, wrong_first=False)
    browser.wait(f"{row(domain)} && {row(domain)}.dataset.state === 'running'", "the guest listed as running")
    open_display(browser, domain, "SPICE", "spice.png")


def install(browser, domain, kickstart):
    log_in(browser, wrong_first=False)
    browser.evaluate("document.querySelector('#new-guest-button').click(); true")
    browser.wait("document.querySelector('#install-form select[name=media]').options.length > 1", "the media library in the form")
    fill = {"name": domain, "memory": "512", "vcpus": "1", "disk": "1", "ks": kickstart}
    script = "".join(f"f.elements[{json.dumps(k)}].value = {json.dumps(v)};" for k, v in fill.items())
    browser.evaluate(f"(() => {{ const f = document.querySelector('#install-form'); {script}"
                     " f.elements.media.selectedIndex = 1; return true; })()")
    browser.screenshot("install-form.png")
    browser.evaluate("document.querySelector('#install-submit').click(); true")
    step("new guest: the form sent with the first medium of the library")
    progress = "document.querySelector('#install-progress').textContent"
    browser.wait(f"{progress}.includes('Install tree')", "the install's progress (the tree recognised)", timeout=120)
    step("progress: the install tree recognised")
    rows_text = "(document.querySelector('#terminal .xterm-rows') || {textContent: ''}).textContent"
    browser.wait(f"{rows_text}.includes('BERTH-INSTALLER')", "the installer on the serial console", timeout=240)
    browser.screenshot("install-console.png")
    step("serial console: the installer's output")
    browser.wait(f"!!document.querySelector('#install-progress li.done') || !!document.querySelector('#install-progress li.failed')",
                 "the install's end", timeout=400)
    if browser.evaluate("!!document.querySelector('#install-progress li.failed')"):
        raise SystemExit(f"FAIL: the install failed: {browser.evaluate(progress)}")
    browser.wait(f"{row(domain)} && {row(domain)}.dataset.state === 'running'", "the installed guest listed as running")
    browser.screenshot("installed.png")
    step(f"installed: {domain} running; progress: {browser.evaluate(progress)!r}")


scenarios = {"consoles": consoles, "spice": spice, "install": install}
browser = Browser()
try:
    started = time.time()
    scenarios[scenario](browser, *arguments)
    print(f"done in {time.time() - started:.1f} s", flush=True)
finally:
    browser.close()
