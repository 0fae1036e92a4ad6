"""Tables in the paper's layout: reported numbers round-trip exactly, order, arrows, bold, missing, --paper."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reports import tables
from reports.paper import PAPER_METHOD_ORDER, reported

PAPER = Path("/work/shared/paper")


def _paper_rows(name: str) -> list[dict]:
    """The transcription shipped in reports/ (equal to shared/paper/ where that exists)."""
    from importlib import resources

    text = resources.files("reports").joinpath(f"paper_{name}.csv").read_text()
    if (PAPER / f"{name}.csv").exists():
        assert text == (PAPER / f"{name}.csv").read_text()
    return list(csv.DictReader(io.StringIO(text)))


def _summary_equal_to_paper() -> pd.DataFrame:
    """A run summary whose means are the paper's reported numbers, methods in a scrambled order."""
    frame = reported()
    table2 = frame["table"] == "table2"
    frame.loc[table2, "dataset"] = "INSTA"
    frame = frame.sample(frac=1.0, random_state=3)
    return pd.DataFrame({"dataset": frame["dataset"], "method": frame["method"], "metric": frame["metric"],
                         "protocol": "canonical", "mean": frame["value"], "std": 0.0, "count": 10, "frames": 10})


def _markdown_cells(text: str) -> list[list[str]]:
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    return [[c.strip() for c in line.strip("|").split("|")] for line in rows[1:]]


def test_results_equal_to_reported_give_back_the_papers_table1_exactly():
    text = tables.markdown(tables.TABLE1, _summary_equal_to_paper())
    cells = _markdown_cells(text)
    dataset = ""
    got = {}
    for row in cells:
        dataset = row[0] or dataset
        got[(dataset, row[1])] = [c.replace("**", "") for c in row[2:7]]
    expected = _paper_rows("table1")
    assert len(got) == len(expected)
    for record in expected:
        values = [record[k] or "–" for k in ("l2", "psnr", "ssim", "lpips", "time_s")]
        assert got[(record["dataset"], record["method"])] == values, record


def test_results_equal_to_reported_give_back_the_papers_table2_exactly():
    text = tables.markdown(tables.TABLE2, _summary_equal_to_paper())
    got = {row[1]: [c.replace("**", "") for c in row[2:4]] for row in _markdown_cells(text)}
    for record in _paper_rows("table2"):
        column = 0 if record["metric"] == "PE" else 1
        assert got[record["method"]][column] == record["value"]


def test_paper_mode_difference_is_zero_and_csv_is_exact():
    frame = tables.csv_frame(tables.TABLE1, _summary_equal_to_paper(), paper=True)
    both = frame.dropna(subset=["measured", "reported"])
    assert len(both) == 16 * 5 + 4  # 17 rows x 5 columns, less PointAvatar's absent time
    assert (both["measured"] == both["reported"]).all()
    assert (both["difference"] == 0).all()
    text = tables.markdown(tables.TABLE1, _summary_equal_to_paper(), paper=True)
    assert "| INSTA | NHA | **0.0022** | 0.0022 | +0.0000 |" not in text  # NHA is not the best L2 at INSTA
    assert "| INSTA | NHA | 0.0022 | 0.0022 | +0.0000 | 27.71 | 27.71 | +0.00 |" in text


def test_layout_order_groups_arrows_and_bold():
    summary = _summary_equal_to_paper()
    text = tables.markdown(tables.TABLE1, summary)
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("| Dataset"))
    assert "L2 ↓" in header and "PSNR (dB) ↑" in header and "SSIM ↑" in header and "LPIPS ↓" in header
    assert "Time (s) ↓" in header
    cells = _markdown_cells(text)
    groups = [row[0] for row in cells if row[0]]
    assert groups == ["INSTA", "PointAvatar", "NeRFace"]
    insta = [row[1] for row in cells[:9]]
    assert insta == sorted(insta, key=PAPER_METHOD_ORDER.index)
    ours = next(row for row in cells if row[1] == "Ours")
    # Ours and w/o LCM tie on every quality column at INSTA: both bold. The time column is never bold: one
    # wall-clock measurement per sequence is no evidence of the fastest (INSTA's 0.05 is the smallest).
    assert ours[2:6] == ["**0.0008**", "**34.05**", "**0.97**", "**0.038**"] and ours[6] == "2.40"
    insta_row = next(row for row in cells if row[1] == "INSTA")
    assert insta_row[6] == "0.05" and "(not the time: one wall-clock measurement per sequence)" in text


