"""Benchmark ablations (paper Tables 4 and 5): `disco.variants`, each its own method disco:<name> with its own
export, text and decoder overrides, side by side in the tables, and one of them the BD-rate anchor."""

from __future__ import annotations

import csv

import pytest

from test_benchmark import debug_inputs  # noqa: F401  (the demo videos and a tiny export)

from disco_train.benchmark.captions import Captions
from disco_train.benchmark.disco import Export, Variant, variant_points
from disco_train.config import ConfigError
from disco_train.config.recipe import resolve
from disco_train.modalities.text import encode_text


def _export(name, points):
    return Export(f"exports/{name}", name, name * 8, tuple(points), 2, 3.0, "blurry", "none")


def _point(ds, dt, qp, codec="dcvc_rt", crf=35):
    return {"ds": ds, "dt": dt, "codec": codec, "qp": qp, "crf": crf}


def test_variants_become_methods_and_one_can_be_the_anchor():
    cfg, _, _ = resolve(["recipe=benchmark_ablation_fill"])
    assert cfg.method_list == ["disco:no_fill", "disco:zero_fill", "disco:forward_fill"]
    assert cfg.anchor == "disco:no_fill"
    cfg, _, _ = resolve(["recipe=benchmark_debug", "methods=x265,disco", "anchor=disco:b",
                         "disco.variants=[{name: a, text: NA}, {name: b}]"])
    assert cfg.method_list == ["x265", "disco:a", "disco:b"]
    cfg, _, _ = resolve(["recipe=benchmark_debug"])  # no variants: one method `disco`
    assert cfg.method_list[-1] == "disco"


@pytest.mark.parametrize("overrides, message", [
    (["disco.variants=[{name: a, txt: NA}]"], r"disco.variants\[0\].txt: unknown key .*did you mean 'disco.variants"
                                              r"\[0\].text'"),
    (["disco.variants=[{name: 'a b'}]"], r"disco.variants\[0\].name: letters, digits"),
    (["disco.variants=[{name: a}, {name: a}]"], "disco.variants: duplicate names"),
    (["disco.variants=[7]"], r"disco.variants\[0\]: expected a mapping of DiscoVariant fields"),
    (["anchor=disco"], "anchor: 'disco' is not one of the methods x264, x265, vvenc, dcvc_rt, disco:a"),
    (["export=''", "disco.variants=[{name: a, export: e1}, {name: b}]"], "export: the disco method needs"),
])
def test_bad_variants_are_refused_naming_the_key(overrides, message):
    base = ["recipe=benchmark_debug"] + ([] if any("variants" in o for o in overrides) else
                                         ["disco.variants=[{name: a}]"])
    with pytest.raises(ConfigError, match=message):
        resolve(base + overrides)


def test_each_variant_has_its_own_points_keyed_by_its_overrides():
    cfg, _, _ = resolve(["recipe=benchmark_ablation_fill_debug", "disco.trained_only=true", "disco.send.qp=null"])
    one = _export("e", [_point(4, 2, 16)])
    fills = [Variant("disco:zero", [one], None, ("condition.fill=zero",)), Variant("disco:fwd", [one], None, ())]
    points = variant_points(cfg, fills)
    assert {m: [p.label for p in ps] for m, ps in points.items()} == {"disco:zero": ["ds4_dt2_qp16"],
                                                                      "disco:fwd": ["ds4_dt2_qp16"]}
    zero, fwd = points["disco:zero"][0], points["disco:fwd"][0]
    assert zero.method == "disco:zero" and zero.settings["overrides"] == ("condition.fill=zero",)
    assert zero.params != fwd.params  # distinct cache keys although the export and rate point are the same


def test_a_variant_text_replaces_every_caption_and_its_own_file_has_no_fallback(tmp_path):
    cfg, _, _ = resolve(["recipe=benchmark_ablation_text_debug", "disco.captions=''"])  # no file needed here
    d = cfg.disco
    path = tmp_path / "gemini.csv"
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows([["video", "caption"], ["a.mp4", "a cat on a mat"]])
    na = Captions(d, "cpu", fixed="NA")
    assert na("a", None) == "NA" and na.key("b.mp4") == "NA" and na.missing(["b"]) == []
    gemini = Captions(d, "cpu", file=str(path), option="disco.variants[1].captions")
    assert gemini("a", None) == "a cat on a mat" and gemini.missing(["a", "b"]) == ["b"]
    with pytest.raises(ValueError, match=r"no caption for b in disco.variants\[1\].captions"):
        gemini("b", None)
    assert Captions(d, "cpu").missing(["zzz"]) == []  # disco.caption_default covers it


def test_benchmark_captions_match_as_prepare_does_and_refuse_ambiguity(tmp_path):
    """One rule (modalities.captions): by path, file name or stem; two rows for one clip is an error naming them,
    where the benchmark's own reader used to let the last row win."""
    cfg, _, _ = resolve(["recipe=benchmark_ablation_text_debug", "disco.captions=''"])
    path = tmp_path / "caps.csv"
    path.write_text("video,caption\nset1/a.mp4,first\nset2/a.mp4,second\nb.v2.mp4,bee\n")
    captions = Captions(cfg.disco, "cpu", file=str(path), option="disco.variants[1].captions")
    assert captions("b.v2.mp4", None) == "bee"
    with pytest.raises(ConfigError, match=r"disco.variants\[1\].captions: no caption for a.mp4: its file name "
                                          r"'a.mp4' is ambiguous .*row 1 'set1/a.mp4', row 2 'set2/a.mp4'"):
        captions.missing(["a.mp4"])


