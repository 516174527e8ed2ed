"""``phudge report`` on event files written here with Lightning's TensorBoardLogger."""

from __future__ import annotations

import pytest
from lightning.pytorch.loggers import TensorBoardLogger

from phudge_lightning.report import runs as report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# run -> [(step, {tag: value})]: CE's loss turns up halfway, EMD's keeps falling.
LOGGED = {
    "ce": [(8, {"val/loss": 1.40, "val/pearson": 0.20}), (16, {"val/loss": 1.10, "val/pearson": 0.35}),
           (24, {"val/loss": 1.30, "val/pearson": 0.33, "val/spearman": 0.31, "val/kendall": 0.22, "val/r2": -0.1,
                 "val/mae": 0.9, "val/mse": 1.3, "val/accuracy": 0.4})],
    "emd_squared": [(8, {"val/loss": 0.50, "val/pearson": 0.15}), (16, {"val/loss": 0.40, "val/pearson": 0.30}),
                    (24, {"val/loss": 0.35, "val/pearson": 0.38, "val/spearman": 0.36, "val/kendall": 0.27,
                          "val/r2": 0.1, "val/mae": 0.8, "val/mse": 1.0, "val/accuracy": 0.45})],
}


@pytest.fixture
def logdir(tmp_path):
    for name, points in LOGGED.items():
        logger = TensorBoardLogger(save_dir=tmp_path, name=name)
        for step, metrics in points:
            logger.log_metrics({**metrics, "train/loss_step": 9.0}, step=step)
        logger.finalize("success")
    return tmp_path


def table_rows(markdown: str) -> dict[str, dict[str, str]]:
    lines = [line.strip("|").split("|") for line in markdown.strip().splitlines()]
    header = [cell.strip() for cell in lines[0]]
    return {cells[0].strip(): dict(zip(header, (c.strip() for c in cells))) for cells in lines[2:]}


def test_runs_are_named_by_folder_and_hold_every_point(logdir):
    runs = {run.name: run for run in report.load_runs(logdir)}
    assert sorted(runs) == ["ce", "emd_squared"]  # the lone version_0 folder is named by its parent
    assert [step for step, _ in runs["ce"].scalars["val/loss"]] == [8, 16, 24]
    assert runs["ce"].final("val/loss") == pytest.approx(1.30)
    assert runs["ce"].best("val/loss") == pytest.approx(1.10)


def test_table_has_one_row_per_run_with_the_logged_values(logdir):
    rows = table_rows(report.markdown_table(report.load_runs(logdir)))
    assert sorted(rows) == ["ce", "emd_squared"]
    for name, points in LOGGED.items():
        last = points[-1][1]
        for metric in report.METRICS:
            assert float(rows[name][metric]) == pytest.approx(last[metric], abs=5e-5), (name, metric)
        assert float(rows[name]["best val/loss"]) == pytest.approx(min(m["val/loss"] for _, m in points), abs=5e-5)
        assert rows[name]["step"] == "24"


def test_missing_metrics_show_a_dash(tmp_path):
    logger = TensorBoardLogger(save_dir=tmp_path, name="partial")
    logger.log_metrics({"val/loss": 0.5}, step=3)
    logger.finalize("success")
    rows = table_rows(report.markdown_table(report.load_runs(tmp_path)))
    assert rows["partial"]["val/pearson"] == "-" and float(rows["partial"]["val/loss"]) == pytest.approx(0.5)


def test_versions_of_one_run_are_told_apart(tmp_path):
    for _ in range(2):
        logger = TensorBoardLogger(save_dir=tmp_path, name="mse")
        logger.log_metrics({"val/loss": 1.0}, step=1)
        logger.finalize("success")
    assert sorted(run.name for run in report.load_runs(tmp_path)) == ["mse/version_0", "mse/version_1"]


def test_main_writes_a_valid_png_and_the_table(logdir, tmp_path, capsys):
    import matplotlib.image

    png, table = tmp_path / "out" / "curves.png", tmp_path / "out.md"
    assert report.main(["--logdir", str(logdir), "--png", str(png), "--table", str(table),
                        "--plot", "val/loss", "val/pearson"]) == 0
    assert png.read_bytes()[:8] == PNG_SIGNATURE
    height, width, _ = matplotlib.image.imread(png).shape  # decodes: a whole, valid PNG
    assert width > height > 100
    assert len(table_rows(table.read_text())) == 2
    assert "| emd_squared |" in capsys.readouterr().out


def test_main_defaults_to_files_in_the_logdir(logdir):
    assert report.main(["--logdir", str(logdir)]) == 0
    assert (logdir / "report.png").read_bytes()[:8] == PNG_SIGNATURE
    assert (logdir / "report.md").exists()


def test_main_fails_without_runs(tmp_path, capsys):
    assert report.main(["--logdir", str(tmp_path / "nothing")]) == 1
    assert "no TensorBoard event files" in capsys.readouterr().err
