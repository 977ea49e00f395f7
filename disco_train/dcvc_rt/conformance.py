"""Conformance runner against DCVC-RT golden fixtures (weights by `init_rule`, inputs by `golden_input`).

    python -m disco_train dcvc-rt conformance fixture.safetensors [meta=fixture.json]

Regenerates the float64 weights by the golden rule, runs every case found in the file (intra and
inter, any sizes/QPs/reset intervals given by the JSON sidecar), and compares every stored tensor
with what this implementation computes: float tensors with atol 1e-9, rounded/integer tensors
exactly. Prints one line per tensor and exits 1 if anything fails or cannot be compared.
"""

import functools
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file

from disco_train.config.cli import REQUIRED, Command, moved

from .entropy import FORCE_ZERO_THRES, scale_indexes
from .golden_input import make_frame
from .init_rule import golden_state_dict
from .inter import DMC, INDEX_MAP, QP_SHIFT
from .intra import DMCI
from .padding import pad_frame
from .prior import QuantizeSteps

ATOL = 1e-9
EXACT = re.compile(r"^(z_hat|z_coded|y_q_w_\d+|y_coded_\d+)$")


@functools.lru_cache(maxsize=2)
def build_models(dtype=torch.float64):
    """DMCI and DMC with the golden weights, loaded strictly, eval mode (cached: ~3 s to build).

    The inter model carries DPB state; every inter case starts with clear_dpb()."""
    models = []
    for cls in (DMCI, DMC):
        m = cls().to(dtype)
        m.load_state_dict(golden_state_dict(m, dtype), strict=True)
        models.append(m.eval())
    return models


def coded_arrays(parts, z_hat, thres=FORCE_ZERO_THRES):
    """The arrays the official coder receives: y_coded_k = (symbol << 8) + uint8 index at
    positions with scale > thres (C order of the folded map); z_coded = int8 z_hat."""
    out = {"z_coded": z_hat.reshape(-1).to(torch.int8)}
    for k, (y_q_w, s_w) in enumerate(parts):
        s = s_w.reshape(-1)
        keep = s.clamp(0.11, 16.0) > thres
        codes = (y_q_w.reshape(-1).to(torch.int16) << 8) + scale_indexes(s).to(torch.int16)
        out[f"y_coded_{k}"] = codes.to(torch.int16)[keep]
        out[f"y_q_w_{k}"], out[f"s_w_{k}"] = y_q_w, s_w
    return out


def crop(x, H, W):
    return x[:, :, :H, :W]


def run_intra_frame(intra, x, qp):
    """One I-frame through the encoder path; returns every traceable tensor by fixture name."""
    trace = {}
    source = QuantizeSteps(groups=4)
    res = intra.compress(pad_frame(x), qp, source, trace=trace)
    trace.update(coded_arrays(source.parts, res["z_hat"]))
    trace["z_likelihood"] = intra.bit_estimator_z.likelihood(res["z_hat"], qp)
    trace["x_hat_padded"] = res["x_hat"]
    trace["x_hat"] = crop(res["x_hat"], *x.shape[-2:])
    trace["x"] = x
    return trace


def run_intra_case(models, meta, case_tensors):
    H, W = int(meta["H"]), int(meta["W"])
    x = make_frame(H, W, 0, float(meta.get("input_offset", 0.0)))
    return {"": run_intra_frame(models[0], x, int(meta["qp"]))}


def p_frame_schedule(meta, t):
    """(qp, use_ada_i) of P-frame t, as in test_video.py."""
    index_map = meta.get("index_map", INDEX_MAP)
    qp_shift = meta.get("qp_shift", QP_SHIFT)
    qp = int(meta["qp_p"]) + qp_shift[index_map[t % 8]]
    reset = int(meta.get("reset_interval", 32))
    return qp, bool(reset > 0 and t % reset == 1)


def run_inter_case(models, meta, case_tensors):
    intra, inter = models
    H, W = int(meta["H"]), int(meta["W"])
    off = float(meta.get("input_offset", 0.0))
    n_p = int(meta.get("num_p_frames", _count_frames(case_tensors) - 1))
    frames = {"f0": run_intra_frame(intra, make_frame(H, W, 0, off), int(meta["qp_i"]))}
    inter.clear_dpb()
    inter.add_ref_frame(None, frames["f0"]["x_hat_padded"])
    last_qp = int(meta["qp_i"])
    for t in range(1, n_p + 1):
        qp, use_ada_i = p_frame_schedule(meta, t)
        trace = {}
        if use_ada_i:
            inter.prepare_feature_adaptor_i(last_qp)
            trace["ref_frame"] = inter.ref_frame
        x = make_frame(H, W, t, off)
        source = QuantizeSteps(groups=2)
        # Encoder path as the official one: no pixel reconstruction is kept on the encoder side,
        # so a reset really goes through the recon_generation_net rebuild.
        res = inter.compress(pad_frame(x), qp, source, trace=trace, with_recon=False)
        x_hat = inter.recon_generation_net(res["feature"], inter.q_recon[qp:qp + 1])
        trace.update(coded_arrays(source.parts, res["z_hat"]))
        trace.update(x=x, x_hat_padded=x_hat, x_hat=crop(x_hat, H, W),
                     z_likelihood=inter.bit_estimator_z.likelihood(res["z_hat"], qp))
        frames[f"f{t}"] = trace
        last_qp = qp
    return frames


