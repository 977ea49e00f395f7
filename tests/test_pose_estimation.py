"""DWPose sender side: COCO-WholeBody -> 134-point OpenPose layout, the rtmlib wrapper's wiring and its errors.

Real DWPose inference needs the two official ONNX files, which tests cannot build; the wrapper is exercised with
stand-in rtmlib tools instead (and, where rtmlib is installed, with real onnxruntime on invalid files)."""

import numpy as np
import pytest

from conftest import prepare_config

from disco_train.modalities.pose import decode_poses, render_poses
from disco_train.modalities.pose_estimation import DWPose, coco_wholebody_to_openpose
from stages import expected_poses, install_rtmlib

# OpenPose-18 body point -> its COCO-17 index (None: the neck, computed), written out by name.
COCO = ["nose", "l_eye", "r_eye", "l_ear", "r_ear", "l_shoulder", "r_shoulder", "l_elbow", "r_elbow", "l_wrist",
        "r_wrist", "l_hip", "r_hip", "l_knee", "r_knee", "l_ankle", "r_ankle"]
OPENPOSE = ["nose", "neck", "r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow", "l_wrist", "r_hip",
            "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "r_eye", "l_eye", "r_ear", "l_ear"]


def _wholebody(people=2):
    """Point i of person p at (i + 1000 p, 2 i); score i / 200 (distinct everywhere, so any misplacement shows)."""
    i = np.arange(133, dtype=np.float32)
    k = np.stack([np.stack([i + 1000 * p, 2 * i], -1) for p in range(people)])
    s = np.stack([i / 200 + p * 0.001 for p in range(people)])
    return k, s


def test_conversion_to_the_openpose_layout():
    k, s = _wholebody()
    k_in, s_in = k.copy(), s.copy()
    ko, so = coco_wholebody_to_openpose(k, s)
    assert ko.shape == (2, 134, 2) and so.shape == (2, 134) and ko.dtype == so.dtype == np.float32
    assert np.array_equal(k, k_in) and np.array_equal(s, s_in)  # inputs untouched
    for p in range(2):
        for j, name in enumerate(OPENPOSE):
            if name == "neck":
                assert np.allclose(ko[p, j], (k[p, 5] + k[p, 6]) / 2)
                assert so[p, j] == min(s[p, 5], s[p, 6])
            else:
                c = COCO.index(name)
                assert np.array_equal(ko[p, j], k[p, c]) and so[p, j] == s[p, c], name
        # feet, face, left hand, right hand: COCO-WholeBody 17..132 shifted by the inserted neck
        assert np.array_equal(ko[p, 18:], k[p, 17:]) and np.array_equal(so[p, 18:], s[p, 17:])


def test_neck_score_is_the_weaker_shoulder():
    k, s = _wholebody(people=1)
    s[0, 5], s[0, 6] = 0.9, 0.2
    assert coco_wholebody_to_openpose(k, s)[1][0, 1] == pytest.approx(0.2)
    s[0, 5], s[0, 6] = 0.25, 0.8
    assert coco_wholebody_to_openpose(k, s)[1][0, 1] == pytest.approx(0.25)


def test_conversion_edge_cases():
    ko, so = coco_wholebody_to_openpose(np.zeros((0, 133, 2)), np.zeros((0, 133)))
    assert ko.shape == (0, 134, 2) and so.shape == (0, 134)
    with pytest.raises(ValueError, match=r"\[P,133,2\]"):
        coco_wholebody_to_openpose(np.zeros((1, 134, 2)), np.zeros((1, 134)))
    with pytest.raises(ValueError, match="scores"):
        coco_wholebody_to_openpose(np.zeros((1, 133, 2)), np.zeros((2, 133)))


def test_missing_folder_and_files_name_them(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nowhere.*checkpoints/dwpose/"):
        DWPose(tmp_path / "nowhere")
    (tmp_path / "yolox_l.onnx").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=r"dw-ll_ucoco_384.onnx.*checkpoints/dwpose/"):
        DWPose(tmp_path)
    (tmp_path / "yolox_l.onnx").unlink()
    (tmp_path / "dw-ll_ucoco_384.onnx").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=r"yolox_l.onnx.*checkpoints/dwpose/"):
        DWPose(tmp_path)
    (tmp_path / "yolox_l.onnx").write_bytes(b"")
    with pytest.raises(ValueError, match="device"):
        DWPose(tmp_path, device="mps")


