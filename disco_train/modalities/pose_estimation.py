"""Pose modality of DiSCo (§3.1), sender side: DWPose whole-body keypoints of every frame.

DWPose (Yang et al., ICCVW 2023) is run the way ControlNet's DWPose annotator runs it
(IDEA-Research/DWPose, branch onnx, `ControlNet-v1-1-nightly/annotator/dwpose/`), through rtmlib's ONNX tools:

1. person detection with YOLOX-L (`yolox_l.onnx`, 640×640 letterbox, NMS IoU 0.45), keeping class 0 (person)
   with score > 0.3 as the annotator's `onnxdet.py` does. rtmlib's `Wholebody` is not used as is because its
   'human' mode keeps boxes of every COCO class from this detector (it has no NMS head); we compose the same two
   rtmlib tools (`YOLOX`, `RTMPose`) it composes, with the annotator's class filter;
2. top-down whole-body pose with DWPose-L (`dw-ll_ucoco_384.onnx`, input 288×384, SimCC, 133 COCO-WholeBody
   points) on each person box;
3. conversion to the 134-point OpenPose layout of `disco_train.modalities.pose` (`coco_wholebody_to_openpose`).

Frames are fed in RGB order, as the annotator receives them (ControlNet hands it RGB arrays); the pose network
was trained with `bgr_to_rgb=True`, i.e. it expects RGB. (rtmlib's own examples feed OpenCV BGR frames.)
When the detector finds nobody, a frame has zero poses: the annotator would instead run the pose network on the
whole frame, whose low-score keypoints the renderer mostly drops anyway; zero poses cost no bits.

rtmlib (and onnxruntime, OpenCV) are imported lazily, only when a `DWPose` is built: the optional extra
`pip install disco-train[pose]` installs them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from disco_train.io.hub import repo_ref, resolve_weights
from disco_train.modalities.pose import NUM_KEYPOINTS, PoseSequence

DEFAULT_DIR = "checkpoints/dwpose"
POSE_FILE = "dw-ll_ucoco_384.onnx"
DET_FILE = "yolox_l.onnx"
POSE_INPUT_SIZE = (288, 384)  # (W, H), DWPose-L 384x288 config
DET_INPUT_SIZE = (640, 640)
DET_SCORE_THR = 0.3  # annotator: NMS at 0.1, then keep person boxes scoring > 0.3 (greedy NMS: same survivors)
DET_NMS_THR = 0.45
PERSON = 0

NUM_WHOLEBODY = 133
NECK = 17
# OpenPose-18 body order from COCO-17 (+ the neck inserted at index 17): DWPose's `mmpose_idx` -> `openpose_idx`.
_MMPOSE_IDX = [17, 6, 8, 10, 7, 9, 12, 14, 16, 13, 15, 2, 1, 4, 3]
_OPENPOSE_IDX = [1, 2, 3, 4, 6, 7, 8, 9, 10, 12, 13, 14, 15, 16, 17]


def coco_wholebody_to_openpose(keypoints: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """COCO-WholeBody [P,133,2] / [P,133] -> 134-point OpenPose layout [P,134,2] / [P,134] (float32).

    The neck (mean of the shoulders) is inserted at index 17, then the body is permuted to OpenPose-18 order
    (0 nose, 1 neck, 2-4 right arm, 5-7 left arm, 8-10 right leg, 11-13 left leg, 14/15 right/left eye, 16/17
    right/left ear). Feet, face and hands keep their COCO-WholeBody order, shifted by one: 18-23 feet, 24-91 face,
    92-112 left hand, 113-133 right hand.

    Neck score: the smaller shoulder score (rtmlib's `convert_coco_to_openpose`). DWPose's annotator stores 1 if
    both shoulders score > 0.3, else 0; both draw the neck under the renderer's 0.3 threshold in exactly the same
    cases, and the minimum keeps the confidence instead of a flag.
    """
    k = np.asarray(keypoints, dtype=np.float32)
    s = np.asarray(scores, dtype=np.float32)
    if k.ndim != 3 or k.shape[1:] != (NUM_WHOLEBODY, 2) or s.shape != k.shape[:2]:
        raise ValueError(f"expected keypoints [P,{NUM_WHOLEBODY},2] and scores [P,{NUM_WHOLEBODY}], "
                         f"got {k.shape} and {s.shape}")
    neck_k = k[:, [5, 6]].mean(axis=1, keepdims=True)
    neck_s = s[:, [5, 6]].min(axis=1, keepdims=True)
    k = np.concatenate([k[:, :NECK], neck_k, k[:, NECK:]], axis=1)
    s = np.concatenate([s[:, :NECK], neck_s, s[:, NECK:]], axis=1)
    k[:, _OPENPOSE_IDX] = k[:, _MMPOSE_IDX]  # fancy-index right side is a copy: no aliasing
    s[:, _OPENPOSE_IDX] = s[:, _MMPOSE_IDX]
    assert k.shape[1] == NUM_KEYPOINTS
    return k, s


def _require_files(folder: Path) -> tuple[Path, Path]:
    if not folder.is_dir():
        raise FileNotFoundError(f"DWPose folder {folder} not found; put {POSE_FILE} and {DET_FILE} in "
                                f"{DEFAULT_DIR}/ or point pose_dir at their folder (see checkpoints/README.md)")
    paths = folder / POSE_FILE, folder / DET_FILE
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"DWPose file {path} not found; put the official {path.name} (HF yzd-v/DWPose) "
                                    f"in {DEFAULT_DIR}/ or point pose_dir at the folder that holds it "
                                    f"(see checkpoints/README.md)")
    return paths


def _backend_device(device: str) -> str:
    # rtmlib takes 'cpu', 'cuda' or 'cuda:N' for onnxruntime; torch-style 'cuda:0' passes through unchanged.
    device = str(device)
    if device != "cpu" and not device.startswith("cuda"):
        raise ValueError(f"DWPose runs on onnxruntime: device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    return device


def decode_simcc(simcc_x: np.ndarray, simcc_y: np.ndarray, split_ratio: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """SimCC outputs [N,K,Wx], [N,K,Wy] -> keypoints [N,K,2] in model-input pixels and scores [N,K].

    The score is the SMALLER of the two axis peaks, as DWPose's ControlNet annotator and mmpose decode it; rtmlib
    0.0.16 averages them instead, which lets more weak keypoints past the renderer's 0.3 threshold. The bins are
    `split_ratio` per input pixel (RTMPose: 2).
    """
    x_locs, y_locs = simcc_x.argmax(-1), simcc_y.argmax(-1)
    vals = np.minimum(simcc_x.max(-1), simcc_y.max(-1)).astype(np.float32)
    locs = np.stack([x_locs, y_locs], -1).astype(np.float32) / split_ratio
    locs[vals <= 0] = -1.0
    return locs, vals


class DWPose:
    """`DWPose(folder)(clip uint8 [T,H,W,3] RGB) -> PoseSequence` in clip pixel coordinates (134-point layout)."""

    def __init__(self, folder: str | Path = DEFAULT_DIR, device: str = "cpu"):
        if repo_ref(str(folder)):  # a Hub repo id such as yzd-v/DWPose: fetch the two files
            folder = resolve_weights(folder, "pose_dir", "DWPose ONNX files", [POSE_FILE, DET_FILE])
        pose_path, det_path = _require_files(Path(folder))
        device = _backend_device(device)
        try:
            from rtmlib import YOLOX, RTMPose
        except ImportError as err:
            raise ImportError(f"DWPose needs rtmlib and onnxruntime (pip install 'disco-train[pose]'): {err}") from err
        self.detector = self._load(YOLOX, det_path, model_input_size=DET_INPUT_SIZE, det_mode="multiclass",
                                   nms_thr=DET_NMS_THR, score_thr=DET_SCORE_THR, backend="onnxruntime",
                                   device=device)
        self.pose_model = self._load(RTMPose, pose_path, model_input_size=POSE_INPUT_SIZE, to_openpose=False,
                                     backend="onnxruntime", device=device)

    @staticmethod
    def _load(tool, path: Path, **kwargs):
        try:
            return tool(str(path), **kwargs)
        except Exception as err:  # onnxruntime's errors do not say which of the two files was bad
            raise RuntimeError(f"could not load {path} with onnxruntime ({type(err).__name__}: {err}); expected "
                               f"the official DWPose {path.name}") from err

    def people(self, frame: np.ndarray) -> list[list[float]]:
        """Person boxes (x1, y1, x2, y2) in frame pixels."""
        boxes, classes = self.detector(frame)
        boxes, classes = np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(classes).reshape(-1)
        return boxes[classes == PERSON].tolist()

    def frame(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One RGB frame -> ([P,134,2], [P,134])."""
        boxes = self.people(frame)
        if not boxes:
            return np.zeros((0, NUM_KEYPOINTS, 2), np.float32), np.zeros((0, NUM_KEYPOINTS), np.float32)
        keypoints, scores = [], []
        for box in boxes:
            # rtmlib's own postprocess scores by the MEAN of the x/y peaks (0.0.16); decode with DWPose's rule
            image, center, scale = self.pose_model.preprocess(frame, box)
            simcc_x, simcc_y = self.pose_model.inference(image)[:2]
            locs, vals = decode_simcc(simcc_x, simcc_y)
            size = np.asarray(self.pose_model.model_input_size, np.float32)
            keypoints.append(locs / size * scale + center - scale / 2)
            scores.append(vals)
        return coco_wholebody_to_openpose(np.concatenate(keypoints), np.concatenate(scores))

    def __call__(self, clip: np.ndarray) -> PoseSequence:
        clip = np.asarray(clip)
        if clip.ndim != 4 or clip.shape[-1] != 3 or clip.dtype != np.uint8:
            raise ValueError(f"expected a uint8 RGB clip [T,H,W,3], got {clip.dtype} {clip.shape}")
        keypoints, scores = [], []
        for frame in clip:
            k, s = self.frame(np.ascontiguousarray(frame))
            keypoints.append(k)
            scores.append(s)
        return PoseSequence(keypoints, scores, clip.shape[1:3])