def _count_frames(case_tensors):
    return len({n.split("/")[0] for n in case_tensors if re.match(r"^f\d+/", n)})


def compare(name, expected, actual):
    """(max abs error, ok) of one tensor: exact for rounded/integer tensors, atol 1e-9 otherwise."""
    if actual is None:
        return float("inf"), False
    actual = actual.detach().cpu()
    if tuple(actual.shape) != tuple(expected.shape):
        return float("inf"), False
    if actual.numel() == 0:
        return 0.0, True
    err = (actual.double() - expected.double()).abs().max().item()
    exact = EXACT.match(name.split("/")[-1]) or not expected.is_floating_point()
    return err, (err == 0.0 if exact else err <= ATOL)


def case_meta_from_name(case):
    """Fallback when the JSON sidecar lacks a case: `<intra|inter>_<H>x<W>_qp<Q>...`."""
    m = re.match(r"^(intra|inter)_(\d+)x(\d+)_qp(\d+)", case)
    if not m:
        raise ValueError(f"case {case!r} is not in the JSON sidecar and its name does not encode kind/size/qp")
    kind, H, W, qp = m.group(1), int(m.group(2)), int(m.group(3)), int(m.group(4))
    return {"kind": kind, "H": H, "W": W, "qp": qp, "qp_i": qp, "qp_p": qp}


def group_cases(tensors):
    cases = {}
    for name, t in tensors.items():
        case, _, rest = name.partition("/")
        cases.setdefault(case, {})[rest] = t
    return cases


def run_fixture(fixture, meta_path=None, out=print):
    """Run every case of a fixture file; returns (n_pass, n_fail)."""
    fixture = Path(fixture)
    meta_path = Path(meta_path) if meta_path else fixture.with_suffix(".json")
    meta_all = json.loads(meta_path.read_text()).get("cases", {}) if meta_path.is_file() else {}
    if not meta_path.is_file():
        out(f"note: no JSON sidecar at {meta_path}; case parameters are parsed from case names")
    tensors = load_file(str(fixture))
    models = build_models()
    n_pass = n_fail = 0
    with torch.no_grad():
        for case, case_tensors in sorted(group_cases(tensors).items()):
            meta = meta_all.get(case) or case_meta_from_name(case)
            runner = run_intra_case if meta["kind"] == "intra" else run_inter_case
            produced = runner(models, meta, case_tensors)
            out(f"== case {case} ({meta['kind']}, {meta['H']}x{meta['W']}, {len(case_tensors)} tensors)")
            for rest, expected in sorted(case_tensors.items()):
                frame, _, tname = rest.rpartition("/")
                err, ok = compare(tname, expected, produced.get(frame, {}).get(tname))
                n_pass, n_fail = n_pass + ok, n_fail + (not ok)
                out(f"{case}/{rest:<24} max_abs_err={err:.3e}  {'PASS' if ok else 'FAIL'}")
    return n_pass, n_fail


@dataclass
class ConformanceArgs:
    fixture: str = REQUIRED
    """Golden .safetensors file."""
    meta: str = ""
    """Its JSON sidecar ('' = the fixture path with .json)."""


COMMAND = Command("python -m disco_train dcvc-rt conformance", __doc__.splitlines()[0], ConformanceArgs,
                  ("fixture",))


def main(argv: list[str]) -> int:
    def run(a: ConformanceArgs) -> int:
        n_pass, n_fail = run_fixture(a.fixture, a.meta or None)
        print(f"SUMMARY: {n_pass} passed, {n_fail} failed -> {'PASS' if n_fail == 0 else 'FAIL'}")
        return 0 if n_fail == 0 and n_pass > 0 else 1

    return COMMAND.main(argv, run, (FileNotFoundError, ValueError))


if __name__ == "__main__":
    moved("disco_train.dcvc_rt.conformance", COMMAND.prog)
    sys.exit(main(sys.argv[1:]))