def test_missing_metric_is_shown_with_its_reason_never_as_a_number():
    summary = pd.DataFrame({"dataset": "synthetic", "method": ["A", "A", "B", "B"], "metric": ["l2", "psnr"] * 2,
                            "protocol": "canonical", "mean": [0.01, 20.0, 0.02, 17.0], "std": 0.0, "count": 3,
                            "frames": 3})
    missing = pd.DataFrame({"dataset": "synthetic", "method": ["A", "B"], "metric": "lpips",
                            "reason": "weights alexnet-owt-7be5be79.pth not found"})
    text = tables.markdown(tables.TABLE1, summary, missing)
    cells = _markdown_cells(text)
    assert [row[5] for row in cells] == ["missing", "missing"]
    assert "LPIPS: missing (weights alexnet-owt-7be5be79.pth not found) for all methods" in text
    assert text.count("alexnet-owt-7be5be79.pth") == 1  # once, not once per method
    assert cells[0][2] == "**0.0100**" and cells[1][3] == "17.00" and cells[0][3] == "**20.00**"
    tex = tables.latex(tables.TABLE1, summary, missing)
    assert r"\toprule" in tex and r"\bottomrule" in tex and r"\textbf{0.0100}" in tex and "missing" in tex
    assert r"\textit{synthetic}" in tex and "canonical" in tex
    frame = tables.csv_frame(tables.TABLE1, summary, missing)
    lpips = frame[frame["column"] == "lpips"]
    assert lpips["measured"].isna().all() and lpips["missing"].str.contains("not found").all()


def test_every_measured_number_names_its_protocol_in_paper_mode():
    summary = pd.DataFrame({"dataset": "INSTA", "method": "Ours", "metric": ["l2", "psnr"], "protocol": "insta",
                            "mean": [0.001, 30.0], "std": np.nan, "count": 5, "frames": 5})
    text = tables.markdown(tables.TABLE1, summary, paper=True)
    ours = next(row for row in _markdown_cells(text) if row[1] == "Ours" and row[2] != "–")
    assert ours[-1] == "insta"
    assert ours[2:5] == ["**0.0010**", "0.0008", "+0.0002"]
    assert ours[5:8] == ["**30.00**", "34.05", "-4.05"]
    # Rows the run did not measure show the reported number beside an empty measured cell.
    nha = next(row for row in _markdown_cells(text) if row[1] == "NHA")
    assert nha[2:5] == ["–", "0.0022", "–"] and nha[-1] == "–"
    tex = tables.latex(tables.TABLE1, summary, paper=True)
    assert r"\cmidrule(lr){2-4}" in tex and "measured & reported" in tex


def test_other_metrics_get_their_own_table_with_registry_directions():
    from metrics import registry

    summary = pd.DataFrame({"dataset": "synthetic", "method": ["A", "B", "A", "B"], "metric": ["psnr", "psnr", "l1", "l1"],
                            "protocol": "canonical", "mean": [20.0, 25.0, 0.05, 0.04], "std": 0.0, "count": 3,
                            "frames": 3})
    spec = tables.extra_table(summary)
    assert spec is not None and spec.columns == (("l1", "l1"),)  # psnr is Table 1's
    assert not registry.get("l1").higher_is_better
    cells = _markdown_cells(tables.markdown(spec, summary))
    assert [row[2] for row in cells] == ["0.05", "**0.04**"]
    assert tables.extra_table(summary[summary["metric"] == "psnr"]) is None
    assert "metrics.md" in tables.render_all(summary) and "metrics_paper.md" not in tables.render_all(summary, paper=True)


