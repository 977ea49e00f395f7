"""Command-line text stays text (issue 29, class 4): free text and paths arrive exactly as typed, only typed fields
are read as YAML; the sender refuses what its own receiver would refuse; run names stay inside output_dir and
numbers are finite."""

from __future__ import annotations

import pytest

from disco_train.__main__ import main
from disco_train.codec import cli
from disco_train.config import ConfigError
from disco_train.config.recipe import resolve


@pytest.mark.parametrize("caption", ["007", "yes", "a dog #1 runs", "1e3", "[draft] a dog", "*ref", "{a: 1}",
                                     "key: value", "line one\nline two", "  spaced  ", "~", "- item", "1:3"])
def test_captions_arrive_exactly_as_typed(caption):
    a, _ = cli.ENCODE.parse(["v.mp4", "o.disco", f"caption={caption}", "send.ds=2", "force=yes"])
    assert a.caption == caption and a.send.ds == 2 and a.force is True  # typed fields still typed


@pytest.mark.parametrize("path", ["clip #1.mp4", "a: b.mp4", "line\nbreak.mp4", "[x].mp4", "007"])
def test_paths_arrive_exactly_as_typed(path):
    a, _ = cli.ENCODE.parse(["v.mp4", "o.disco", f"sketch={path}", f"export={path}"])
    assert a.sketch == path and a.export == path
    cfg, _, _ = resolve(["recipe=disco_lora_debug", f"model.path={path}", f"data.train_shards={path}"])
    assert cfg.model.path == path and cfg.data.train_shards == path


def test_null_still_clears_an_optional_text_and_resolvers_stay_refused():
    a, _ = cli.ENCODE.parse(["v.mp4", "o.disco", "caption=null"])
    assert a.caption is None
    with pytest.raises(ConfigError, match="calls a resolver"):
        cli.ENCODE.parse(["v.mp4", "o.disco", "caption=${oc.env:HOME}"])


def test_encode_refuses_a_caption_its_receiver_would_refuse(tmp_path, capsys):
    assert main(["encode", str(tmp_path / "v.mp4"), str(tmp_path / "a.disco"), "caption=" + "x" * 70_000]) == 2
    assert "caption: 70,000 bytes; a receiver reads at most 65,536" in capsys.readouterr().err
    assert not (tmp_path / "a.disco").exists()


@pytest.mark.parametrize("key, value, phrase", [
    ("ds", 0, "send.ds: must be >= 1"), ("crf", -100, "crf: must be in 0..63"), ("qp", 999, "qp: must be in -1..63")])
def test_encode_rate_settings_are_range_checked(key, value, phrase):
    with pytest.raises(ConfigError, match=phrase):
        cli.ENCODE.parse(["v.mp4", "o.disco", f"send.{key}={value}"])


@pytest.mark.parametrize("name", ["../../x", "/tmp/abs", "..", "a/b"])
def test_run_names_stay_inside_output_dir(name):
    with pytest.raises(ConfigError, match="name: one folder name inside output_dir"):
        resolve(["recipe=disco_lora_debug", f"name={name}"])


@pytest.mark.parametrize("override", ["optim.lr=inf", "optim.lr=nan", "optim.lr=-inf", "flow.logit_std=.inf"])
def test_numbers_are_finite(override):
    with pytest.raises(ConfigError, match="is not a finite number"):
        resolve(["recipe=disco_lora_debug", override])


@pytest.mark.parametrize("given, text", [("''", ""), ('"007"', "007"), ("'a # b'", "a # b"), ("'it''s'", "it's"),
                                         ("'a' and 'b'", "'a' and 'b'"), ("'open", "'open")])
def test_a_value_quoted_whole_loses_its_quotes(given, text):
    a, _ = cli.ENCODE.parse(["v.mp4", "o.disco", f"caption={given}"])
    assert a.caption == text
