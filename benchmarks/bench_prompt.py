#!/usr/bin/env python
"""Benchmark of napari-fewcell's prompt (one-shot) segmentation against an ilastik-style baseline.

Measures one-shot Dice on ISBI 2012 and DSB 2018 fluorescence, exact vs fast (prototype)
attention, latency and peak memory; writes a Markdown report. See benchmarks/README.md.
Boxes are drawn from train images only; test images are only ever scored.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from common import (
    BOX,
    Dataset,
    RFBaseline,
    dice_pct,
    elapsed,
    log,
    mean_sd,
    peak_rss_gb,
    report_header,
    set_threads,
    sha12,
    timed,
    vm_hwm_gb,
    write_report,
)


def pick_box(seed: int, ds: Dataset, lo: float, hi: float) -> tuple[str, int, int]:
    """Seeded (train image id, y, x) of a BOX×BOX box whose foreground fraction is in [lo, hi]."""
    rng = np.random.default_rng(seed)
    while True:
        src = ds.train[int(rng.integers(len(ds.train)))]
        lab = ds.labels[src]
        for _ in range(500):  # resample the position; a new image only if this one has no such box
            y, x = int(rng.integers(0, lab.shape[0] - BOX + 1)), int(rng.integers(0, lab.shape[1] - BOX + 1))
            if lo <= lab[y : y + BOX, x : x + BOX].mean() <= hi:
                return src, y, x


def score(ds: Dataset, test_ids, predict) -> tuple[list[float], list[float]]:
    """Dice % and seconds per test image; ``predict(id)`` returns (labels, seconds)."""
    res = [predict(i) for i in test_ids]
    return [dice_pct(p, ds.labels[i]) for (p, _), i in zip(res, test_ids)], [t for _, t in res]


def fewcell_scores(ds: Dataset, seg, box, test_ids):
    src, y, x = box
    prompt = seg.prepare_prompt(ds.images[src], ds.labels[src], (y, x, BOX, BOX))
    return score(ds, test_ids, lambda i: timed(seg.segment, ds.images[i], prompt))


def one_shot(ds: Dataset, boxes, segs: dict, rf: RFBaseline, test_ids: list[str]) -> list[dict]:
    """Per box: {method: (dice per test image, seconds per test image)} plus the box itself."""
    rows = []
    for b, (src, y, x) in enumerate(boxes):
        row = {"src": src, "y": y, "x": x}
        row.update({name: fewcell_scores(ds, seg, (src, y, x), test_ids) for name, seg in segs.items()})
        clf = rf.fit(rf.cached((ds.name, src), ds.images[src])[0], ds.labels[src], y, x)

        def rf_predict(i):  # test-image features are computed once (cached); their time is added back
            feat, t_feat = rf.cached((ds.name, i), ds.images[i])
            pred, t = timed(rf.predict, clf, feat)
            return pred, t_feat + t

        row["RF baseline"] = score(ds, test_ids, rf_predict)
        rows.append(row)
        log(f"{ds.name} box {b + 1}/{len(boxes)} ({src} y={y} x={x}): "
            + ", ".join(f"{k} {np.mean(v[0]):.2f}" for k, v in row.items() if isinstance(v, tuple)))
    return rows


def one_shot_tables(rows: list[dict], methods: list[str]) -> list[str]:
    out = ["| box | source | y | x | " + " | ".join(methods) + " |", "|" + "---|" * (4 + len(methods))]
    for b, r in enumerate(rows):
        out.append(f"| {b} | {r['src']} | {r['y']} | {r['x']} | "
                   + " | ".join(f"{np.mean(r[m][0]):.2f}" for m in methods) + " |")
    out += ["", "| method | Dice % (mean ± sd over boxes) | worst box | best box | s / test image |",
            "|---|---|---|---|---|"]
    for m in methods:
        per_box = [np.mean(r[m][0]) for r in rows]
        secs = np.mean([np.mean(r[m][1]) for r in rows])
        out.append(f"| {m} | {mean_sd(per_box)} | {min(per_box):.2f} | {max(per_box):.2f} | {secs:.2f} |")
    return out


def exact_vs_fast(ds, boxes, seg_exact, rows, test_ids) -> list[str]:
    """Exact attention on the first test images of every box, next to the fast path's results."""
    n = len(test_ids)
    out = ["| box | exact Dice | fast Dice | mean abs Δ per image | max abs Δ | exact s/img | fast s/img |",
           "|---|---|---|---|---|---|---|"]
    all_e, all_f, all_te, all_tf = [], [], [], []
    for b, (box, r) in enumerate(zip(boxes, rows)):
        de, te = fewcell_scores(ds, seg_exact, box, test_ids)
        df, tf = r["fewcell fast"][0][:n], r["fewcell fast"][1][:n]  # same box, same images, from part 1
        diff = np.abs(np.subtract(de, df))
        out.append(f"| {b} | {np.mean(de):.2f} | {np.mean(df):.2f} | {diff.mean():.2f} | {diff.max():.2f} "
                   f"| {np.mean(te):.2f} | {np.mean(tf):.2f} |")
        all_e += de; all_f += df; all_te += te; all_tf += tf  # noqa: E702
        log(f"exact box {b + 1}/{len(boxes)}: exact {np.mean(de):.2f} fast {np.mean(df):.2f} ({np.mean(te):.1f} s/img)")
    diff = np.abs(np.subtract(all_e, all_f))
    out.append(f"| **all** | **{np.mean(all_e):.2f}** | **{np.mean(all_f):.2f}** | **{diff.mean():.2f}** "
               f"| **{diff.max():.2f}** | **{np.mean(all_te):.2f}** | **{np.mean(all_tf):.2f}** |")
    return out


