"""Open a page in headless Chromium and report what it loaded and what it logged.

Chromium is driven through the DevTools protocol over a pipe
(``--remote-debugging-pipe``: JSON messages ending in a NUL byte on its file
descriptors 3 and 4), so no WebDriver and no network port is involved.
"""

import fcntl
import json
import os
import select
import shlex
import shutil
import subprocess
import tempfile
import time

#: Environment variable that names the Chromium executable, when not on PATH.
CHROMIUM_VARIABLE = "PNEUMOCLF_TEST_CHROMIUM"

_NAMES = ("chromium", "chromium-browser", "google-chrome")


def find_chromium():
    """The Chromium executable: ``$PNEUMOCLF_TEST_CHROMIUM``, else one on PATH."""
    named = os.environ.get(CHROMIUM_VARIABLE)
    if named:
        return named
    return next(filter(None, map(shutil.which, _NAMES)), None)


class PageVisit:
    """What opening one page gave: its images and the errors it logged."""

    def __init__(self, images, errors, scroll_width, value):
        self.images = images  # [{"alt", "complete", "naturalWidth"}]
        self.errors = errors  # messages of console errors, exceptions, failed loads
        self.scroll_width = scroll_width  # CSS pixels of the widest content
        self.value = value  # of the expression given to visit


def visit(executable, url, *, width=1280, timeout=60, expression="null"):
    """Open ``url`` at ``width`` CSS pixels, wait until it has loaded, look.

    ``expression`` (JavaScript) is then evaluated in the page; its value, which
    must be JSON, is returned too.

    Returns
    -------
    PageVisit
    """
    with (
        tempfile.TemporaryDirectory() as profile,
        _Chromium(executable, profile) as browser,
    ):
        target = browser.command("Target.createTarget", url="about:blank")["targetId"]
        session = browser.command(
            "Target.attachToTarget", targetId=target, flatten=True
        )["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            browser.command(f"{domain}.enable", session=session)
        browser.command(
            "Emulation.setDeviceMetricsOverride",
            session=session,
            width=width,
            height=800,
            deviceScaleFactor=1,
            mobile=False,
        )
        browser.command("Page.navigate", session=session, url=url)
        browser.wait_for("Page.loadEventFired", session, timeout)
        found = browser.command(
            "Runtime.evaluate",
            session=session,
            returnByValue=True,
            expression=(
                "({images: Array.from(document.images, image => ({alt: image.alt, "
                "complete: image.complete, naturalWidth: image.naturalWidth})), "
                "width: document.documentElement.scrollWidth, "
                f"value: ({expression})}})"
            ),
        )["result"]["value"]
        return PageVisit(
            found["images"], browser.errors, found["width"], found["value"]
        )


def _moved_above_four(fd):
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return moved


class _Chromium:
    def __init__(self, executable, profile):
        to_browser_read, self._to_browser = os.pipe()
        self._from_browser, from_browser_write = os.pipe()
        # Far from 3 and 4, so that putting one end there cannot close the other.
        to_browser_read, from_browser_write = (
            _moved_above_four(fd) for fd in (to_browser_read, from_browser_write)
        )
        arguments = [
            executable,
            "--headless",
            "--no-sandbox",  # root in CI containers
            "--disable-gpu",
            "--no-first-run",
            "--remote-debugging-pipe",
            f"--user-data-dir={profile}",
        ]
        # bash (which, unlike dash, takes descriptors above 9) puts the pipe
        # ends on descriptors 3 and 4, with no Python code between fork and exec.
        command = (
            f"exec {shlex.join(arguments)} 3<&{to_browser_read} 4>&{from_browser_write}"
        )
        self._process = subprocess.Popen(
            ["bash", "-c", command],
            pass_fds=(to_browser_read, from_browser_write),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_browser_read)
        os.close(from_browser_write)
        self._next_id = 0
        self._buffer = b""
        self._events = []
        self.errors = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        try:
            self._send("Browser.close", {}, None)
        except OSError:
            pass
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        os.close(self._to_browser)
        os.close(self._from_browser)

    def command(self, method, *, session=None, timeout=30, **params):
        """Send one command and return its result; record the events meanwhile."""
        message_id = self._send(method, params, session)
        deadline = time.monotonic() + timeout
        while True:
            message = self._receive(deadline, method)
            if message.get("id") == message_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]
            self._record(message)

    def wait_for(self, event, session, timeout):
        deadline = time.monotonic() + timeout
        while not any(
            e["method"] == event and e.get("sessionId") == session for e in self._events
        ):
            self._record(self._receive(deadline, event))

    def _send(self, method, params, session):
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        return self._next_id

    def _receive(self, deadline, waiting_for):
        while b"\0" not in self._buffer:
            remaining = deadline - time.monotonic()
            readable, _, _ = select.select(
                [self._from_browser], [], [], max(0, remaining)
            )
            if not readable:
                raise TimeoutError(f"Chromium gave no {waiting_for} in time")
            chunk = os.read(self._from_browser, 1 << 16)
            if not chunk:
                raise RuntimeError(f"Chromium exited while waiting for {waiting_for}")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def _record(self, message):
        if "method" not in message:
            return
        self._events.append(message)
        params = message.get("params", {})
        if message["method"] == "Runtime.consoleAPICalled" and params["type"] in (
            "error",
            "assert",
        ):
            self.errors.append(
                " ".join(
                    str(arg.get("value", arg.get("description")))
                    for arg in params["args"]
                )
            )
        elif message["method"] == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            thrown = details.get("exception", {}).get("description")
            self.errors.append(thrown or details.get("text", "exception"))
        elif (
            message["method"] == "Log.entryAdded"
            and params["entry"]["level"] == "error"
        ):
            entry = params["entry"]
            self.errors.append(f"{entry['text']} {entry.get('url', '')}".strip())
