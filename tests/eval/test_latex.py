"""LaTeX output: escaping, number formats, tabulars and the macro file."""

import pytest

from eval.latex import Macros, escape, interval, macro_name, mean_std, note, number, tabular


def test_escape_and_numbers():
    assert escape("equal_weight 5% & $x#") == r"equal\_weight 5\% \& \$x\#"
    assert number(0.8412) == "0.84" and number(-0.05, 1, 100) == "$-5.0$"
    assert number(1234567.0, 0) == "1{,}234{,}567" and number(-0.0004, 1, 100) == "0.0"
    assert number(float("nan")) == "--" and number(None) == "--"
    assert mean_std(0.5, 0.125) == r"0.50 $\pm$ 0.12"
    assert mean_std(0.5, float("nan")) == "0.50"
    assert interval(-0.1, 0.2) == "[$-0.10$, 0.20]" and interval(float("nan"), 1.0) == "--"


def test_tabular_and_note():
    text = tabular(["Policy", "Sharpe"], [["a", "1.00"]], footnote="50% of it")
    assert text.splitlines() == [r"\begin{tabular}{lr}", r"\toprule", r"Policy & Sharpe \\", r"\midrule",
                                 r"a & 1.00 \\", r"\midrule", r"\multicolumn{2}{l}{\emph{50\% of it}} \\",
                                 r"\bottomrule", r"\end{tabular}"]
    with pytest.raises(ValueError, match=r"row 0 has 1 cells for 2 columns"):
        tabular(["a", "b"], [["x"]])
    assert r"\emph{no runs\_here}" in note("no runs_here")


def test_macros():
    assert macro_name("main", "sharpe", "equal_weight") == "MainSharpeEqualWeight"
    assert macro_name("cost", "sharpe", "x2", "hierarchy") == "CostSharpeXTwoHierarchy"
    macros = Macros()
    macros.define("HierSharpe", "0.84")
    assert macros.render().splitlines()[1] == r"\newcommand{\HierSharpe}{0.84}"
    with pytest.raises(ValueError, match=r"\\HierSharpe is defined twice"):
        macros.define("HierSharpe", "0.85")
    with pytest.raises(ValueError, match="letters only"):
        macros.define("Hier2", "1")