def test_invalid_onnx_file_is_named(tmp_path):
    pytest.importorskip("rtmlib")
    pytest.importorskip("onnxruntime")
    for name in ("dw-ll_ucoco_384.onnx", "yolox_l.onnx"):
        (tmp_path / name).write_bytes(b"not an onnx model")
    with pytest.raises(RuntimeError, match=r"could not load .*yolox_l.onnx with onnxruntime"):
        DWPose(tmp_path)


@pytest.fixture
def fake_rtmlib(tmp_path, monkeypatch):
    return install_rtmlib(monkeypatch, tmp_path)


def test_wrapper_wiring(fake_rtmlib):
    est = DWPose(str(fake_rtmlib), device="cuda:0")
    assert est.detector.path.endswith("yolox_l.onnx") and est.pose_model.path.endswith("dw-ll_ucoco_384.onnx")
    assert est.detector.kwargs == dict(model_input_size=(640, 640), det_mode="multiclass", nms_thr=0.45,
                                       score_thr=0.3, backend="onnxruntime", device="cuda:0")
    assert est.pose_model.kwargs == dict(model_input_size=(288, 384), to_openpose=False, backend="onnxruntime",
                                         device="cuda:0")
    clip = np.random.default_rng(0).integers(1, 256, (3, 24, 30, 3), dtype=np.uint8)
    clip[1] = 0  # nobody detected in frame 1
    poses = est(clip)
    assert poses.num_frames == 3 and poses.frame_size == (24, 30) and poses.poses_per_frame == [2, 0, 2]
    assert np.array_equal(est.detector.frames[0], clip[0])  # RGB frames go in unchanged
    assert est.pose_model.boxes[:2] == [[1, 2, 10, 12], [3, 4, 20, 22]]  # only class 0 (person) boxes
    k, s = coco_wholebody_to_openpose(*expected_poses([[1, 2, 10, 12], [3, 4, 20, 22]]))
    assert np.allclose(poses.keypoints[0], k, atol=1e-4) and np.array_equal(poses.scores[2], s)
    assert np.allclose(poses.scores[0], 0.6)  # min of the x (0.9) and y (0.6) peaks, not their mean
    assert render_poses(poses, 24, 30)[0].any()
    with pytest.raises(ValueError, match="uint8 RGB clip"):
        est(clip[0])


def test_prepare_pose_stage_runs_the_real_wrapper(fake_rtmlib):
    from datamodules.stages import PoseStage
    from disco_train.codec.sender import code_pose

    stage = PoseStage(prepare_config(input="unused", output="unused", pose=True, pose_dir=str(fake_rtmlib)))
    stage.preflight()
    assert isinstance(stage.estimator, DWPose)
    clip = np.full((4, 24, 30, 3), 128, np.uint8)
    poses = stage.estimate(clip)
    assert poses.poses_per_frame == [2] * 4 and poses.frame_size == (24, 30)
    coded = decode_poses(code_pose(poses).data)  # what the sender writes into the shard
    assert np.allclose(coded.keypoints[0], poses.keypoints[0], atol=0.01)


def test_decode_simcc_takes_the_smaller_axis_peak():
    from disco_train.modalities.pose_estimation import decode_simcc

    x, y = np.zeros((1, 2, 8), np.float32), np.zeros((1, 2, 6), np.float32)
    x[0, 0, 5], y[0, 0, 2] = 0.8, 0.4   # keypoint 0 at bins (5, 2) -> pixels (2.5, 1.0), score 0.4
    x[0, 1, 1], y[0, 1, 3] = 0.2, 0.7
    locs, vals = decode_simcc(x, y)
    assert np.allclose(locs[0, 0], [2.5, 1.0]) and np.allclose(vals[0], [0.4, 0.2])
    x[0, 1] = 0.0  # no response at all: location -1 as mmpose marks it
    locs, vals = decode_simcc(x, y)
    assert np.allclose(locs[0, 1], [-1, -1]) and vals[0, 1] == 0
