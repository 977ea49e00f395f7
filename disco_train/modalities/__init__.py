"""The DiSCo modalities (paper §3.1), each as pure functions or plain modules, sender and receiver side:

- `text`: the caption's zlib bitstream; `caption`: the LLaVA captioner that writes it; `captions`: caption
  tables (csv/jsonl) and the one rule that matches a row to a video (prepare and the benchmark);
- `degrade`: resize/crop, spatiotemporal degradation and its inverse (upsampling, temporal forward filling);
- `interleave`: which condition token comes from the video and which from the auxiliary modality (Fig. 4);
- `sketch`: the InformativeDrawings line-drawing generator;
- `pose`: the 2D-pose bitstream (uint16 keypoints, LZMA) and its skeleton rendering; `pose_estimation`: DWPose;
- `extract`: sketch and pose extraction from a clip with weight checks, shared by `prepare` and `encode`.

May import `disco_train.config` only (never lightning, the codecs or the decoder).
"""
