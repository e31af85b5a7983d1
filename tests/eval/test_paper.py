"""The paper: it compiles from the report's generated tables, it inputs only what the report
writes, and its text types no number by hand."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from eval.report import FIGURES, TABLES

PAPER = Path(__file__).resolve().parents[2] / "paper"
SOURCES = [PAPER / "main.tex", *sorted((PAPER / "sections").glob("*.tex"))]
# commands whose arguments are names, keys or paths rather than prose
NAME_ARGUMENTS = r"\\(?:cite[pt]?|citep|citet|ref|label|input|include|includegraphics|gentable|texttt|url|href|" \
                 r"bibliography|bibliographystyle|usepackage|documentclass|begin|end|resizebox)\*?(?:\[[^\]]*\])?\{[^}]*\}"


def _prose(text: str) -> str:
    """The text a reader sees as words: comments, math and command arguments that name things
    taken out (numbers inside math, e.g. an exponent of 2, are notation, not results)."""
    text = re.sub(r"(?<!\\)%.*", "", text)
    text = re.sub(r"\\begin\{(equation|align)\*?\}.*?\\end\{\1\*?\}", " ", text, flags=re.S)
    text = re.sub(r"\$[^$]*\$", " ", text)
    text = re.sub(r"\\newcommand\{[^}]*\}\[\d\]|#\d", " ", text)          # a macro's argument count
    text = re.sub(r"\\\[.*?\\\]", " ", text, flags=re.S)
    return re.sub(NAME_ARGUMENTS, " ", text)


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.name)
def test_no_number_is_typed_by_hand(source):
    typed = re.findall(r"[^\n]*\d[^\n]*", _prose(source.read_text()))
    assert not typed, f"{source.name}: numbers typed by hand (use a generated macro or table): {typed}"


def test_the_paper_inputs_only_what_the_report_writes():
    text = "\n".join(source.read_text() for source in SOURCES)
    tables = set(re.findall(r"\\gentable\{([^}]+)\}", text))
    figures = set(re.findall(r"\\includegraphics(?:\[[^\]]*\])?\{figures/([^}]+)\}", text))
    assert tables == set(TABLES) and figures == set(FIGURES)
    cited = {key for group in re.findall(r"\\cite[pt]?\{([^}]+)\}", text) for key in group.split(",")}
    entries = set(re.findall(r"@\w+\{([^,]+),", (PAPER / "references.bib").read_text()))
    assert cited <= entries and entries <= cited, (sorted(cited - entries), sorted(entries - cited))


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("pdflatex") is None or shutil.which("latexmk") is None,
                    reason="no LaTeX installed (make paper and CI install it)")
def test_the_paper_compiles_from_the_generated_tables(tiny_report):
    out, _ = tiny_report
    for source in ("main.tex", "references.bib", "sections"):
        target = out / source
        (shutil.copytree if (PAPER / source).is_dir() else shutil.copy)(PAPER / source, target)
    done = subprocess.run(["latexmk", "-pdf", "-interaction=nonstopmode", "-halt-on-error", "main.tex"],
                          cwd=out, capture_output=True, text=True, timeout=300)
    log = (out / "main.log").read_text(errors="replace")
    assert done.returncode == 0, log[-3000:]
    assert (out / "main.pdf").read_bytes().startswith(b"%PDF")
    assert not re.findall(r"(?:Reference|Citation) `[^']+' on page \d+ undefined", log)
