"""RD plots and RD-point csv reading."""

import pytest

from disco_train.metrics.plot import plot_rd
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
