"""What a student meets in JupyterLab, in a real browser: the lessons' links open, a lesson runs clean.

JupyterLab starts as ``make lab`` starts it (the options of the Makefile's ``lab`` recipe: the
repository root served, the file browser in ``notebooks/``), on a free port of 127.0.0.1 with a
token and no browser of its own. Headless Chromium, driven by Selenium through Debian's
``chromium-driver``, then

- opens every lesson, clicks its glossary link and sees ``docs/glossary.md`` open;
- runs ``00_setup_check.ipynb`` with Run -> Run All Cells and finds no error, nothing on stderr
  and no ``Out[...]`` of a cell that ends with a bare ``claim(...)``.

Nothing is saved: autosave is off, the server is stopped with the notebooks unsaved, and the
checkpoint folders JupyterLab makes on opening a file are removed. Skipped,
with the reason, where Chromium, its driver or Selenium is not installed (Debian:
``apt-get install chromium chromium-driver``; Selenium is in the ``dev`` extra).
"""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from urllib.parse import urlparse
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LESSONS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
SHORT_LESSON = ROOT / "notebooks" / "00_setup_check.ipynb"
PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden) "   # the notebook on show
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1280,900"]


def _ends_with_bare_claim(source: str) -> bool:
    """Whether a code cell's last statement is a ``claim(...)`` call whose value Jupyter would show."""
    try:
        body = ast.parse(source).body
    except SyntaxError:
        return False
    last = body[-1] if body else None
    return (isinstance(last, ast.Expr) and isinstance(last.value, ast.Call)
            and ast.unparse(last.value.func) == "claim" and not source.rstrip().endswith(";"))


def test_no_lesson_cell_ends_with_a_bare_claim():
    """A claim returns its value: as a cell's last line it would print an unexplained ``Out[...]``."""
    bare = [f"{path.name}, cell {i}" for path in LESSONS
            for i, cell in enumerate(json.loads(path.read_text(encoding="utf-8"))["cells"])
            if cell["cell_type"] == "code" and _ends_with_bare_claim("".join(cell["source"]))]
    assert not bare, f"end these cells' claim(...) with ';' (or assign it): {bare}"


# --------------------------------------------------------------------------- the browser


def _lab_options() -> list[str]:
    """The options ``make lab`` gives ``jupyter lab`` (its recipe in the Makefile, without LAB_ARGS)."""
    recipe = re.search(r"^lab:.*\n\t\$\(BIN\)/jupyter lab (.*)$", (ROOT / "Makefile").read_text(), re.M)
    assert recipe, "the Makefile's lab target should run $(BIN)/jupyter lab"
    return [a for a in shlex.split(recipe.group(1)) if a != "$(LAB_ARGS)"]


def test_make_lab_serves_the_repository_and_opens_notebooks():
    options = _lab_options()
    assert "--ServerApp.root_dir=." in options, options
    assert "--FileContentsManager.preferred_dir=notebooks" in options, options


