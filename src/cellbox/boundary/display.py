"""What the container displays, made safe to show in the user's page.

JupyterLab renders the output of a cell it just ran as trusted: HTML with script runs, and it runs again when the
saved notebook is reopened. A container's displays are the container's code speaking, so by default only what can't
run script reaches the page:

- kept: text/plain; images as data (PNG, JPEG, GIF, WebP); JSON; text/html sanitized by nh3 (tags, attributes and
  styles from allowlists; links to http(s) and mailto only; images only inline); text/markdown with its raw HTML
  escaped and its links kept to http(s) and mailto; text/latex without the commands that make links or set
  attributes; SVG without script, event handlers, links or embedded HTML (JupyterLab shows SVG as an image);
  Vega-Lite and Plotly specs that load nothing by URL;
- dropped, and counted so the user is told once per cell: JavaScript, widget views (the container's widgets have
  no kernel to talk to here) and every other type;
- metadata rebuilt from what each kept type uses (an image's size), never passed through; display ids put in a
  name space of their own, so a container can't update the notebook's own displays.

`DisplayPolicy(trusted=True)` passes bundles through unchanged: for a sandbox that runs only the user's own code,
chosen per sandbox (`trust_output=True`, `%container new --trust-output`).
"""

from __future__ import annotations

import collections
import dataclasses
import html
import re
from collections.abc import Mapping
from typing import Any

import nh3

TEXT = "text/plain"
HTML = "text/html"
MARKDOWN = "text/markdown"
LATEX = "text/latex"
SVG = "image/svg+xml"
JSON = "application/json"
RASTER = {"image/png", "image/jpeg", "image/gif", "image/webp"}
SPECS = {
    "application/vnd.vegalite.v5+json",
    "application/vnd.vegalite.v4+json",
    "application/vnd.vegalite.v3+json",
    "application/vnd.plotly.v1+json",
}
DISPLAY_ID_PREFIX = "cellbox-container:"

# The HTML a DataFrame, a Styler-less table, text formatting and inline images need; no forms, frames, scripts,
# styles sheets or ids (which could clobber the page's own).
_TAGS = set(nh3.ALLOWED_TAGS) | {"tfoot", "caption", "font"}
_ATTRIBUTES: dict[str, set[str]] = {
    **{tag: set(names) for tag, names in nh3.ALLOWED_ATTRIBUTES.items()},
    "*": {"class", "style", "title", "align", "valign", "dir", "lang"},
    "table": {"border", "cellpadding", "cellspacing", "summary", "align", "width"},
    "font": {"color", "size"},
}
_STYLES = {
    "color", "background-color", "text-align", "vertical-align", "font-weight", "font-style",
    "font-size", "font-family", "text-decoration", "white-space", "border", "border-collapse", "border-color",
    "border-style", "border-width", "border-top", "border-bottom", "border-left", "border-right", "padding",
    "padding-top", "padding-bottom", "padding-left", "padding-right", "margin", "width", "min-width",
    "max-width", "height", "line-height", "opacity", "display",
}  # fmt: skip
_LINK_SCHEMES = {"http", "https", "mailto"}
_INLINE_IMAGE = re.compile(r"data:image/(png|jpeg|gif|webp);base64,[A-Za-z0-9+/=\s]*\Z")
_LATEX_UNSAFE = re.compile(r"\\(href|url|unicode|class|cssId|style|attr|data|html|require)\b")
_SVG_UNSAFE = re.compile(
    r"<\s*(script|foreignObject|iframe|embed|object|a\b|use\b|image\b|handler|listener)|\son\w+\s*=|"
    r"javascript:|href\s*=|data:text|@import|url\s*\(",
    re.IGNORECASE,
)
_MD_LINK = re.compile(r"(\]\(\s*)([^)\s]*)")
_MD_REFERENCE = re.compile(r"(\[[^\]]+\]:[ \t]*)(\S+)")  # anywhere: in a quote or a list item too
_UNSEEN = re.compile(r"[\x00-\x20\x7f]")
_STYLE_LOADS = re.compile(r"url\s*\(|image-set|image\s*\(|expression\s*\(|@import|\\", re.IGNORECASE)
_SCHEME = re.compile(r"\s*([A-Za-z][A-Za-z0-9+.-]*):")


def _keep_attribute(tag: str, attribute: str, value: str) -> str | None:
    # Loading a URL would tell a server the notebook was opened (or read one of the Jupyter server's own, with the
    # user's cookies): images only inline, and no style that names anything to load.
    if tag == "img" and attribute == "src":
        return value if _INLINE_IMAGE.match(value) else None
    if attribute == "style" and _STYLE_LOADS.search(html.unescape(value)):
        return None
    return value


def sanitize_html(html: str) -> str:
    """HTML that can't run script, load anything or reach the page outside its own box."""
    return nh3.clean(
        html,
        tags=_TAGS,
        clean_content_tags={"script", "style", "template", "noscript", "textarea", "title", "xmp"},
        attributes=_ATTRIBUTES,
        attribute_filter=_keep_attribute,
        url_schemes=_LINK_SCHEMES | {"data"},
        url_relative="deny",
        filter_style_properties=_STYLES,
        link_rel="noopener noreferrer nofollow",
    )