def latency(ds, box, seg, seg_exact, rf: RFBaseline) -> list[str]:
    from napari_fewcell.engine.prompt import PromptParams, Segmenter

    src, y, x = box
    img = ds.images[ds.test[0]]
    prompt, t_prep = timed(seg.prepare_prompt, ds.images[src], ds.labels[src], (y, x, BOX, BOX))
    t_keys = timed(seg.keys, prompt)[1]  # k-means prototypes, cached on the prompt
    seg.segment(img, prompt)  # warm-up, not counted
    f = float(np.median([timed(seg.segment, img, prompt)[1] for _ in range(5)]))
    t_exact = timed(seg_exact.segment, img, prompt)[1]
    clf, t_fit = timed(lambda: rf.fit(rf.features(ds.images[src]), ds.labels[src], y, x))
    r = float(np.median([timed(lambda: rf.predict(clf, rf.features(img)))[1] for _ in range(3)]))
    default = Segmenter(PromptParams(device="cpu"), model=seg.model)  # the widget's and CLI's default path
    prompt_d = default.prepare_prompt(ds.images[src], ds.labels[src], (y, x, BOX, BOX))
    t_adapt = timed(default.adapt, prompt_d)[1]
    default.segment(img, prompt_d)  # warm-up, not counted
    d = float(np.median([timed(default.segment, img, prompt_d)[1] for _ in range(3)]))
    log(f"latency: fast {f:.3f} s, exact {t_exact:.2f} s, default ({prompt_d.path}) {d:.3f} s, RF {r:.2f} s")
    return [f"Image {ds.name} {ds.test[0]} ({img.shape[0]}×{img.shape[1]}), prompt box {src} y={y} x={x}; "
            "model already loaded, one warm-up call not counted.", "",
            "| step | seconds |", "|---|---|",
            f"| fewcell `prepare_prompt` (once) | {t_prep:.3f} |",
            f"| fewcell k-means prototype keys (once per prompt, cached) | {t_keys:.3f} |",
            f"| fewcell `segment`, fast path (median of 5) | {f:.3f} |",
            f"| fewcell `segment`, exact attention (1 run) | {t_exact:.2f} |",
            f"| default path (adapt={default.params.adapt} → {prompt_d.path}): check + adaptation, once per prompt "
            f"| {t_adapt:.2f} |",
            f"| default path: `segment` (median of 3) | {d:.3f} |",
            f"| RF baseline fit on the box (prompt-image features + fit, once) | {t_fit:.2f} |",
            f"| RF baseline features + predict (median of 3) | {r:.2f} |",
            f"| **ratio fewcell fast / RF** | **{f / r:.3f}** |"]


