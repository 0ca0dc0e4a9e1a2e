"""The documentation: the README stays short and its commands parse; the MkDocs site builds
strictly, offline, with the CLI and API pages generated from the code."""

from __future__ import annotations

import html
import inspect
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

README = ROOT / "README.md"
DOCS = ROOT / "docs"
FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```", re.S | re.M)  # (info string, body)
PROGRAMS = ("spec2img", "classify")


def commands(markdown: str) -> list[str]:
    """Every ``uv run spec2img ...`` / ``uv run classify ...`` line in the fenced code blocks of
    ``markdown`` (except ``text`` blocks, which show output and mistakes), with backslash
    continuations joined."""
    found = []
    for info, block in FENCE.findall(markdown):
        if info.strip() == "text":
            continue
        for line in block.replace("\\\n", " ").splitlines():
            line = line.strip().removeprefix("$ ")
            if line.startswith(tuple(f"uv run {p} " for p in PROGRAMS)):
                found.append(line)
    return found


def parse(line: str) -> None:
    """Parse ``line``'s arguments with the program's own argparse parser (no command runs); an
    unknown flag, a missing argument or a bad choice raises SystemExit."""
    words = shlex.split(line, comments=True)
    program, argv = words[2], words[3:]
    if program == "classify":
        from classify.cli import build_parser

        build_parser().parse_args(argv)
    else:
        from spec2img import cli

        make = cli.COMMANDS[argv[0]][0] if argv and argv[0] in cli.COMMANDS else cli.convert_parser
        make().parse_args(argv[1:] if argv and argv[0] in cli.COMMANDS else argv)


def doc_pages() -> list[Path]:
    return [p for p in sorted(DOCS.rglob("*.md")) if "notes" not in p.relative_to(DOCS).parts]


def test_readme_is_short_and_keeps_the_two_commands():
    text = README.read_text()
    assert len(text.encode()) <= 15_000, f"README.md is {len(text.encode())} bytes; move detail to docs/"
    blocks = "\n".join(body for _, body in FENCE.findall(text))
    assert re.search(r"^uv run classify demo\b", blocks, re.M)
    assert re.search(r"^uv run pytest\s", blocks, re.M)  # the test command CI runs
    assert "\nuv run pytest\n" in (ROOT / ".ci" / "run").read_text()


def test_readme_links_resolve():
    targets = re.findall(r"\]\(([^)#\s]+)[^)]*\)", README.read_text())
    local = [t for t in targets if "://" not in t]
    assert len(local) >= 10, local  # the "Where to read more" table
    missing = [t for t in local if not (ROOT / t).exists()]
    assert not missing, f"README.md links to missing files: {missing}"


def test_commands_finds_continued_and_commented_lines():
    md = "```bash\nuv run classify fit images/ \\\n    --epochs 3   # note\nls 'x\n$ uv run spec2img a/ b/\n```\n```text\nuv run spec2img a/\n```\n"
    assert commands(md) == ["uv run classify fit images/      --epochs 3   # note", "uv run spec2img a/ b/"]


@pytest.mark.parametrize("line", ["uv run classify fit images/ --epoch-count 3", "uv run spec2img clips/",
                                  "uv run classify predikt runs/x a.wav", "uv run spec2img audit a/ --bogus"])
def test_parse_rejects_drifted_commands(line, capsys):
    with pytest.raises(SystemExit) as exc:
        parse(line)
    assert exc.value.code == 2


def test_every_readme_command_parses():
    found = commands(README.read_text())
    assert len(found) >= 6, found  # demo, audit, convert, fit, predict, serve
    for line in found:
        try:
            parse(line)
        except SystemExit as exc:
            pytest.fail(f"README.md: `{line}` no longer parses (exit {exc.code})")


def test_every_docs_command_parses():
    found = [(page, line) for page in doc_pages() for line in commands(page.read_text())]
    assert len(found) >= 10
    for page, line in found:
        try:
            parse(line)
        except SystemExit as exc:
            pytest.fail(f"{page.relative_to(ROOT)}: `{line}` no longer parses (exit {exc.code})")


def text_of(page: Path) -> str:
    """The visible text of a built page, tags stripped and whitespace collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page.read_text())).split())


def summary(obj) -> str:
    return " ".join(inspect.getdoc(obj).split("\n\n")[0].split())


@pytest.mark.slow
def test_site_builds_strictly_offline_with_generated_pages(tmp_path):
    site = tmp_path / "site"
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"),
                           "-d", str(site)], cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**__import__("os").environ, "NO_MKDOCS_2_WARNING": "1"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    cli = text_of(site / "reference" / "cli" / "index.html")
    for flag in ("--epochs", "--head-only", "--preset", "--engine", "--kaggle", "--max-mb"):
        assert flag in cli, flag
    assert "usage: classify fit" in cli and "usage: spec2img audit" in cli

    import classify
    import spec2img.config
    import spec2img.features

    api = text_of(site / "reference" / "api" / "index.html")
    assert summary(spec2img.config.SpectrogramConfig) in api
    assert summary(spec2img.features.kaldi_mel_filters) in api
    for name in ("fit", "cv", "load"):  # the package-root verbs, once they exist, must be on the page
        if hasattr(classify, name):
            assert summary(getattr(classify, name)) in api, f"classify.{name} (is it in classify.__all__?)"

    assert "Contract: RUN_DIR" in text_of(site / "reference" / "run-folder" / "index.html")
    assert "exit" in text_of(site / "troubleshooting" / "index.html")
    assert not (site / "notes").exists()  # helpers' drafts stay out of the site
    # Nothing is fetched from the network: no remote scripts, styles, fonts or images.
    remote = re.compile(r"""<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)=["']?(?:https?:)?//""", re.I)
    for page in site.rglob("*.html"):
        hit = remote.search(page.read_text())
        assert hit is None, f"{page.relative_to(site)}: {hit.group(0)}"
    assert "fonts.googleapis" not in "".join(p.read_text() for p in site.rglob("*.css"))
