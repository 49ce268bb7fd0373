"""The sidebar and the magics together in a real JupyterLab, driven in headless Chromium as a user drives them:
two notebooks on two sandboxes, `cellbox stop` under an open notebook, a name already taken, and the error
banner's contrast in the light and dark themes.

Kernels are real (the venv's ipykernel); JupyterLab runs as installed, with every Jupyter and cellbox directory in
a tmp dir (see browserhelp).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from browserhelp import Lab, expect, kernel_idle, open_sidebar, running_lab, shot
from browserhelp import cellbox_command as _cellbox
from browserhelp import cells as _cells
from browserhelp import notebook as _notebook
from browserhelp import run_cell as _run_cell
from browserhelp import started as _started

from cellbox.common import endpoint
from cellbox.local.testing import RunningServer, wait_until

pytestmark = pytest.mark.slow


def _open_from_file_browser(page, name: str) -> None:
    """Double-click `name` in the file browser, then come back to the Containers panel (they share the left side)."""
    page.locator('.jp-SideBar.jp-mod-left .lm-TabBar-tab[data-id="filebrowser"]').click()
    page.locator(".jp-DirListing-item", has_text=name).dblclick()
    expect(_document_tab(page, name)).to_have_class(re.compile(r"\blm-mod-current\b"))
    page.locator('.jp-SideBar.jp-mod-left .lm-TabBar-tab[data-id="cellbox-sidebar"]').click()


def _document_tab(page, name: str):
    return page.locator("#jp-main-dock-panel .lm-TabBar-tab", has_text=name)


def _run_all(page) -> None:
    """Run ▸ Run All, in the notebook on screen."""
    kernel_idle(page)
    for _ in range(3):
        # A click in its first cell makes it the current widget (the menu's notebook items are disabled until then).
        _cells(page).first.locator(".jp-InputArea-editor").click()
        page.locator(".lm-MenuBar-item", has_text=re.compile(r"^Run$")).click()
        page.locator('.lm-Menu-item[data-command="runmenu:run-all"]').click()  # enabled once a notebook is in front
        if _started(_cells(page).first):
            return
    raise AssertionError("Run All ran nothing, three times")


# The first element of the panel that cuts `element` off (overflow other than visible, and the element not wholly
# inside it), or "" when the user sees it whole: a mark shown as "this n…" is a mark the user can't read. (Above
# the panel, JupyterLab's shell lays its widgets out absolutely: its boxes say nothing about clipping.)
_CLIPPED_BY = """
element => {
  const box = element.getBoundingClientRect();
  if (element.scrollWidth > element.clientWidth) return 'its own box';
  for (let node = element.parentElement; node; node = node.parentElement) {
    const style = getComputedStyle(node);
    const frame = node.getBoundingClientRect();
    const clips = style.overflowX !== 'visible' || style.overflowY !== 'visible';
    if (clips && (box.left < frame.left - 0.5 || box.right > frame.right + 0.5 ||
                  box.top < frame.top - 0.5 || box.bottom > frame.bottom + 0.5)) return node.className;
    if (node.id === 'cellbox-sidebar') break;
  }
  return '';
}
"""


def _expect_readable(mark, text: str) -> None:
    expect(mark).to_have_text(text)
    clipped = mark.evaluate(_CLIPPED_BY)
    assert clipped == "", f"the {text!r} mark is cut off by {clipped}"


def _refresh(panel) -> None:
    panel.locator('[data-action="refresh"]').click()


def _name(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(3)}"  # the session's server outlives the test: names must not repeat


def _live(server: RunningServer, name: str) -> list[dict]:
    reply = httpx.get(f"{server.base_url}/containers", params={"limit": 100}, headers=server.headers)
    reply.raise_for_status()
    return [box for box in reply.json()["data"] if box["name"] == name and box["status"] not in ("deleted", "expired")]


@pytest.fixture
def name(use_local_server: RunningServer) -> Iterator[Callable[[str], str]]:
    """`name("prefix")`: a fresh container name; the session's server is left without the test's containers (other
    browser tests expect to start from an empty list, and each container holds a kernel)."""
    made: list[str] = []

    def fresh(prefix: str) -> str:
        made.append(_name(prefix))
        return made[-1]

    yield fresh
    for each in made:
        for box in _live(use_local_server, each):
            httpx.delete(f"{use_local_server.base_url}/containers/{box['id']}", headers=use_local_server.headers)


# --- 1. two notebooks, two sandboxes ----------------------------------------------------------------------------


def test_two_notebooks_each_see_their_own_sandbox_marked(lab: Lab, page, name: Callable[[str], str]) -> None:
    first, second = name("first-nb"), name("second-nb")
    # One notebook makes its sandbox with `%container new`, the other names it in a `%%container` cell after making
    # it (a name finds a container, never makes one): both record it.
    _notebook(lab, "first.ipynb", f"%load_ext cellbox\n%container new {first}")
    _notebook(
        lab,
        "second.ipynb",
        f"%load_ext cellbox\n%container new {second}\n%container use {first}",
        f"%%container {second}\nprint('ran in', {second!r})",
    )

    _, panel = open_sidebar(page, lab, "first.ipynb")
    _run_all(page)
    expect(_cells(page).nth(0).locator(".jp-Cell-outputArea")).to_contain_text(first)
    _open_from_file_browser(page, "second.ipynb")
    _run_all(page)
    expect(_cells(page).nth(1).locator(".jp-Cell-outputArea")).to_contain_text(f"ran in {second}")

    # Each kernel says which container it uses; the panel shows it on the next refresh.
    _refresh(panel)
    first_row = panel.locator(".jp-cellbox-container", has_text=first)
    second_row = panel.locator(".jp-cellbox-container", has_text=second)
    mark = ".jp-cellbox-inuse"

    # second.ipynb is the notebook in front: its sandbox is "this notebook", the other one is used elsewhere.
    _expect_readable(second_row.locator(mark), "this notebook")
    expect(second_row).to_have_class(re.compile(r"\bjp-mod-current\b"))
    _expect_readable(first_row.locator(mark), "in use")
    expect(first_row).not_to_have_class(re.compile(r"\bjp-mod-current\b"))
    shot(page, "11-two-notebooks-second-active")

    # Bringing first.ipynb to the front swaps the marks: each row follows its own notebook.
    _document_tab(page, "first.ipynb").click()
    _expect_readable(first_row.locator(mark), "this notebook")
    expect(first_row).to_have_class(re.compile(r"\bjp-mod-current\b"))
    _expect_readable(second_row.locator(mark), "in use")
    expect(second_row).not_to_have_class(re.compile(r"\bjp-mod-current\b"))
    shot(page, "12-two-notebooks-first-active")

    # And the marks are the notebooks' own kernels: the sidebar's answer pairs each notebook's kernel (as Jupyter's
    # sessions name it) with the container of that name.
    kernels = {session["path"]: session["kernel"]["id"] for session in lab.get("api/sessions").json()}
    listed = lab.get("cellbox/api/containers").json()
    ids = {box["name"]: box["id"] for box in listed["data"]}
    assert listed["in_use"].get(kernels["first.ipynb"]) == ids[first], listed["in_use"]
    assert listed["in_use"].get(kernels["second.ipynb"]) == ids[second], listed["in_use"]


# --- 2. `cellbox stop` under an open notebook -------------------------------------------------------------------


def _left_running(state_dir: Path) -> list[int]:
    """The processes started with this state folder that still run (zombies don't count): whatever a test's
    JupyterLab started, found by the environment it passed down, never by a name."""
    marker = f"CELLBOX_STATE_DIR={state_dir}".encode()
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if not proc.name.isdigit() or marker not in (proc / "environ").read_bytes().split(b"\0"):
                continue
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if state != "Z":
            found.append(int(proc.name))
    return found


def _end_left_running(state_dir: Path) -> None:
    for pid in _left_running(state_dir):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    wait_until(lambda: not _left_running(state_dir), timeout=30, interval=0.2, what=f"the processes of {state_dir}")


def test_a_cell_after_cellbox_stop_runs_on_a_new_local_server(page, tmp_path: Path) -> None:
    # Nothing configured: the first use starts the local server, found through the endpoint file in tmp_path.
    state_dir = tmp_path / "state"
    try:
        with running_lab(tmp_path, None, None) as lab:
            assert lab.env["CELLBOX_STATE_DIR"] == str(state_dir)
            endpoint_file = state_dir / "server.json"
            box = _name("survivor")
            _notebook(
                lab,
                "analysis.ipynb",
                f"%load_ext cellbox\n%container new {box}",
                f"%%container {box}\nprint('before', 6 * 7)",
                f"%%container {box}\nprint('after', 6 * 7)",
            )
            _, panel = open_sidebar(page, lab, "analysis.ipynb")
            cells = _cells(page)
            _run_cell(page, 0)
            _run_cell(page, 1)
            expect(cells.nth(1).locator(".jp-Cell-outputArea")).to_contain_text("before 42", timeout=40_000)
            before = endpoint.read(endpoint_file)
            assert before is not None and before.pid is not None

            stopped = _cellbox(lab, "stop")
            assert stopped.returncode == 0, stopped.stderr
            assert f"stopped the local server at {before.base_url}" in stopped.stdout
            wait_until(lambda: before.pid not in _left_running(state_dir), timeout=10, what="the server to exit")

            # The open notebook's next cell just works: its client finds the server gone, starts one and retries.
            _run_cell(page, 2)
            output = cells.nth(2).locator(".jp-Cell-outputArea")
            expect(output).to_contain_text("after 42", timeout=40_000)
            # The sandbox's Python state did not survive its server, and the notebook says so rather than leaving
            # the user to find out from a NameError.
            expect(output).to_contain_text("variables and imports of earlier cells are gone")
            expect(output).not_to_contain_text("Error")
            after = endpoint.read(endpoint_file)
            assert after is not None and after.pid != before.pid

            # The sidebar follows too: a refresh reads the endpoint file again and lists the new server's sandbox.
            _refresh(panel)
            expect(panel.locator(".jp-cellbox-error")).to_have_count(0)
            expect(panel.locator(".jp-cellbox-backend")).to_contain_text(after.base_url.split("//", 1)[1])
            expect(panel.locator(".jp-cellbox-container", has_text=box)).to_be_visible()
            shot(page, "13-after-cellbox-stop")
    finally:
        # The local server outlives JupyterLab by design (and the open page's sidebar may start one again until
        # JupyterLab is gone): once it is, whatever it started with this test's state folder is ended.
        _end_left_running(state_dir)


# --- 3. a name already in use -----------------------------------------------------------------------------------


def test_the_sidebar_refuses_a_name_already_in_use(
    lab: Lab, page, use_local_server: RunningServer, name: Callable[[str], str]
) -> None:
    _, panel = open_sidebar(page, lab)
    form = panel.locator("form.jp-cellbox-form")
    name_field = form.locator('input[name="name"]')
    create = form.get_by_role("button", name="Create")

    # A container the panel made itself: asking for its name again is refused in the form, before any request.
    taken = name("taken")
    panel.locator('[data-action="new"]').click()
    name_field.fill(taken)
    create.click()
    expect(panel.locator(".jp-cellbox-container", has_text=taken)).to_be_visible()
    expect(form).to_be_hidden()

    panel.locator('[data-action="new"]').click()
    name_field.fill(taken)
    alert = form.locator(".jp-cellbox-form-error")
    expect(alert).to_have_text(
        f'A container named "{taken}" is already running. Pick another name, or select it in the list.'
    )
    expect(create).to_be_disabled()
    name_field.press("Enter")  # submitting with the keyboard is refused the same way
    shot(page, "14-name-taken-in-form")
    expect(form).to_be_visible()
    assert len(_live(use_local_server, taken)) == 1

    # A container the panel has not seen yet (another client made it, and the list is not refreshed): the server
    # extension refuses it, and the user reads why.
    panel.locator(".jp-cellbox-autorefresh input").uncheck()
    elsewhere = name("elsewhere")
    made = httpx.post(
        f"{use_local_server.base_url}/containers", json={"name": elsewhere}, headers=use_local_server.headers
    )
    made.raise_for_status()
    name_field.fill(elsewhere)
    expect(alert).to_have_count(0)  # the panel can't know yet
    create.click()
    toast = page.locator(".jp-toast-message", has_text=f"Could not create {elsewhere}")
    # (JupyterLab cuts a toast's text at 140 characters: the conflict is said first, the container id after it.)
    expect(toast).to_contain_text(
        f'Could not create {elsewhere}: A container named "{elsewhere}" is already running: pick another name'
    )
    expect(name_field).to_have_value(elsewhere)  # the form stays, with the name to change
    shot(page, "15-name-taken-on-server")
    assert [box["id"] for box in _live(use_local_server, elsewhere)] == [made.json()["id"]]


# --- 4. the error banner's contrast -----------------------------------------------------------------------------

_RGB = re.compile(r"^rgba?\(\s*([\d.]+)[\s,]+([\d.]+)[\s,]+([\d.]+)(?:[\s,/]+([\d.]+%?))?\s*\)$")


def _rgba(css: str) -> tuple[float, float, float, float]:
    found = _RGB.match(css)
    assert found, f"not an rgb() colour: {css!r}"
    red, green, blue, alpha = found.groups()
    if alpha is None:
        opacity = 1.0
    elif alpha.endswith("%"):
        opacity = float(alpha[:-1]) / 100
    else:
        opacity = float(alpha)
    return float(red), float(green), float(blue), opacity


def _over(top: tuple[float, float, float, float], under: tuple[float, float, float]) -> tuple[float, float, float]:
    """`top` painted over the opaque colour `under` (alpha compositing)."""
    alpha = top[3]
    red, green, blue = (alpha * t + (1 - alpha) * u for t, u in zip(top[:3], under, strict=True))
    return red, green, blue


def _luminance(rgb: tuple[float, float, float]) -> float:
    """WCAG 2 relative luminance of an sRGB colour (0-255 channels)."""

    def linear(channel: float) -> float:
        c = channel / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    red, green, blue = (linear(c) for c in rgb)
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def _contrast(one: tuple[float, float, float], two: tuple[float, float, float]) -> float:
    light, dark = sorted((_luminance(one), _luminance(two)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


# The banner's text colour and the backgrounds under it, from the element up to the first opaque one: what the
# browser actually painted, whatever rule or theme variable produced it.
_PAINTED = """
element => {
  const layers = [];
  for (let node = element; node; node = node.parentElement) {
    const style = getComputedStyle(node);
    layers.push({tag: node.tagName + (node.className ? '.' + String(node.className).split(' ').join('.') : ''),
                 background: style.backgroundColor, image: style.backgroundImage, opacity: style.opacity});
    if (style.backgroundColor.startsWith('rgb(')) break;  // opaque: rgba() only when alpha < 1
  }
  return {color: getComputedStyle(element).color, layers};
}
"""


@pytest.mark.parametrize("theme", ["JupyterLab Light", "JupyterLab Dark"])
def test_the_error_banner_is_readable_in_the_theme(page, tmp_path: Path, theme: str) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]  # nothing listens there once the block ends
    with running_lab(tmp_path, f"http://127.0.0.1:{closed}/v1", "sk-never-shown", theme=theme) as lab:
        _, panel = open_sidebar(page, lab)
        expect(page.locator("body")).to_have_attribute("data-jp-theme-name", theme)
        banner = panel.locator(".jp-cellbox-error")
        expect(banner).to_contain_text("could not connect", timeout=30_000)
        expect(banner).to_be_visible()
        screenshot = tmp_path / f"error-banner-{theme.split()[-1].lower()}.png"
        page.screenshot(path=str(screenshot))

        painted = banner.evaluate(_PAINTED)
        layers = painted["layers"]
        assert all(layer["image"] == "none" for layer in layers), f"a background image under the text: {layers}"
        assert all(float(layer["opacity"]) == 1 for layer in layers), f"a translucent layer: {layers}"
        # From the first opaque background (or the page's white canvas when there is none) up to the banner.
        background: tuple[float, float, float] = (255.0, 255.0, 255.0)
        for layer in reversed(layers):
            background = _over(_rgba(layer["background"]), background)
        text = _over(_rgba(painted["color"]), background)
        ratio = _contrast(text, background)
        detail = json.dumps(painted, indent=1)
        assert ratio >= 4.5, (
            f"{theme}: the error banner's text has contrast {ratio:.2f}:1 (WCAG AA needs 4.5:1) — text {text} "
            f"on {background}; screenshot {screenshot}\n{detail}"
        )