def memory_child(args) -> None:
    """Run in a fresh process: RSS after imports + model load, then peak RSS of one SIZE² segmentation."""
    import sklearn.cluster  # noqa: F401 - imported lazily by the engine's k-means; count it as an import
    import torch

    torch.set_num_threads(args.threads)
    from napari_fewcell.engine.prompt import PromptParams, Segmenter

    seg = Segmenter(PromptParams(weights=args.weights, device="cpu", adapt="none"))
    loaded = peak_rss_gb(), vm_hwm_gb()
    ds = Dataset(args.data, "isbi2012_membrane")
    src, y, x = pick_box(0, ds, 1 / BOX**2, 1 - 1 / BOX**2)
    prompt = seg.prepare_prompt(ds.images[src], ds.labels[src], (y, x, BOX, BOX))
    base = ds.images[ds.test[0]]
    reps = -(-args.memory_child // base.shape[0])
    img = np.ascontiguousarray(np.tile(base, (reps, reps))[: args.memory_child, : args.memory_child])
    secs = timed(seg.segment, img, prompt)[1]
    print(json.dumps({"size": args.memory_child, "loaded_gb": loaded[0], "peak_gb": peak_rss_gb(),
                      "hwm_loaded_gb": loaded[1], "hwm_peak_gb": vm_hwm_gb(), "seconds": secs}))


def memory(args, sizes) -> list[str]:
    out = ["| image | RSS after imports + model load (GB) | peak RSS (GB) | segmentation's share (GB) "
           "| VmHWM load / peak (GB) | seconds | ≤ 2 GB |", "|---|---|---|---|---|---|---|"]
    for s in sizes:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--memory-child", str(s), "--data", args.data,
               "--weights", args.weights, "--threads", str(args.threads)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode:
            sys.exit(f"memory child {s}² failed:\n{proc.stderr[-2000:]}")
        r = json.loads(proc.stdout.splitlines()[-1])
        log(f"memory {s}²: peak {r['peak_gb']:.2f} GB")
        out.append(f"| {s}×{s} | {r['loaded_gb']:.2f} | {r['peak_gb']:.2f} | {r['peak_gb'] - r['loaded_gb']:.2f} "
                   f"| {r['hwm_loaded_gb']:.2f} / {r['hwm_peak_gb']:.2f} | {r['seconds']:.1f} "
                   f"| {'yes' if r['peak_gb'] <= 2 else '**no**'} |")
    return out


def weights_line(label: str, path: str, model, test_ids: dict) -> str:
    seen = getattr(model, "card", {}).get("training_images", {})
    leak = {s: sorted(set(map(str, seen.get(s, []))) & set(ids)) for s, ids in test_ids.items()}
    leak = {s: v for s, v in leak.items() if v}
    sets = ", ".join(f"{s} ({len(v)})" for s, v in seen.items()) or "not recorded in the card"
    return (f"- {label}: `{path}` (sha256 {sha12(path)}); training images: {sets}; "
            f"test images among them: {leak if leak else 'none'}")


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", required=True)
    ap.add_argument("--weights", required=True, help="shipped weights (trained with ISBI train images)")
    ap.add_argument("--weights-noisbi", help="weights trained without any ISBI image")
    ap.add_argument("--out", default="benchmarks/results/prompt.md")
    ap.add_argument("--boxes", type=int, default=6)
    ap.add_argument("--exact-images", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="smoke test: 2 boxes, 2 test images, small memory sizes")
    ap.add_argument("--note", action="append", default=[], help="a line for the report header (repeatable)")
    ap.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--latency-only", action="store_true",
                    help="only section 4 (latency), for a re-check of speed on an otherwise idle machine")
    args = ap.parse_args()
    if args.boxes < 6 and not args.quick and not args.memory_child:
        ap.error("--boxes must be at least 6 (or use --quick)")
    return args


def attention_segmenters(weights: str):
    """Prompt attention alone (adapt="none", the path of the figures of workflow 1): fast and exact."""
    from napari_fewcell.engine.prompt import PromptParams, Segmenter

    fast = Segmenter(PromptParams(weights=weights, attention="prototypes", device="cpu", adapt="none"))
    exact = Segmenter(PromptParams(weights=weights, attention="exact", device="cpu", adapt="none"), model=fast.model)
    return fast, exact


def latency_only(args) -> None:
    """Section 4 alone: the same image, box and steps as the full run."""

    set_threads(args.threads)
    fast, exact = attention_segmenters(args.weights)
    isbi = Dataset(args.data, "isbi2012_membrane")
    box = pick_box(0, isbi, 1 / BOX**2, 1 - 1 / BOX**2)
    lat = latency(isbi, box, fast, exact, RFBaseline(args.threads))
    rep = [*report_header("napari-fewcell prompt benchmark — latency only", False, libs=("sklearn", "skimage")),
           *(f"- note: {n}" for n in args.note), "",
           f"## 4. Latency (torch threads {args.threads}, RF n_jobs {args.threads})", "", *lat, ""]
    write_report(rep, args.out)


def main() -> None:
    args = parse_args()
    if args.memory_child:
        return memory_child(args)
    if args.latency_only:
        return latency_only(args)

    write_report(report(args, measure(args)), args.out)
    log(f"wrote {args.out}")


