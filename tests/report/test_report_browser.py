"""report.html in a real browser: headless Chromium renders the report of a small compare run
(the real runner, report_fakes.write_move_workload) at a laptop's width, 1366x900, and every
figure must load, be drawn with a size, and not be blank; the page must not scroll sideways.

The page is probed through a copy of report.html with a script appended that writes what the
browser saw into the DOM (``--dump-dom``); the report itself has no script. Skipped, saying
so, only where Chromium is not installed (``apt-get install chromium``; README, command 2).
"""

import json
import re
import shutil
import subprocess

import pytest

from report_fakes import MACHINE, write_move_workload

from hwemu.report.compare import compare

WIDTH, HEIGHT = 1366, 900

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(n)), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None,
                                reason="Chromium is not installed (apt-get install chromium)")

# For each <img>: did it load, its natural and drawn size, and the share of its pixels that
# are not the background (the top-left pixel's colour); then the page's scroll width.
PROBE = """
<script>
window.addEventListener("load", () => {
  const out = [];
  for (const img of document.images) {
    let ink = -1;
    if (img.complete && img.naturalWidth > 0) {
      const c = document.createElement("canvas");
      c.width = img.naturalWidth; c.height = img.naturalHeight;
      const g = c.getContext("2d");
      g.drawImage(img, 0, 0);
      const d = g.getImageData(0, 0, c.width, c.height).data;
      let n = 0;
      for (let i = 0; i < d.length; i += 4) {
        if (Math.abs(d[i] - d[0]) + Math.abs(d[i + 1] - d[1]) + Math.abs(d[i + 2] - d[2]) > 30) n++;
      }
      ink = n / (c.width * c.height);
    }
    const r = img.getBoundingClientRect();
    out.push({alt: img.alt, complete: img.complete, nw: img.naturalWidth,
              nh: img.naturalHeight, w: r.width, h: r.height, ink: ink});
  }
  const pre = document.createElement("pre");
  pre.id = "probe";
  pre.textContent = JSON.stringify({images: out,
                                    scrollWidth: document.documentElement.scrollWidth,
                                    clientWidth: document.documentElement.clientWidth});
  document.body.appendChild(pre);
});
</script>
"""


def chromium(*args, timeout=120):
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                           "--hide-scrollbars", f"--window-size={WIDTH},{HEIGHT}", *args],
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    d = write_move_workload(tmp_path_factory.mktemp("browser"))
    out = d / "out"
    compare(machines=[MACHINE], traces=[str(d / "move.parquet")],
            policies=["manual", "autonuma"], schedule=str(d / "move.toml"), out=out)
    return out


def probe(html_path):
    """What Chromium saw on the page at ``html_path`` (a probe copy beside it)."""
    text = html_path.read_text()
    copy = html_path.with_name("probe-" + html_path.name)
    copy.write_text(text.replace("</body>", PROBE + "</body>"))
    r = chromium("--virtual-time-budget=20000", "--dump-dom", copy.as_uri())
    m = re.search(r'<pre id="probe">(.*?)</pre>', r.stdout, re.S)
    assert m, f"no probe result from Chromium (exit {r.returncode}): {r.stderr[-2000:]}"
    return json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&")
                      .replace("&lt;", "<").replace("&gt;", ">"))


def test_every_figure_loads_and_is_drawn(report):
    seen = probe(report / "report.html")
    imgs = seen["images"]
    kinds = sorted({i["alt"].split("-")[0] for i in imgs})
    assert kinds == ["headline", "latency", "placement", "steps"], kinds
    for img in imgs:
        assert img["complete"] and img["nw"] > 0 and img["nh"] > 0, f"broken image: {img}"
        assert img["w"] > 200 and img["h"] > 100, f"image drawn too small: {img}"
        assert img["w"] <= WIDTH, f"image wider than the window: {img}"
        assert img["ink"] > 0.01, f"empty figure (under 1% of pixels drawn): {img}"
    assert seen["scrollWidth"] <= seen["clientWidth"], \
        f"the page scrolls sideways at {WIDTH} px: {seen['scrollWidth']} px wide"


def test_probe_catches_broken_and_empty_images(tmp_path):
    """The check above can fail: a broken image and a blank one are reported as such."""
    import base64
    import io

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(4, 3))
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    blank = base64.b64encode(buf.getvalue()).decode()
    page = tmp_path / "bad.html"
    page.write_text('<!DOCTYPE html><html><body><img alt="broken" src="missing.png">'
                    f'<img alt="blank" src="data:image/png;base64,{blank}"></body></html>')
    imgs = {i["alt"]: i for i in probe(page)["images"]}
    assert imgs["broken"]["nw"] == 0
    assert imgs["blank"]["nw"] > 0 and imgs["blank"]["ink"] == 0.0


def test_screenshot_at_laptop_width(report, tmp_path):
    """The page renders to a screenshot (docs/reports.md shows one made this way)."""
    shot = tmp_path / "report.png"
    r = chromium(f"--screenshot={shot}", (report / "report.html").as_uri())
    assert r.returncode == 0 and shot.is_file(), r.stderr[-2000:]
    assert shot.read_bytes()[:4] == b"\x89PNG"