def _browser_or_skip() -> tuple[str, str]:
    """Chromium and chromedriver's paths, or a skip that says what to install."""
    pytest.importorskip("selenium", reason="Selenium is not installed (pip install -e '.[dev]')")
    chromium = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip("no Chromium and chromedriver on PATH (Debian: apt-get install chromium chromium-driver)")
    return chromium, driver


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """``(url, token)`` of a JupyterLab started as ``make lab`` starts it; stopped afterwards."""
    _browser_or_skip()
    from jupyter_client.kernelspec import KernelSpecManager

    kernel = json.loads(SHORT_LESSON.read_text(encoding="utf-8"))["metadata"]["kernelspec"]["name"]
    if kernel not in KernelSpecManager().find_kernel_specs():
        pytest.skip(f"the lessons' kernel {kernel!r} is not registered (make venv registers it)")
    home = tmp_path_factory.mktemp("lab")
    settings = home / "settings"
    for plugin, values in {"docmanager-extension/plugin": {"autosave": False},
                           "notebook-extension/tracker": {"windowingMode": "none"},
                           "apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False}}.items():
        path = settings / "@jupyterlab" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    port, token = _free_port(), os.urandom(12).hex()
    env = dict(os.environ, JUPYTERLAB_SETTINGS_DIR=str(settings), JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"),
               JUPYTER_RUNTIME_DIR=str(home / "runtime"),
               PYTHONPATH=os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    command = [sys.executable, "-m", "jupyter", "lab", *_lab_options(), "--no-browser", "--ServerApp.ip=127.0.0.1",
               f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:   # CI containers run as root
        command.append("--allow-root")
    checkpoints_before = set(ROOT.glob("*/.ipynb_checkpoints"))   # JupyterLab makes one per opened file's folder
    log = open(home / "server.log", "wb")
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2).read()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not start: {(home / 'server.log').read_text()[-2000:]}")
                time.sleep(0.3)
        yield url, token
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
        for folder in set(ROOT.glob("*/.ipynb_checkpoints")) - checkpoints_before:
            shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def browser(lab):
    """A headless Chromium (fresh profile) logged in to the JupyterLab above."""
    chromium, driver_path = _browser_or_skip()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(60)
    try:
        url, token = lab
        driver.get(f"{url}/lab?token={token}")   # the token becomes a cookie for the pages below
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _wait(driver, what: str, condition, timeout: float = 30.0):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(condition, message=f"timed out waiting for {what}")


def _current_tab(driver) -> str:
    from selenium.webdriver.common.by import By

    tabs = driver.find_elements(By.CSS_SELECTOR, "#jp-main-dock-panel .lm-TabBar-tab.lm-mod-current .lm-TabBar-tabLabel")
    return tabs[0].text if tabs else ""


@pytest.fixture(scope="module")
def file_browser(browser, lab):
    """JupyterLab's start page (no tabs restored), once its file browser lists the lessons."""
    from selenium.webdriver.common.by import By

    url, _ = lab
    browser.get(f"{url}/lab?reset")
    _wait(browser, "the file browser to list the lessons", lambda d: {p.name for p in LESSONS} <= {
        e.text.split("\n")[0] for e in d.find_elements(By.CSS_SELECTOR, ".jp-DirListing-item")}, timeout=60)
    return browser


def test_make_lab_opens_the_notebooks_folder_first(file_browser):
    from selenium.webdriver.common.by import By

    crumbs = file_browser.find_element(By.CSS_SELECTOR, ".jp-FileBrowser .jp-BreadCrumbs").text
    assert crumbs.strip("/ ") == "notebooks", crumbs


def _open(browser, notebook: Path) -> None:
    """Double-click ``notebook`` in the file browser; back once its tab is on show and rendered."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    item = [e for e in browser.find_elements(By.CSS_SELECTOR, ".jp-DirListing-item") if e.text.split("\n")[0] == notebook.name]
    assert item, f"{notebook.name} is not in the file browser"
    ActionChains(browser).double_click(item[0]).perform()
    _wait(browser, f"{notebook.name} to open", lambda d: _current_tab(d) == notebook.name
          and d.find_elements(By.CSS_SELECTOR, PANEL + ".jp-RenderedMarkdown"))


@pytest.mark.parametrize("lesson", LESSONS, ids=[p.stem for p in LESSONS])
def test_the_glossary_link_opens(file_browser, lesson):
    """Open the lesson from the file browser, click its glossary link: docs/glossary.md opens."""
    from selenium.webdriver.common.by import By

    browser = file_browser
    _open(browser, lesson)
    link = _wait(browser, "a glossary link", lambda d: [a for a in d.find_elements(By.CSS_SELECTOR, PANEL + ".jp-RenderedMarkdown a")
                                                      if urlparse(a.get_attribute("href") or "").path.endswith("/docs/glossary.md")])[0]
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", link)
    link.click()
    _wait(browser, "glossary.md to open in a tab", lambda d: _current_tab(d) == "glossary.md")
    text = _wait(browser, "the glossary's text", lambda d: " ".join(
        e.text for e in d.find_elements(By.CSS_SELECTOR, "#jp-main-dock-panel .jp-FileEditor, #jp-main-dock-panel .jp-RenderedMarkdown")
        if e.is_displayed()) or None)
    assert "glossary" in text.lower(), text[:300]


def test_run_all_of_the_short_lesson_is_clean(file_browser):
    """Run -> Run All Cells on lesson 0: no error, no stderr, no Out[...] of a claim."""
    from selenium.webdriver.common.by import By

    browser = file_browser
    _open(browser, SHORT_LESSON)
    _wait(browser, "the kernel to be idle", lambda d: d.find_elements(
        By.CSS_SELECTOR, PANEL + ".jp-Notebook-ExecutionIndicator[data-status='idle']"), timeout=60)
    browser.find_element(By.XPATH, "//div[contains(@class,'lm-MenuBar-itemLabel') and text()='Run']").click()
    _wait(browser, "Run All Cells in the Run menu", lambda d: d.find_elements(
        By.CSS_SELECTOR, "li.lm-Menu-item[data-command='runmenu:run-all']"))[0].click()
    sources = [c for c in json.loads(SHORT_LESSON.read_text(encoding="utf-8"))["cells"]]

    def finished(d):
        prompts = [p.text for p in d.find_elements(By.CSS_SELECTOR, PANEL + ".jp-CodeCell .jp-InputPrompt")]
        done = len(prompts) == sum(c["cell_type"] == "code" for c in sources) and all(re.fullmatch(r"\[\d+\]:", p) for p in prompts)
        return done and d.find_elements(By.CSS_SELECTOR, PANEL + ".jp-Notebook-ExecutionIndicator[data-status='idle']")

    _wait(browser, "Run All to finish", finished, timeout=120)
    stderr = [e.text[:300] for e in browser.find_elements(
        By.CSS_SELECTOR, PANEL + ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")]
    assert not stderr, f"error or stderr output after Run All: {stderr}"
    cells = browser.find_elements(By.CSS_SELECTOR, PANEL + ".jp-Notebook > .jp-Cell, " + PANEL + ".jp-WindowedPanel-viewport > .jp-Cell")
    assert len(cells) == len(sources), (len(cells), len(sources))
    stray = [i for i, (cell, source) in enumerate(zip(cells, sources))
             if source["cell_type"] == "code" and _ends_with_bare_claim("".join(source["source"]))
             and cell.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-executeResult")]
    assert not stray, f"cells {stray} show the Out[...] of a claim(...)"