def test_reference_pipeline_rows_take_the_papers_places_and_reported_numbers():
    summary = pd.DataFrame({"dataset": "INSTA", "method": ["ConsistentAvatar w/o LCM", "ConsistentAvatar", "NHA"],
                            "metric": "psnr", "protocol": "canonical", "mean": [30.0, 31.0, 25.0], "std": 0.0,
                            "count": 5, "frames": 5})
    rows = tables.build_rows(tables.TABLE1, summary, paper=True)
    measured = [r.method for r in rows if r.measured]
    assert measured == ["NHA", "ConsistentAvatar w/o LCM", "ConsistentAvatar"]
    ours = next(r for r in rows if r.method == "ConsistentAvatar")
    assert ours.reported["psnr"] == 34.05 and "Ours" not in [r.method for r in rows if r.dataset == "INSTA"]


def test_the_stage1_proxy_sits_where_insta_does_without_taking_its_numbers():
    summary = pd.DataFrame({"dataset": "INSTA", "method": ["ConsistentAvatar", "Synthetic: flicker", "INSTA (stage-1 proxy)"],
                            "metric": "psnr", "protocol": "canonical", "mean": [31.0, 30.0, 25.0], "std": 0.0,
                            "count": 5, "frames": 5})
    rows = tables.build_rows(tables.TABLE1, summary, paper=True)
    measured = [r.method for r in rows if r.measured]
    assert measured == ["INSTA (stage-1 proxy)", "ConsistentAvatar", "Synthetic: flicker"]
    proxy = next(r for r in rows if r.method == "INSTA (stage-1 proxy)")
    assert proxy.reported == {}


HOSTILE = r"<script>alert('x')</script> $ { } & % _ # ^ ~ \ | * ` [a](b)"


def _hostile_summary() -> pd.DataFrame:
    return pd.DataFrame({"dataset": HOSTILE, "method": [HOSTILE, "plain"], "metric": "psnr", "protocol": "canonical",
                         "mean": [20.0, 25.0], "std": 0.0, "count": 3, "frames": 3})


def test_hostile_names_stay_text_in_markdown():
    from html import unescape

    from markdown_it import MarkdownIt

    rendered = MarkdownIt("commonmark", {"html": True}).enable("table").render(
        tables.markdown(tables.TABLE1, _hostile_summary()))
    assert "<script>" not in rendered and "<a " not in rendered
    cells = [unescape(c) for c in re.findall(r"<td>(.*?)</td>", rendered)]
    assert cells.count(HOSTILE) == 2  # the dataset and the method cell read back as the names, character for character


def test_hostile_names_are_escaped_in_latex():
    tex = tables.latex(tables.TABLE1, _hostile_summary())
    row = next(line for line in tex.splitlines() if line.endswith(r"\\") and "alert" in line and "textit" not in line)
    name = row.split(" & ")[0]
    # Every LaTeX special of the name is escaped: removing the escapes leaves none of them.
    stripped = re.sub(r"\\(textbackslash|textasciicircum|textasciitilde|textless|textgreater)\{\}|\\[{}$&%_#]", "", name)
    assert not set(stripped) & set("\\{}$&%_#^~<>"), name
    assert r"\textit{" + name + "}" in tex  # the dataset group heading, escaped alike


def test_hostile_names_are_escaped_in_html():
    from html.parser import HTMLParser

    class Cells(HTMLParser):
        def __init__(self):
            super().__init__()
            self.tags, self.cells, self.inside = [], [], False

        def handle_starttag(self, tag, attrs):
            self.tags.append(tag)
            self.inside = tag == "td"
            if self.inside:
                self.cells.append("")

        def handle_data(self, data):
            if self.inside:
                self.cells[-1] += data

        def handle_endtag(self, tag):
            self.inside = False

    parser = Cells()
    parser.feed(tables.html(tables.TABLE1, _hostile_summary()))
    assert "script" not in parser.tags and "a" not in parser.tags
    assert [c for c in parser.cells if "alert" in c] == [HOSTILE] * 3  # two rows' dataset, one method


