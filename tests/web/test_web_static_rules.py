"""Rules over the dashboard's files themselves: no inline script or style, no third-party
asset, no HTML sink anywhere in the JavaScript, every import resolvable from the package,
every file shipped as package data."""

from __future__ import annotations

import re
import tomllib
from html.parser import HTMLParser
from pathlib import Path, PurePosixPath

from agentwatch.web.assets import ASSETS

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "src" / "agentwatch" / "web" / "static"
SCRIPTS = sorted(STATIC.rglob("*.js"))
PAGES = {"login", "overview", "alerts", "cases", "sessions", "agents", "live"}

# Ways JavaScript can turn a string into markup or code. None is used anywhere, so none can
# be used with data.
SINKS = {
    "innerHTML": r"\binnerHTML\b",
    "outerHTML": r"\bouterHTML\b",
    "insertAdjacentHTML": r"\binsertAdjacentHTML\b",
    "document.write": r"\bdocument\s*\.\s*write(ln)?\b",
    "eval": r"(?<![\w.])eval\s*\(",
    "Function constructor": r"\bnew\s+Function\b|(?<![\w.])Function\s*\(",
    "string timer": r"\bset(Timeout|Interval)\s*\(\s*[\"'`]",
    "createContextualFragment": r"\bcreateContextualFragment\b",
    "DOMParser": r"\bDOMParser\b",
    "parseHTMLUnsafe / setHTMLUnsafe": r"\b(parse|set)HTMLUnsafe\b",
    "srcdoc": r"\.srcdoc\s*=|setAttribute\(\s*[\"']srcdoc",
    "inline style": r"\.style\b|\bcssText\b",
    "href/src property": r"\.(href|src|action)\s*=(?!=)",
    "event-handler property": r"\.on[a-z]+\s*=(?!=)",
    "dynamic import": r"\bimport\s*\(",
}


def source(path: Path) -> str:
    """A script without its comments (so the module notes may name what they avoid)."""
    text = path.read_text()
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"(?m)^\s*//.*$|(?<=[;,{}()\s])//.*$", "", text)


def test_the_static_check_finds_a_sink_when_there_is_one() -> None:
    planted = 'el.innerHTML = alert.title;\nel.insertAdjacentHTML("beforeend", x);\nsetTimeout("go()", 1);'
    found = {name for name, rx in SINKS.items() if re.search(rx, planted)}
    assert found == {"innerHTML", "insertAdjacentHTML", "string timer"}


def test_no_script_uses_an_html_sink_or_a_code_sink() -> None:
    assert len(SCRIPTS) >= 9
    problems = [
        f"{path.relative_to(STATIC)}: {name}"
        for path in SCRIPTS
        for name, rx in SINKS.items()
        if re.search(rx, source(path))
    ]
    assert problems == []


def test_set_attribute_is_only_called_in_the_render_module_or_with_a_fixed_safe_name() -> None:
    for path in SCRIPTS:
        for match in re.finditer(r"setAttribute\(\s*([^,]+),", source(path)):
            name = match.group(1).strip()
            if path.name == "render.js":  # h() refuses on*, style and srcdoc and checks URL attributes
                continue
            assert re.fullmatch(r"\"[a-z-]+\"", name), f"{path.name}: setAttribute({name}, ...)"
            assert not name.strip('"').startswith("on") and name != '"style"'


def test_scripts_import_only_files_of_the_package_by_relative_paths() -> None:
    for path in SCRIPTS:
        for spec in re.findall(r"""\bimport\b[^;]*?\bfrom\s*["']([^"']+)["']""", path.read_text(), flags=re.S):
            assert spec.startswith(("./", "../")), f"{path.name} imports {spec}"
            target = (PurePosixPath(path.relative_to(STATIC).parent.as_posix()) / spec).as_posix()
            parts: list[str] = []
            for part in target.split("/"):
                if part == "..":
                    parts.pop()
                elif part != ".":
                    parts.append(part)
            assert "/".join(parts) in ASSETS, f"{path.name} imports {spec}, which is not served"


def test_no_file_loads_anything_from_another_origin() -> None:
    for path in [*SCRIPTS, *STATIC.rglob("*.css"), *STATIC.rglob("*.html")]:
        text = path.read_text()
        assert not re.search(r"""(["'(]\s*)(https?:)?//[a-z0-9]""", text, flags=re.I), path.name
        assert "@import" not in text, path.name


class Shell(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.script_text: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in = tag

    def handle_endtag(self, tag: str) -> None:
        self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "script" and data.strip():
            self.script_text.append(data)


def test_the_shell_has_no_inline_script_or_style_and_loads_only_served_files() -> None:
    shell = Shell()
    shell.feed((STATIC / "index.html").read_text())
    assert shell.script_text == []
    scripts = [a for t, a in shell.tags if t == "script"]
    assert scripts == [{"type": "module", "src": "/ui/js/app.js"}]
    assert not any(t == "style" for t, _ in shell.tags)
    for tag, attrs in shell.tags:
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, name)
            assert name != "style", tag
            if name in ("src", "href"):
                assert value is not None
                if value.startswith("/ui/"):
                    assert value.removeprefix("/ui/") in ASSETS, value
                else:
                    assert re.fullmatch(r"#/[a-z]+", value), value


def test_one_module_per_page_and_every_page_routed() -> None:
    assert {p.stem for p in (STATIC / "js" / "pages").glob("*.js")} == PAGES
    app = (STATIC / "js" / "app.js").read_text()
    for page in PAGES:
        assert f'from "./pages/{page}.js"' in app


def test_every_dashboard_file_is_package_data() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["agentwatch"]
    for name in ASSETS:
        suffix = name.rsplit(".", 1)[1]
        assert f"**/*.{suffix}" in patterns, name
    on_disk = {p.relative_to(STATIC).as_posix() for p in STATIC.rglob("*") if p.is_file()}
    assert on_disk == set(ASSETS), "a file in static/ is not served (or served but not there)"