# ---- slow: end to end -----------------------------------------------------------------------------------------
def _rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_text_ablation_debug_puts_na_beside_the_captions(debug_inputs, tmp_path):
    from disco_train.__main__ import main

    videos, export_dir = debug_inputs
    argv = ["benchmark", "recipe=benchmark_ablation_text_debug", f"refs={videos}", f"export={export_dir}",
            f"out={tmp_path}", f"disco.captions={videos / 'captions.csv'}"]
    assert main(argv) == 0
    results = _rows(tmp_path / "results.csv")
    assert len(results) == 3 * 2 * 2  # videos × QPs × variants
    by = {m: [r for r in results if r["method"] == m] for m in ("disco:no_text", "disco:captions")}
    assert all(len(rows) == 6 for rows in by.values())
    na_bits = 8 * len(encode_text("NA"))  # the placeholder is sent, and counted, like any caption
    assert {int(r["text_bits"]) for r in by["disco:no_text"]} == {na_bits}
    assert all(int(r["text_bits"]) > na_bits for r in by["disco:captions"])
    table = _rows(tmp_path / "bdrate.csv")
    assert [r["method"] for r in table[:2]] == ["disco:no_text", "disco:captions"]
    assert table[0]["status"] == "anchor" and table[0]["anchor"] == "disco:no_text"
    assert "disco:no_text: export" in (tmp_path / "report.md").read_text()


def _two_variants(debug_inputs, out, first: tuple[str, str], second: tuple[str, str], *extra
                  ) -> tuple[dict, dict, str]:
    """Run benchmark_ablation_fill_debug with two variants (name, their other fields) of the debug export;
    returns each one's results by (video, point) and report.md."""
    from disco_train.__main__ import main

    videos, export_dir = debug_inputs
    variants = ", ".join(f"{{name: {name}, export: '{export_dir}'{', ' + more if more else ''}}}"
                         for name, more in (first, second))
    argv = ["benchmark", "recipe=benchmark_ablation_fill_debug", f"refs={videos}", f"out={out}",
            f"disco.variants=[{variants}]", f"disco.captions={videos / 'captions.csv'}", *extra]
    assert main(argv) == 0
    results = _rows(out / "results.csv")
    a, b = ({(r["video"], r["point"]): r for r in results if r["method"] == f"disco:{name}"}
            for name, _ in (first, second))
    return a, b, (out / "report.md").read_text()


@pytest.mark.slow
def test_fill_ablation_debug_decodes_each_variant_with_its_fill(debug_inputs, tmp_path):
    zero, fwd, _ = _two_variants(debug_inputs, tmp_path, ("zero_fill", "overrides: [condition.fill=zero]"),
                                 ("forward_fill", ""))
    assert zero.keys() == fwd.keys() and len(zero) == 6
    assert all(zero[k]["bits"] == fwd[k]["bits"] for k in zero)  # the same streams: only the receiver differs
    assert any(zero[k]["psnr"] != fwd[k]["psnr"] for k in zero)


def test_a_fast_variant_decodes_the_same_export_with_its_own_settings(debug_inputs):
    """disco:fast (8 distilled steps, no guidance, a first-block cache) and disco of one export: distinct points
    (cache keys) only by the settings that differ; the default's keys hold no new keys."""
    from disco_train.benchmark.disco import load_variants

    videos, export_dir = debug_inputs
    fast = "{name: fast, guidance: 1, schedule: ltx2_distilled, cache: 'first_block:0.05'}"
    cfg, _, _ = resolve(["recipe=benchmark_debug", f"export={export_dir}", f"disco.variants=[{{name: paper}}, {fast}]",
                         f"disco.captions={videos / 'captions.csv'}"])
    paper, quick = (v.exports[0] for v in load_variants(cfg, "cpu"))
    assert (paper.steps, paper.guidance, paper.speed) == (2, 3.0, ())  # benchmark_debug's disco.steps
    assert (quick.steps, quick.guidance) == (None, 1.0)
    assert quick.speed == (("schedule", "ltx2_distilled"), ("cache", "first_block:0.05"))
    with pytest.raises(ValueError, match="cache=faster: unsupported"):
        load_variants(resolve(["recipe=benchmark_debug", f"export={export_dir}", "disco.cache=faster"])[0], "cpu")


@pytest.mark.slow
def test_fast_variant_debug_run_puts_decode_time_beside_quality(debug_inputs, tmp_path):
    paper, quick, report = _two_variants(debug_inputs, tmp_path, ("paper", "steps: 4"),
                                         ("fast", "guidance: 1, schedule: ltx2_distilled"), "anchor=disco:paper")
    assert paper.keys() == quick.keys() and all(paper[k]["bits"] == quick[k]["bits"] for k in paper)
    assert "## DiSCo decode speed against quality" in report and "schedule ltx2_distilled" in report
