"""RD plots and RD-point csv reading."""

import pytest

from disco_train.metrics.plot import Series, draw, log_ticks, plot_rd, tick_text
from disco_train.metrics.results import read_rd_points

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _write(path, text):
    path.write_text(text)
    return path


def test_plot_writes_valid_png(tmp_path):
    a = _write(tmp_path / "h266.csv", "bpp,lpips\n0.02,0.25\n0.005,0.38\n0.01,0.31\n")
    # evaluate-style file: only the overall rows are RD points
    b = _write(tmp_path / "disco.csv", "video,bpp,lpips\nv1,0.004,0.5\noverall,0.005,0.2\n"
                                       "v1,0.01,0.1\noverall,0.01,0.15\n")
    out = plot_rd([a, b], "lpips", tmp_path / "plots" / "rd.png", title="HEVC-B")
    data = out.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and b"IEND" in data[-16:]
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width > 100 and height > 100


@pytest.mark.parametrize("low,high,want", [
    (0.0004, 0.05, [0.001, 0.003, 0.01, 0.03]),  # decades alone would be 2 ticks: 1-3 per decade
    (0.0028, 0.084, [0.003, 0.01, 0.03]),
    (1e-4, 1.0, [1e-4, 1e-3, 1e-2, 0.1, 1.0]),
    (0.0092, 0.0098, [0.0092, 0.0094, 0.0096, 0.0098]),  # within a decade: round values in between
    (0.00921, 0.00923, [0.00921, 0.009217, 0.009223, 0.00923]),
    (0.02, 0.02, [0.02]),
])
def test_log_ticks_are_few_round_values_in_range(low, high, want):
    ticks = log_ticks(low, high)
    assert ticks == pytest.approx(want) and len(ticks) <= 6 and all(low <= t <= high for t in ticks)
    assert [tick_text(t) for t in (0.0004, 0.01, 2.0)] == ["0.0004", "0.01", "2"]


def test_axes_have_plain_labels_no_minor_labels_no_offset():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    try:
        # the case that used to print "9.2×10⁻³9.4×10⁻…" and "1e−5+1.01928e1"
        draw(ax, "psnr", [Series("a", [0.0092, 0.0094, 0.0097], [10.19280, 10.19281, 10.19283])], {"a": "C0"})
        fig.canvas.draw()
        assert [t.get_text() for t in ax.get_xticklabels()] == ["0.0092", "0.0094", "0.0095", "0.0097"]
        assert all(t.get_text() == "" for t in ax.xaxis.get_minorticklabels())
        assert ax.yaxis.get_offset_text().get_text() == ""
        assert all(10.19 < float(t.get_text()) < 10.2 for t in ax.get_yticklabels())  # whole numbers, no offset
    finally:
        plt.close(fig)


def test_several_metrics_make_one_panel_each(tmp_path, capsys):
    from disco_train.metrics.evaluate import plot_main

    a = _write(tmp_path / "a.csv", "bpp,psnr,lpips\n0.01,30,0.3\n0.02,33,0.2\n")
    b = _write(tmp_path / "b.csv", "bpp,psnr,lpips\n0.01,31,0.25\n0.03,34,0.15\n")
    out = tmp_path / "rd.png"
    assert plot_main([str(a), str(b), "metric=psnr,lpips", f"out={out}", "labels=[x264 (medium),vvenc (slow)]"]) == 0
    width, height = (int.from_bytes(out.read_bytes()[i:i + 4], "big") for i in (16, 20))
    assert width > 1.6 * height  # two panels side by side
    assert plot_main([str(a), str(b), "metric=psnr", f"out={out}", "labels=[one]"]) == 2
    assert "got 1 labels for 2 csv files" in capsys.readouterr().err


def test_read_rd_points_sorts_and_filters(tmp_path):
    p = _write(tmp_path / "r.csv", "video,bpp,psnr\noverall,0.2,33\nx,9,9\noverall,0.1,30\n")
    rate, value = read_rd_points(p, "psnr")
    assert rate.tolist() == [0.1, 0.2] and value.tolist() == [30, 33]


def test_errors_name_file_and_column(tmp_path):
    p = _write(tmp_path / "r.csv", "bpp,psnr\n0.1,30\n")
    with pytest.raises(ValueError, match=r"r\.csv: no column 'lpips'"):
        plot_rd([p], "lpips", tmp_path / "x.png")
    with pytest.raises(FileNotFoundError, match="missing.csv"):
        read_rd_points(tmp_path / "missing.csv", "psnr")
    q = _write(tmp_path / "q.csv", "bpp,psnr\n0.1,\n")
    with pytest.raises(ValueError, match="q.csv: RD row 0"):
        read_rd_points(q, "psnr")
    with pytest.raises(ValueError, match="2 labels for 1 csv"):
        plot_rd([p], "psnr", tmp_path / "x.png", labels=["a", "b"])