def test_face_metrics_show_their_coverage_and_no_face():
    from metrics import registry

    assert registry.get("lmd").kind == "face" and registry.get("tof").kind == "temporal"
    summary = pd.DataFrame({"dataset": "synthetic", "method": ["A", "B", "C", "A"], "metric": ["lmd", "lmd", "lmd", "tof"],
                            "protocol": "canonical", "mean": [0.12, 0.08, np.nan, 0.5], "std": 0.0,
                            "count": [5, 6, 0, 5], "frames": 6})
    summary["coverage"] = summary["count"] / summary["frames"]
    spec = tables.extra_table(summary)
    cells = {row[1]: row[2:4] for row in _markdown_cells(tables.markdown(spec, summary))}
    assert cells["A"] == ["0.12 (83%)", "**0.5**"]  # a temporal metric's first frame is not a coverage to show
    assert cells["B"] == ["**0.08**", "–"] and cells["C"] == ["no face", "–"]
    assert "no face" in tables.latex(spec, summary) and "0.12 (83\\%)" in tables.latex(spec, summary)
    frame = tables.csv_frame(spec, summary)
    assert frame.set_index("method").loc["A"].query("column == 'lmd'")["coverage"].item() == pytest.approx(5 / 6)


def test_a_value_its_paper_precision_would_print_as_zero_gets_significant_digits():
    assert tables.format_value("l2", 4.75e-05) == "4.75e-05"  # not 0.0000
    assert tables.format_value("l2", 0.00081) == "0.0008" and tables.format_value("l2", 0.0) == "0.0000"
    assert tables.format_value("psnr", 31.234) == "31.23" and tables.format_value("time_s", 0.001) == "0.001"


def test_a_reason_shared_by_some_rows_names_them_and_columns_sharing_it_are_said_together():
    summary = pd.DataFrame({"dataset": "d", "method": ["A", "B", "C"], "metric": "psnr", "protocol": "canonical",
                            "mean": [20.0, 21.0, 22.0], "std": 0.0, "count": 3, "frames": 3})
    missing = pd.DataFrame({"dataset": "d", "method": ["A", "B", "A", "B", "C"],
                            "metric": ["deca_pe", "deca_pe", "deca_ee", "deca_ee", "deca_ee"],
                            "reason": ["no deca_model.tar"] * 4 + ["another reason"]})
    text = tables.markdown(tables.TABLE2, summary, missing)
    assert "- PE, EE: missing (no deca\\_model.tar) for d/A, d/B" in text
    assert "- EE: missing (another reason) for d/C" in text and text.count("deca\\_model.tar") == 1


def test_a_table_whose_every_value_is_missing_says_so_in_a_sentence():
    summary = pd.DataFrame({"dataset": "d", "method": ["A", "B"], "metric": "psnr", "protocol": "canonical",
                            "mean": [20.0, 21.0], "std": 0.0, "count": 3, "frames": 3})
    missing = pd.DataFrame({"dataset": "d", "method": ["A", "B"] * 2, "metric": ["deca_pe"] * 2 + ["deca_ee"] * 2,
                            "reason": "no deca_model.tar"})
    text = tables.markdown(tables.TABLE2, summary, missing)
    assert text.splitlines()[2] == tables.NOT_MEASURED and "|" not in text
    assert "PE, EE: missing (no deca\\_model.tar) for all methods" in text
    assert "Not measured" in tables.latex(tables.TABLE2, summary, missing) and r"\begin{tabular}" not in \
        tables.latex(tables.TABLE2, summary, missing)
    assert "class='not-measured' id='table2'" in tables.html(tables.TABLE2, summary, missing)