def _safe_target(target: str) -> bool:
    # As a browser reads it: entities decoded, and tabs, line breaks and control characters (which URL parsing
    # drops) gone, so `java&#10;script:` and `javascript&colon;` are seen for what they are.
    seen = _UNSEEN.sub("", html.unescape(target))
    scheme = _SCHEME.match(seen)
    if scheme is None:
        return not seen.startswith(("//", "\\\\", "/\\", "\\/"))  # relative, not to another host
    return scheme[1].lower() in _LINK_SCHEMES


def sanitize_markdown(text: str) -> str:
    """Markdown whose raw HTML is shown as text and whose links go to http(s) or mailto only (JupyterLab renders a
    trusted output's Markdown HTML unsanitized). Entities are decoded first, so none can spell a tag or a scheme;
    link definitions are found wherever Markdown finds them (in quotes and lists too)."""
    text = html.unescape(text).replace("<", "&lt;")

    def link(match: re.Match[str]) -> str:
        return match[1] + (match[2] if _safe_target(match[2]) else "#")

    return _MD_REFERENCE.sub(link, _MD_LINK.sub(link, text))


def _loads_by_url(spec: Any, depth: int = 0) -> bool:
    """Whether a Vega-Lite or Plotly spec names anything to load (data, images): a URL on the Jupyter server's own
    origin would be read with the user's cookies."""
    if depth > 64:
        return True
    if isinstance(spec, Mapping):
        for key, value in spec.items():
            if key in ("url", "usermeta", "source", "href", "loader") or _loads_by_url(value, depth + 1):
                return True
    elif isinstance(spec, list):
        return any(_loads_by_url(item, depth + 1) for item in spec)
    return False


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(line, str) for line in value):
        return "".join(value)  # nbformat's multi-line form
    return None


def _image_metadata(meta: Any) -> dict[str, Any]:
    if not isinstance(meta, Mapping):
        return {}
    kept: dict[str, Any] = {}
    for key in ("width", "height"):
        size = meta.get(key)
        if isinstance(size, (int, float)) and not isinstance(size, bool) and 0 < size < 100_000:
            kept[key] = size
    if meta.get("unconfined") is True:
        kept["unconfined"] = True
    return kept


@dataclasses.dataclass
class DisplayPolicy:
    """Cleans display bundles from one container; counts what it left out (`dropped`, by type) for the user.
    `trusted` passes everything through (the user's own code, by the user's explicit choice)."""

    trusted: bool = False
    dropped: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)

    def bundle(self, data: Any, metadata: Any, *, count: bool = True) -> tuple[dict[str, Any], dict[str, Any]]:
        """A mimebundle and its metadata as they may be shown."""
        if not isinstance(data, Mapping):
            return {}, {}
        if self.trusted:
            return dict(data), dict(metadata) if isinstance(metadata, Mapping) else {}
        meta_in = metadata if isinstance(metadata, Mapping) else {}
        clean: dict[str, Any] = {}
        meta: dict[str, Any] = {}
        for mimetype, value in data.items():
            kept = self._value(str(mimetype), value)
            if kept is None:
                if count:
                    self.dropped[_kind(str(mimetype))] += 1
                continue
            clean[mimetype] = kept
            if mimetype in RASTER or mimetype == SVG:
                sizes = _image_metadata(meta_in.get(mimetype))
                if sizes:
                    meta[mimetype] = sizes
        return clean, meta

    def _value(self, mimetype: str, value: Any) -> Any:
        if mimetype in RASTER:
            return value if isinstance(value, str) else None
        if mimetype in (JSON, *SPECS):
            if not isinstance(value, (dict, list)) or (mimetype != JSON and _loads_by_url(value)):
                return None
            return value
        text = _text(value)
        if text is None:
            return None
        if mimetype == TEXT:
            return text
        if mimetype == HTML:
            return sanitize_html(text)
        if mimetype == MARKDOWN:
            return sanitize_markdown(text)
        if mimetype == LATEX:
            return None if _LATEX_UNSAFE.search(text) else text
        if mimetype == SVG:
            return None if _SVG_UNSAFE.search(text) else text
        return None

    def event(self, event: dict[str, Any], *, count: bool = True) -> dict[str, Any]:
        """An output event with its bundle cleaned and its display id in the container's own name space."""
        if event.get("type") != "display_data":
            return event
        data, metadata = self.bundle(event.get("data"), event.get("metadata"), count=count)
        cleaned: dict[str, Any] = {"type": "display_data", "data": data, "metadata": metadata}
        transient = event.get("transient")
        display_id = transient.get("display_id") if isinstance(transient, Mapping) else None
        if isinstance(display_id, str) and display_id:
            own = display_id if self.trusted else DISPLAY_ID_PREFIX + display_id[:200]
            cleaned["transient"] = {"display_id": own}
            cleaned["update"] = bool(event.get("update"))
        return cleaned

    def notes(self) -> list[str]:
        """One line for what was left out, if anything."""
        if not self.dropped:
            return []
        what = ", ".join(f"{kind} ({n})" if n > 1 else kind for kind, n in sorted(self.dropped.items()))
        return [
            f"the container displayed {what}, not shown: output from a container can't run script in this page. "
            "For a sandbox that runs only your own code, `%container new NAME --trust-output` "
            "(Sandbox.create(..., trust_output=True)) shows everything"
        ]


def _kind(mimetype: str) -> str:
    if "javascript" in mimetype:
        return "JavaScript"
    if mimetype == "application/vnd.jupyter.widget-view+json":
        return "a widget"
    return mimetype
