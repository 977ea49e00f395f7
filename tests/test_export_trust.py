"""The export as untrusted input (issue 29, class 3): disco.json is read with size and depth bounds and checked
field by field (errors name the key); every file it names is a listed plain file inside the folder; the LoRA's
weights are finite and of the config's shapes before any use; an export holds no path of the training machine."""

from __future__ import annotations

import json
import re
import shutil
import tarfile

import pytest
import torch
from safetensors.torch import load_file, save_file

from disco_train.__main__ import main
from disco_train.decoder import export as E
from disco_train.decoder.decoder import DiscoDecoder
from disco_train.decoder.manifest import FORMAT_VERSION, ExportManifest, ManifestError, Source
from disco_train.train.export import export
from test_export import CODEC, RANK, make_run


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("trust")
    _, ckpt = make_run(root)
    return export(ckpt, root / "export", codec=CODEC)


@pytest.fixture
def copy(exported, tmp_path):
    folder = tmp_path / "export"
    shutil.copytree(exported, folder)
    return folder


def manifest(folder):
    return json.loads((folder / E.MANIFEST).read_text())


def rewrite(folder, edit) -> None:
    m = manifest(folder)
    edit(m)
    (folder / E.MANIFEST).write_text(json.dumps(m))


def resign(folder, name=E.DIFFUSERS_FILE) -> None:
    """What an attacker who edits a file also does: its sha256 in disco.json made to match."""
    rewrite(folder, lambda m: m["files"].__setitem__(name, E.sha256(folder / name)))


def refused(folder, phrase, verify=True):
    with pytest.raises(E.ExportError, match=phrase):
        E.read_manifest(folder, verify=verify)


def test_named_files_stay_listed_plain_files_inside_the_folder(copy, tmp_path):
    outside = tmp_path / "x.safetensors"
    shutil.copy(copy / E.DIFFUSERS_FILE, outside)
    rewrite(copy, lambda m: m.__setitem__("lora_diffusers", "../x.safetensors"))
    refused(copy, r"lora_diffusers: '../x.safetensors' is not a relative path inside the export folder")
    rewrite(copy, lambda m: (m.__setitem__("lora_diffusers", str(outside)),
                             m["files"].__setitem__(str(outside), E.sha256(outside))))
    refused(copy, r"files\[.*x.safetensors'\]: .* is not a relative path inside")


def test_a_symlink_out_of_the_folder_is_refused(copy, tmp_path):
    outside = tmp_path / "elsewhere.safetensors"
    shutil.move(copy / E.DIFFUSERS_FILE, outside)
    (copy / E.DIFFUSERS_FILE).symlink_to(outside)
    refused(copy, "is a symbolic link")


def test_an_unlisted_lora_skips_no_check(copy):
    state = load_file(copy / E.DIFFUSERS_FILE)
    save_file({k: v * 50 for k, v in state.items()}, copy / "evil.safetensors")
    rewrite(copy, lambda m: m.__setitem__("lora_diffusers", "evil.safetensors"))
    refused(copy, "lora_diffusers: 'evil.safetensors' is not listed under files")


@pytest.mark.parametrize("edit, phrase", [
    (lambda m: m.pop("files"), "files: expected dict, got null"),
    (lambda m: m.__setitem__("files", list(m["files"])), "files: expected dict, got \\["),
    (lambda m: m.__setitem__("config", None), "config: expected dict, got null"),
    (lambda m: m.__setitem__("trained_settings", {"ds": 4}), "trained_settings: expected list"),
    (lambda m: m["trained_settings"][0].__setitem__("ds", 0), r"trained_settings\[0\].ds: 0 is not in 1..64"),
    (lambda m: m["trained_settings"][0].__setitem__("ds", "4"), r"trained_settings\[0\].ds: expected int, got \"4\""),
    (lambda m: m["trained_settings"][0].__setitem__("crf", -100), r"trained_settings\[0\].crf: -100 is not in 0..63"),
    (lambda m: m["trained_settings"][0].__setitem__("qp", 999), r"trained_settings\[0\].qp: 999 is not in -1..63"),
    (lambda m: m["trained_settings"][0].__setitem__("codec", ["x264"]), r"\.codec: \[\"x264\"\] is not one of"),
    (lambda m: m.__setitem__("fps", [float("inf")]), r"fps\[0\]: inf is not in \(0, 1000\]"),
])
def test_malformed_manifests_name_the_key(copy, edit, phrase):
    rewrite(copy, edit)
    refused(copy, phrase, verify=False)


