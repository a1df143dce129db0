"""The live page in headless Chromium (Debian's chromium + chromium-driver, via Selenium), loaded
from a running `csi-edge run` fed by simulated nodes: live values and traces per node, the offline
state, the room overview. Screenshots are kept in tests/artifacts/ (git-ignored)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import free_port

ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"

pytestmark = pytest.mark.slow


def _driver():
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("selenium is not installed (pip install -e '.[dev]')")
    if not (Path(CHROMIUM).exists() and Path(DRIVER).exists()):
        pytest.skip("chromium / chromium-driver not installed (scripts/test installs them with apt-get as root)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--window-size=1300,1000", "--disable-dev-shm-usage"):
        opts.add_argument(flag)
    return webdriver.Chrome(service=Service(executable_path=DRIVER), options=opts)


def _wait(pred, timeout: float, every: float = 0.5):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = pred()
            if last:
                return last
        except Exception:  # noqa: BLE001 - the page is still loading
            pass
        time.sleep(every)
    return last


def test_live_page_shows_values_traces_offline_and_rooms(tmp_path):
    from csi_edge.sources.simnode import SimFleet, SimNodeSpec

    udp, http = free_port(socket.SOCK_DGRAM), free_port()
    cfg = tmp_path / "gateway.toml"
    cfg.write_text(
        f'[ingest]\nudp = ["127.0.0.1:{udp}"]\noffline_after_s = 3.0\n'
        f'[models]\npose = ""\n[sinks]\nconsole = false\nhttp = "127.0.0.1:{http}"\n'
    )
    gw = subprocess.Popen([sys.executable, "-m", "csi_edge", "run", "-c", str(cfg)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    sim = subprocess.Popen(
        [sys.executable, "-m", "csi_edge", "simulate-nodes", "--target", f"127.0.0.1:{udp}",
         "--nodes", "2", "--rate", "20", "--scenario", "still", "--duration", "90"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    import asyncio

    # a third node that sends for 3 s and goes quiet: it must show as offline
    short = SimFleet([SimNodeSpec(node_id=9, rate_hz=20)], ("127.0.0.1", udp))
    t = threading.Thread(target=lambda: asyncio.run(short.run(3.0)), daemon=True)
    driver = None
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        driver = _driver()
        url = f"http://127.0.0.1:{http}/"
        assert _wait(lambda: (driver.get(url), True)[1] and "csi-edge live" in driver.title, 60)
        t.start()  # the gateway listens now: the short-lived node's frames all arrive

        def cards():
            return {el.get_attribute("data-node"): el
                    for el in driver.find_elements("css selector", ".node")}

        assert _wait(lambda: {"127.0.0.1#1", "127.0.0.1#2", "127.0.0.1#9"} <= set(cards()), 30), driver.page_source[:2000]
        # the quiet node turns offline, with its last-frame age instead of a frame rate
        assert _wait(lambda: cards()["127.0.0.1#9"].get_attribute("data-state") == "offline", 30)
        offline = cards()["127.0.0.1#9"]
        assert "offline" in offline.find_element("css selector", ".state").text
        assert "Hz" not in offline.find_element("css selector", ".link").text

        def breathing_everywhere():
            c = cards()
            return all(c[k].get_attribute("data-breathing") for k in ("127.0.0.1#1", "127.0.0.1#2"))

        assert _wait(breathing_everywhere, 60), driver.page_source[:3000]
        time.sleep(3)  # a few more points on the traces
        driver.save_screenshot(str(ARTIFACTS / "live_page.png"))
        for key in ("127.0.0.1#1", "127.0.0.1#2"):
            el = cards()[key]
            bpm = float(el.get_attribute("data-breathing"))
            assert 8.0 < bpm < 25.0, bpm  # the simulated person breathes at ~15/min
            assert "bpm" in el.find_element("css selector", ".bpm").text
            assert "Hz" in el.find_element("css selector", ".link").text
            assert el.get_attribute("data-state") == "online"
            trace = int(el.find_element("css selector", "canvas.trace").get_attribute("data-points"))
            timeline = int(el.find_element("css selector", "canvas.timeline").get_attribute("data-points"))
            assert trace >= 2 and timeline >= 10, (trace, timeline)
            # the trace canvas really has pixels drawn
            drawn = driver.execute_script(
                "const c=arguments[0];const d=c.getContext('2d').getImageData(0,0,c.width,c.height).data;"
                "let n=0;for(let i=0;i<d.length;i+=4){if(d[i+2]>200&&d[i]<120)n++;}return n;",
                el.find_element("css selector", "canvas.trace"),
            )
            assert drawn > 10, drawn
            el.screenshot(str(ARTIFACTS / f"node_{key.replace('#', '_').replace('.', '_')}.png"))
        # the page redraws once a second: read each element afresh (a kept one goes stale)
        def room_text() -> str:
            return driver.find_element("css selector", ".room").text

        assert _wait(lambda: "someone here" in room_text() and "2/3 nodes online" in room_text(),
                     10), room_text()  # fmt: skip
        assert _wait(lambda: "degraded" in driver.find_element("id", "health").text, 10)
    finally:
        if driver is not None:
            if ARTIFACTS.exists():
                driver.save_screenshot(str(ARTIFACTS / "live_page_end.png"))
            driver.quit()
        sim.terminate()
        sim.wait(10)
        gw.terminate()
        _, err = gw.communicate(timeout=30)
        if t.is_alive() or t.ident is not None:
            t.join(5)
    assert gw.returncode == 0, err
    assert "Traceback" not in err