def test_sanity_rows_come_apart_and_never_take_the_bold():
    summary = pd.DataFrame({"dataset": "INSTA", "method": ["Synthetic: flicker", "NHA", "INSTA"], "metric": "psnr",
                            "protocol": "canonical", "mean": [33.2, 25.0, 27.0], "std": 0.0, "count": 5, "frames": 5})
    roles = {"Synthetic: flicker": "sanity"}
    rows = tables.build_rows(tables.TABLE1, summary, roles=roles)
    assert [(r.method, r.role) for r in rows] == [("NHA", "method"), ("INSTA", "method"), ("Synthetic: flicker", "sanity")]
    assert tables.best_values(rows, ["psnr"]) == {(("INSTA", "", "canonical"), "psnr"): 27.0}
    text = tables.markdown(tables.TABLE1, summary, roles=roles)
    main, sanity = text.split("*Sanity checks")
    assert "|  | INSTA | – | **27.00** |" in main and "33.20" in sanity and "**" not in sanity
    assert "never bold" in text
    # without roles (an older run folder) every row is a method: the flicker is then the best
    assert "**33.20**" in tables.markdown(tables.TABLE1, summary)


def test_table2_reported_numbers_never_sit_beside_another_datasets_measurements():
    """The paper's Table 2 names no dataset: its PE/EE go beside rows of the paper's datasets only, as
    Table 1's do; a run on the synthetic dataset shows them in a group of their own."""
    summary = pd.DataFrame({"dataset": "synthetic", "method": ["ConsistentAvatar", "SadTalker"], "metric": "deca_pe",
                            "protocol": "canonical", "mean": [0.02, 0.05], "std": 0.0, "count": 5, "frames": 5})
    rows = tables.build_rows(tables.TABLE2, summary, paper=True)
    assert all(not row.reported for row in rows if row.dataset == "synthetic")
    apart = {row.method: row.reported for row in rows if row.dataset == tables.UNNAMED_PAPER_DATASET}
    assert apart["Ours"]["deca_pe"] == 0.0096 and apart["SadTalker"]["deca_pe"] == 0.0755
    text = tables.markdown(tables.TABLE2, summary, paper=True)
    assert "| ConsistentAvatar | **0.02** | – | – |" in text and f"| {tables.UNNAMED_PAPER_DATASET} |" in text
    insta = summary.assign(dataset="INSTA")  # under one of the paper's datasets they sit beside the measurement
    ours = next(row for row in tables.build_rows(tables.TABLE2, insta, paper=True) if row.method == "ConsistentAvatar")
    assert ours.reported == {"deca_pe": 0.0096, "deca_ee": 0.8452}


def test_the_wo_stage2_row_takes_both_of_the_papers_names_for_its_model():
    """Table 1's "w/o stage2 (Baseline)" and Table 2's "w/o aligned TSD" are one trained model, one row."""
    summary = pd.DataFrame({"dataset": "INSTA", "method": "ConsistentAvatar w/o stage2", "metric": ["psnr", "deca_pe"],
                            "protocol": "canonical", "mean": [30.0, 0.03], "std": 0.0, "count": 5, "frames": 5})
    table1 = tables.build_rows(tables.TABLE1, summary, paper=True)
    table2 = tables.build_rows(tables.TABLE2, summary, paper=True)
    baseline = next(row for row in table1 if row.method == "ConsistentAvatar w/o stage2")
    assert baseline.reported["psnr"] == next(float(r["psnr"]) for r in _paper_rows("table1")
                                             if r["dataset"] == "INSTA" and r["method"] == "w/o stage2 (Baseline)")
    aligned = next(row for row in table2 if row.method == "ConsistentAvatar w/o stage2")
    assert aligned.reported == {"deca_pe": 0.02328, "deca_ee": 1.4355}
    assert "w/o aligned TSD" not in [row.method for row in table2 if row.dataset == "INSTA"]