@pytest.mark.parametrize("edit, phrase", [
    (lambda m: m.__setitem__("sourse", m.pop("source")), "sourse: unknown key; did you mean 'source'\\?"),
    (lambda m: m["source"].__setitem__("host", "gpu07"), "source.host: unknown key"),
    (lambda m: m["weights"].__setitem__("extra", []), "weights.extra: unknown key"),
    (lambda m: m["trained_settings"][0].__setitem__("dss", 4), r"trained_settings\[0\].dss: unknown key"),
    (lambda m: m["source"].__setitem__("global_step", "3"), 'source.global_step: expected int, got "3"'),
    (lambda m: m["weights"].__setitem__("dcvc_rt_dir", [1]), r"weights.dcvc_rt_dir\[0\]: expected str, got 1"),
    (lambda m: m.__setitem__("pose", {"max_people": 0}), r"pose.max_people: 0 is not in 1..256"),
    (lambda m: m.__setitem__("rope", "v2"), 'rope: expected dict, got "v2"'),
    (lambda m: m.__setitem__("version", 9), "format 'disco-export' v9, expected disco-export v1 or v2"),
    (lambda m: m.__setitem__("version", "2"), "format 'disco-export' v\"2\", expected disco-export v1 or v2"),
    (lambda m: m.pop("version"), "version: missing; expected disco-export v1 or v2"),
])
def test_strict_parsing_names_the_file_and_the_key(copy, edit, phrase):
    """Unknown keys (with the closest known one), wrong types, bad versions: one error naming disco.json and the
    dotted key, nothing kept unread."""
    rewrite(copy, edit)
    with pytest.raises(E.ExportError) as err:
        E.read_manifest(copy, verify=False)
    assert str(err.value).startswith(f"{copy / E.MANIFEST}: ")
    assert re.search(phrase, str(err.value)), str(err.value)


def test_the_written_manifest_is_the_typed_one(exported):
    """The writer serialises the dataclass the reader parses: reading and writing back gives the same bytes."""
    read = E.read_manifest(exported)
    assert isinstance(read, ExportManifest) and read.version == FORMAT_VERSION
    assert json.dumps(read.to_json(), indent=2) + "\n" == (exported / E.MANIFEST).read_text()


def test_a_v1_manifest_is_mapped_once_and_written_back_as_v2(copy, tmp_path):
    rewrite(copy, lambda m: ([m.pop(k) for k in ("trained_settings", "fps", "sketch", "pose", "weights")],
                             m.update(version=1, codec={"ds": 4, "dt": 4, "codec": "x264", "qp": -1, "crf": None})))
    read = E.read_manifest(copy)
    assert read.version == 2 and read.trained_settings == [{"ds": 4, "dt": 4, "codec": "x264", "qp": -1}]
    read.write(copy)
    assert manifest(copy)["version"] == 2 and E.read_manifest(copy) == read
    rewrite(copy, lambda m: m.update(version=1))  # v2 keys in a v1 manifest are not v1
    refused(copy, "fps: unknown key in a v1 manifest")


def test_the_writer_refuses_what_the_reader_would(copy):
    from dataclasses import replace

    before = (copy / E.MANIFEST).read_bytes()
    with pytest.raises(ManifestError, match=r"files\['missing.bin'\]: listed but missing"):
        E.read_manifest(copy).with_file("missing.bin", "0" * 64).write(copy)
    with pytest.raises(ManifestError, match="source.global_step: expected int"):
        replace(E.read_manifest(copy), source=Source("run/x.ckpt", "3")).write(copy)
    assert (copy / E.MANIFEST).read_bytes() == before