def measure(args) -> SimpleNamespace:
    """Every measurement of the full (or --quick) run: memory first, then the four parts."""
    sizes = [512, 1024] if args.quick else [2048, 4096]
    log("memory (first, while this process is small: Linux ru_maxrss of a child includes the parent's RSS)")
    mem = memory(args, sizes)

    from napari_fewcell.engine.prompt import PromptParams, Segmenter

    set_threads(args.threads)  # torch, and k-means / BLAS / OpenMP in sklearn
    n_boxes = 2 if args.quick else args.boxes
    n_test = 2 if args.quick else None

    fast, exact = attention_segmenters(args.weights)
    segs = {"fewcell fast": fast}
    if args.weights_noisbi:
        segs["fewcell fast, no-ISBI weights"] = Segmenter(
            PromptParams(weights=args.weights_noisbi, attention="prototypes", device="cpu", adapt="none"))
    methods = list(segs) + ["RF baseline"]
    rf = RFBaseline(args.threads)

    isbi = Dataset(args.data, "isbi2012_membrane")
    dsb = Dataset(args.data, "dsb2018_fluo")
    tests = {d.name: d.test for d in (isbi, dsb)}
    isbi_test, dsb_test = isbi.test[:n_test], dsb.test[:n_test]
    n_exact = min(args.exact_images, len(isbi_test))

    log("1/4 ISBI one-shot")
    isbi_boxes = [pick_box(s, isbi, 1 / BOX**2, 1 - 1 / BOX**2) for s in range(n_boxes)]  # both classes present
    isbi_rows = one_shot(isbi, isbi_boxes, segs, rf, isbi_test)
    log("2/4 exact vs fast")
    ex = exact_vs_fast(isbi, isbi_boxes, exact, isbi_rows, isbi_test[:n_exact])
    rf.cache.clear()
    log("3/4 DSB one-shot")
    dsb_boxes = [pick_box(s, dsb, 0.05, 0.60) for s in range(n_boxes)]
    dsb_rows = one_shot(dsb, dsb_boxes, segs, rf, dsb_test)
    rf.cache.clear()
    log("4/4 latency")
    lat = latency(isbi, isbi_boxes[0], fast, exact, rf)
    return SimpleNamespace(mem=mem, lat=lat, ex=ex, fast=fast, segs=segs, tests=tests, isbi_boxes=isbi_boxes,
                           isbi_test=isbi_test, isbi_rows=isbi_rows, dsb_boxes=dsb_boxes, dsb_test=dsb_test,
                           dsb_rows=dsb_rows, methods=methods, n_exact=n_exact)


def report(args, m: SimpleNamespace) -> list[str]:
    """The Markdown report of :func:`measure`'s results."""
    import torch

    w = [weights_line("shipped (`fewcell fast`)", args.weights, m.fast.model, m.tests)]
    if args.weights_noisbi:
        w.append(weights_line("no-ISBI", args.weights_noisbi, m.segs["fewcell fast, no-ISBI weights"].model, m.tests))
    return [
        *report_header("napari-fewcell prompt benchmark", args.quick, libs=("sklearn", "skimage")),
        *w, *(f"- note: {n}" for n in args.note),
        f"- wall time: {elapsed():.0f} s; peak RSS of this benchmark process (all methods, "
        f"incl. exact attention and RF): {peak_rss_gb():.2f} GB",
        "- metric (paper's): per test image, mean of foreground Dice % and background Dice %; averaged over test "
        "images, then over boxes. Prompt = one 64×64 box with its full labels, on a train image; "
        "seed i → `numpy.random.default_rng(i)` picks the image and position.",
        "- RF baseline (ilastik-style): `multiscale_basic_features(intensity, edges, texture, sigma 1–16)` of the "
        "whole prompt image, `RandomForestClassifier(100 trees, random_state=0)` fitted on the 4,096 box pixels.",
        "- **target: ISBI one-shot Dice ≥ 86** (paper: U-Net on full labels 86.66; paper's one-shot method 81.25).",
        "",
        f"## 1. ISBI 2012 one-shot Dice % ({len(m.isbi_boxes)} boxes from train 000–014; "
        f"test images {m.isbi_test[0]}–{m.isbi_test[-1]}, n = {len(m.isbi_test)})", "",
        *one_shot_tables(m.isbi_rows, m.methods), "",
        f"## 2. Exact vs fast attention (shipped weights; same boxes; first {m.n_exact} ISBI test images)", "",
        *m.ex, "",
        f"## 3. DSB 2018 fluorescence one-shot Dice % ({len(m.dsb_boxes)} boxes from train images with 5–60 % "
        f"foreground; {len(m.dsb_test)} test images)", "",
        *one_shot_tables(m.dsb_rows, m.methods), "",
        f"## 4. Latency (torch threads {torch.get_num_threads()}, RF n_jobs {args.threads})", "", *m.lat, "",
        "## 5. Peak memory, fast path (fresh process each; ISBI test image tiled; target ≤ 2 GB)", "", *m.mem, "",
        "RSS = the child's `ru_maxrss`, measured before anything else runs (Linux carries the parent's RSS into "
        "a forked child's `ru_maxrss`); VmHWM (`/proc/self/status`, the child's own image) cross-checks it. "
        "'After imports + model load' includes torch, scikit-learn and the weights.", "",
    ]


if __name__ == "__main__":
    main()