def test_deep_and_huge_manifests_are_refused_before_parsing_them_whole(copy):
    (copy / E.MANIFEST).write_text("[" * 200_000 + "]" * 200_000)
    refused(copy, "nested more than 32 levels deep")
    with open(copy / E.MANIFEST, "wb") as handle:
        handle.truncate(400 << 20)  # sparse: 400 MB that cost no disk
    refused(copy, "419,430,400 bytes, more than the 16,777,216 a manifest may have")


def test_encode_refuses_a_bad_trained_point_naming_the_key(copy, tmp_path, capsys):
    from conftest import make_video

    video = tmp_path / "v.mp4"
    make_video(video, frames=9, height=32, width=32)
    rewrite(copy, lambda m: m["trained_settings"][0].__setitem__("ds", 0))
    assert main(["encode", str(video), str(tmp_path / "a.disco"), "caption=x", f"export={copy}"]) == 2
    err = capsys.readouterr().err
    assert "trained_settings[0].ds: 0 is not in 1..64" in err and "Traceback" not in err


def _decoder(folder):
    return DiscoDecoder(E.decoder_config(folder))


def test_nan_weights_and_a_zero_folded_scale_are_refused_before_use(copy):
    state = load_file(copy / E.DIFFUSERS_FILE)
    first = next(iter(state))
    with open(copy / E.DIFFUSERS_FILE, "rb") as handle:  # keep the file's metadata
        header = json.loads(handle.read(int.from_bytes(handle.read(8), "little")))["__metadata__"]
    save_file({**state, first: torch.full_like(state[first], float("nan"))}, copy / E.DIFFUSERS_FILE, header)
    resign(copy)
    with pytest.raises(ValueError, match="holds NaN or inf"):
        _decoder(copy)
    save_file(state, copy / E.DIFFUSERS_FILE, {**header, "disco.scale_folded_into_lora_B": "0"})
    resign(copy)
    with pytest.raises(ValueError, match="disco.scale_folded_into_lora_B='0' is not a positive number"):
        _decoder(copy)


def test_a_rank_other_than_the_configs_is_named(copy):
    rewrite(copy, lambda m: m["config"]["lora"].__setitem__("rank", 2 * RANK))
    with pytest.raises(ValueError, match=r"has shape .*, expected .* \(a rank other than lora.rank\?\)"):
        _decoder(copy)


def test_sampling_steps_are_bounded(copy, tmp_path, capsys):
    rewrite(copy, lambda m: m["config"]["validation"].__setitem__("steps", 10**7))
    with pytest.raises(E.ExportError, match="validation.steps: must be in 1..1000, got 10000000"):
        E.decoder_config(copy)
    assert main(["decode", str(tmp_path / "a.disco"), "", f"export={copy}", f"steps={10**12}"]) == 2
    assert "steps: must be in 1..1000" in capsys.readouterr().err


def test_the_export_holds_no_path_of_the_training_machine(exported):
    source = manifest(exported)["source"]
    assert source["checkpoint"] == "run/checkpoints/last.ckpt"
    assert str(exported.parent) not in json.dumps(source)


@pytest.mark.parametrize("coded, phrase", [
    ({"settings": "junk"}, "a malformed index row|ds, dt, codec: not found in the training shards"),
    ({"settings": [{"ds": "4", "dt": 4, "codec": "x264"}]}, r"trained point 0 .*\.ds: expected int"),
    ({"settings": [{"ds": 4, "dt": 4, "codec": "x264", "qp": 999}]}, r"\.qp: 999 is not in -1..63"),
])
def test_shard_index_rows_of_the_wrong_type_are_refused_at_export(tmp_path, coded, phrase):
    shards = tmp_path / "shards"
    shards.mkdir()
    tarfile.open(shards / "train-000000.tar", "w").close()
    row = {"video": "a.mp4", "shard": "train-000000.tar", "coded": coded}
    (shards / "index.jsonl").write_text(json.dumps(row) + "\n")
    _, ckpt = make_run(tmp_path, f"data.train_shards={shards}/train-*.tar")
    with pytest.raises(E.ExportError, match=phrase):
        export(ckpt, tmp_path / "export")
    assert not (tmp_path / "export").exists()
