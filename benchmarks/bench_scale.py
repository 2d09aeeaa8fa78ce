"""Scale (issue 13): one big image segmented block by block from zarr, in one process and on a local dask
cluster of 2 workers (wall time, Mpx/s, peak RSS of every process; the two outputs compared); the block-by-block
path from zarr bit for bit against the in-memory ``Segmenter.segment`` on a 2048² crop; throughput on a folder of
small images (one process, 1 and 2 workers; start-up measured apart) and what a 16-core node would give (an
estimate, not a measurement).

Every timed run is ``python -m napari_fewcell.cli segment ...`` in a subprocess, prompted by the sample's box
(sample_data/nuclei.tif, 64×64); its process tree (the command and every worker it starts) is polled every 0.2 s
with psutil for RSS, and each process's VmHWM (the kernel's peak) is read on every poll.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import psutil
import tifffile
from common import command_line, elapsed, log, report_header, timed, write_report
from proc_tree import GB, REPO, SAMPLE, cli, diff_arrays, folder_bytes, measure

SOURCE_SET = "dsb2018_fluo"  #: the real images tiled and cropped (test split)
TARGET_GB = 2.0  #: peak RSS per process
BIG_CHUNK, CROP_CHUNK, CROP = 2048, 1024, 2048
MODES = (("single process", []), ("--workers 1", ["--workers", "1"]), ("--workers 2", ["--workers", "2"]))


# ---- images ----------------------------------------------------------------------------------------
def mirror_index(start: int, n: int, period: int) -> np.ndarray:
    """Indices start … start+n-1 into an axis of ``period`` pixels, mirror-tiled (0 1 … p-1 p-1 … 1 0 0 1 …)."""
    i = np.arange(start, start + n) % (2 * period)
    return np.where(i < period, i, 2 * period - 1 - i)


def mirror_region(img: np.ndarray, y: int, x: int, h: int, w: int) -> np.ndarray:
    """The (h, w) region at (y, x) of ``img`` mirror-tiled without end: no seams, any size, never built whole."""
    return np.ascontiguousarray(img[np.ix_(mirror_index(y, h, img.shape[0]), mirror_index(x, w, img.shape[1]))])


def test_images(data: Path) -> dict[str, np.ndarray]:
    """The test images of SOURCE_SET (2D ones), or {} when the data folder is missing."""
    d = data / SOURCE_SET
    if not (d / "split.csv").is_file():
        return {}
    rows = [line.split(",") for line in (d / "split.csv").read_text().split()[1:]]
    imgs = {f"{SOURCE_SET}/{i}": tifffile.imread(d / "images" / f"{i}.tif") for i, s in rows if s == "test"}
    return {k: v for k, v in imgs.items() if v.ndim == 2}


def big_source(sources: dict[str, np.ndarray], want: str) -> tuple[str, np.ndarray]:
    key = f"{SOURCE_SET}/{want}"
    if key in sources:
        return key, sources[key]
    log(f"{key} not found: tiling sample_data/nuclei.tif instead")
    return "sample_data/nuclei.tif", tifffile.imread(SAMPLE / "nuclei.tif")


def write_zarr(path: Path, img: np.ndarray, size: int, chunk: int) -> None:
    """A size² zarr v3 array (chunks chunk²) of ``img`` mirror-tiled, written chunk by chunk."""
    import zarr

    arr = zarr.create_array(store=str(path), shape=(size, size), chunks=(chunk, chunk), dtype=img.dtype,
                            fill_value=0, overwrite=True)
    for y in range(0, size, chunk):
        for x in range(0, size, chunk):
            h, w = min(chunk, size - y), min(chunk, size - x)
            arr[y : y + h, x : x + w] = mirror_region(img, y, x, h, w)


def write_small(folder: Path, sources: dict[str, np.ndarray], n: int, s: int) -> list[str]:
    """n TIFFs of s² cut from the test images at seeded offsets (the images at least s² first; a smaller image is
    mirror-tiled); returns what each was cut from."""
    fits = [k for k, v in sources.items() if min(v.shape) >= s] or list(sources)
    rng, made, seen = np.random.default_rng(0), [], set()
    folder.mkdir(parents=True)
    for k in range(n):
        key = fits[k % len(fits)]
        img = sources[key]
        for _ in range(100):  # a crop not cut before, when the image leaves room for one
            y, x = (int(rng.integers(0, max(1, d - s + 1))) for d in img.shape)
            if (key, y, x) not in seen:
                break
        seen.add((key, y, x))
        tifffile.imwrite(folder / f"{k:03d}.tif", mirror_region(img, y, x, s, s), compression="zlib")
        made.append(f"{key} y={y} x={x}")
    return made


# ---- sections -----------------------------------------------------------------------------------------
def big_runs(args, work: Path, src: np.ndarray, commands: list[str]) -> dict:
    """Section 1: the size² zarr, one process then --workers 2; the outputs compared block by block."""
    import zarr

    big = work / "big.zarr"
    log(f"writing {args.size}² zarr (chunks {BIG_CHUNK}²)")
    write_zarr(big, src, args.size, BIG_CHUNK)
    runs = {"one process": measure(cli([big], work / "o1"), work / "o1.log", commands),
            "--workers 2": measure(cli([big], work / "o2", ["--workers", "2"]), work / "o2.log", commands)}
    a, b = zarr.open_array(str(work / "o1" / "big.zarr"), mode="r"), zarr.open_array(str(work / "o2" / "big.zarr"),
                                                                                      mode="r")
    n_diff, n_fg = diff_arrays(a, b, a.chunks[0])
    return {"runs": runs, "n_diff": n_diff, "fg": n_fg / args.size**2, "out_chunks": a.chunks,
            "in_bytes": folder_bytes(big), "out_bytes": folder_bytes(work / "o1" / "big.zarr")}


def bitwise(args, work: Path, src: np.ndarray, commands: list[str]) -> dict:
    """Section 2: the top-left crop as zarr through the CLI vs ``Segmenter.segment`` in this process."""
    import zarr

    from napari_fewcell.engine.prompt import PromptParams, Segmenter

    c = min(CROP, args.size)
    crop = mirror_region(src, 0, 0, c, c)  # = the big image's top-left c² (same mirror tiling)
    write_zarr(work / "crop.zarr", src, c, CROP_CHUNK)
    run = measure(cli([work / "crop.zarr"], work / "o3"), work / "o3.log", commands)
    p = json.loads((SAMPLE / "nuclei_prompt.json").read_text())
    seg = Segmenter(PromptParams(device="cpu"))
    prompt = seg.prepare_prompt(tifffile.imread(SAMPLE / p["image"]), tifffile.imread(SAMPLE / p["prompt_labels"]),
                                p["box"])
    ref, secs = timed(seg.segment, crop, prompt)
    out = zarr.open_array(str(work / "o3" / "crop.zarr"), mode="r")
    n_diff, n_fg = diff_arrays(out, ref, CROP_CHUNK)
    log(f"bit for bit {c}²: {n_diff} pixels differ (in memory {secs:.1f} s, path {prompt.path})")
    return {"size": c, "run": run, "n_diff": n_diff, "fg": n_fg / c**2, "secs": secs, "path": prompt.path,
            "chunks": out.chunks}


def throughput(args, work: Path, sources: dict[str, np.ndarray], commands: list[str]) -> dict:
    """Section 3: the folder of small images in each mode, and one image alone in each mode (start-up)."""
    folder = work / "small"
    made = write_small(folder, sources, args.n_small, args.small_size)
    first = sorted(folder.iterdir())[0]
    res = {}
    for k, (name, opts) in enumerate(MODES):
        one = measure(cli([first], work / f"t{k}_one", opts), work / f"t{k}_one.log", commands)
        many = measure(cli([folder], work / f"t{k}_all", opts), work / f"t{k}_all.log", commands)
        res[name] = (one, many)
    disk = folder_bytes(folder) + folder_bytes(work / "t0_all")
    return {"runs": res, "made": made, "bytes_per_px": disk / (args.n_small * args.small_size**2)}


def rates(args, tp: dict) -> dict:
    """Per mode: Mpx/s with and without start-up, seconds per image at the margin, start-up seconds."""
    n, mpx = args.n_small, args.small_size**2 / 1e6
    out = {}
    for name, (one, many) in tp["runs"].items():
        marg = (many.wall - one.wall) / (n - 1) if n > 1 else float("nan")
        out[name] = {"wall": many.wall, "one": one.wall, "rate": n * mpx / many.wall, "marg": marg,
                     "rate_ex": mpx / marg if marg > 0 else float("nan"), "startup": one.wall - marg,
                     "peak": max(one.peak, many.peak), "cpu": many.cpu}
    w1, w2 = out["--workers 1"], out["--workers 2"]
    eff = {"rate": w2["rate"] / (2 * w1["rate"]), "rate_ex": w2["rate_ex"] / (2 * w1["rate_ex"])}
    # the start-up subtraction is trusted only if every marginal time is positive and 2 workers on 2 cores do not
    # beat 2 × 1 worker (noise from a busy machine, or too few images, breaks both)
    sane = all(m["marg"] > 0 for m in out.values()) and eff["rate_ex"] <= 1.0
    return {"modes": out, "eff": eff, "overhead": w1["marg"] - out["single process"]["marg"], "sane": sane,
            "use": "rate_ex" if sane else "rate"}


# ---- report ---------------------------------------------------------------------------------------------
def gb(b: float) -> str:
    return f"{b / GB:.2f}"


def ok(b: float) -> str:
    return "yes" if b <= TARGET_GB * GB else "**no**"


def big_lines(args, big: dict, start: dict | None) -> list[str]:
    mpx = args.size**2 / 1e6
    out = ["| run | wall s | Mpx/s | Mpx/s excl. start-up¹ | process | CPU s | max RSS polled (GB) | VmHWM (GB) "
           f"| ≤ {TARGET_GB:g} GB |", "|---|---|---|---|---|---|---|---|---|"]
    for name, run in big["runs"].items():
        ex = (start or {}).get("single process" if name == "one process" else name)
        ex_rate = f"{mpx / (run.wall - ex):.2f}" if ex is not None and run.wall > ex else "–"
        for i, p in enumerate(sorted(run.procs, key=lambda p: p["label"])):
            lead = f"| {name} | {run.wall:.1f} | {mpx / run.wall:.2f} | {ex_rate} " if i == 0 else "| | | | "
            out.append(f"{lead}| {p['label']} | {p['cpu']:.1f} | {gb(p['rss'])} | {gb(p['hwm'])} "
                       f"| {ok(max(p['rss'], p['hwm']))} |")
        out.append(f"| | | | | **max of any process** | | | **{gb(run.peak)}** | **{ok(run.peak)}** |")
        out.append(f"| | | | | all processes together (CPU: sum; RSS: max of the sum) | {run.cpu:.1f} "
                   f"| {gb(run.tree_peak)} | | |")
    same = "yes" if big["n_diff"] == 0 else f"**no** ({big['n_diff']} pixels differ)" if big["n_diff"] > 0 \
        else "**no** (shapes differ)"
    return out + [
        "", f"- o1/big.zarr (one process) and o2/big.zarr (--workers 2) identical: **{same}** (compared chunk by "
        f"chunk); output chunks {big['out_chunks']}, so {(-(-args.size // big['out_chunks'][0])) ** 2} block(s) = "
        f"tasks for the workers; foreground {100 * big['fg']:.1f} % of the pixels.",
        f"- on disk: input {big['in_bytes'] / 1e6:.1f} MB, labels {big['out_bytes'] / 1e6:.1f} MB.",
        "- ¹ wall minus the start-up of the same mode measured in section 3 (one small image's run minus one "
        "image's marginal time); '–' when section 3 was skipped.",
        "- Peak RSS: 'max RSS polled' is the largest RSS seen in 0.2 s polls; VmHWM is the kernel's high-water mark of "
        "the process, read on each poll (so it misses only a peak in the last 0.2 s of a process's life). CPU s: "
        "user + system seconds of the process at its last poll; CPU s / wall s near the core count means the run "
        "had the cores, well below it means it waited (I/O, scheduling) or shared them with other jobs.",
    ]


def bitwise_lines(bw: dict) -> list[str]:
    c = bw["size"]
    same = "yes" if bw["n_diff"] == 0 else "**no**" if bw["n_diff"] > 0 else "**no** (shapes differ)"
    return [f"Top-left {c}×{c} of the big image (the same mirror tiling), written as zarr with chunks "
            f"{CROP_CHUNK}² (blocks of {bw['chunks'][0]}²), segmented by the CLI in one process, against "
            f"`Segmenter(PromptParams(device=\"cpu\")).segment(crop, prompt)` in this process (same prompt, defaults; "
            f"adapt path taken: {bw['path']}).", "",
            "| identical | differing pixels | foreground % | CLI wall s (incl. start-up) | in memory s |",
            "|---|---|---|---|---|",
            f"| **{same}** | {max(bw['n_diff'], 0)} of {c * c} | {100 * bw['fg']:.1f} | {bw['run'].wall:.1f} "
            f"| {bw['secs']:.1f} |"]


def throughput_lines(args, tp: dict, r: dict) -> list[str]:
    n, s = args.n_small, args.small_size
    out = [f"{n} images of {s}×{s} (uint8 TIFF, zlib) in one folder, `fewcell segment FOLDER`; one image alone "
           "in the same mode gives the start-up (torch import, model load, prompt adaptation; for a cluster "
           "also its start and each worker's model). Marginal = (wall(n) − wall(1)) / (n − 1).", "",
           "| mode | wall s (n images) | Mpx/s | wall s (1 image) | start-up s | marginal s / image "
           "| Mpx/s excl. start-up | CPU s (n images, all processes) | peak RSS of any process (GB) |",
           "|---|---|---|---|---|---|---|---|---|"]
    for name, m in r["modes"].items():
        out.append(f"| {name} | {m['wall']:.1f} | {m['rate']:.3f} | {m['one']:.1f} | {m['startup']:.1f} "
                   f"| {m['marg']:.3f} | {m['rate_ex']:.3f} | {m['cpu']:.1f} | {gb(m['peak'])} |")
    e = r["eff"]
    return out + [
        "", f"- scaling efficiency rate(2 workers) / (2 × rate(1 worker)): **{e['rate']:.2f}** with start-up, "
        f"**{e['rate_ex']:.2f}** excluding it."
        + ("" if r["sane"] else " **The figures excluding start-up are not usable in this run** (a marginal time "
           "≤ 0 or an efficiency above 1: run-to-run noise larger than the work of n − 1 images; more images, or a "
           "machine to itself, fix it); section 4 uses the rates with start-up."),
        f"- per-task overhead of the cluster ≈ marginal s/image (1 worker) − marginal s/image (single process) = "
        f"{r['overhead']:+.3f} s ({100 * r['overhead'] / r['modes']['single process']['marg']:+.0f} %; a negative "
        "value means the difference is below the run-to-run noise).",
        f"- input + output on disk: {tp['bytes_per_px']:.2f} bytes per pixel.",
        f"- images cut from: {'; '.join(tp['made'][:8])}{' …' if len(tp['made']) > 8 else ''}",
    ]


def estimate_lines(args, tp: dict, r: dict, big: dict | None) -> list[str]:
    w1, w2 = r["modes"]["--workers 1"], r["modes"]["--workers 2"]
    use = r["use"]
    eff = r["eff"][use]
    node = w1[use] * 16 * eff
    which = "excl. start-up" if use == "rate_ex" else "**with** start-up (the start-up subtraction was not usable)"
    peak_w = max((p["hwm"] for one_many in tp["runs"].values() for run in one_many for p in run.procs
                  if p["label"].startswith("worker")), default=0)
    if big is not None:
        peak_w = max([peak_w, *(p["hwm"] for p in big["runs"]["--workers 2"].procs if p["label"].startswith("worker"))])
    table = ["| efficiency from 2 to 16 cores (assumed) | Mpx/s | one 16384² image | 10,000 images of 512² |",
             "|---|---|---|---|"]
    for f in (1.0, 0.8, 0.6):
        table.append(f"| {f:.1f} | {node * f:.1f} | {16384**2 / 1e6 / (node * f):.0f} s "
                     f"| {1e4 * 0.262144 / (node * f) / 60:.0f} min |")
    o = r["overhead"]
    over = (f"≈ {o:+.3f} s here (1-worker cluster − single process), {100 * o / w1['marg']:.0f} % of a "
            f"{args.small_size}² image's time" if o > 0 else
            f"not resolved here ({o:+.3f} s: below the noise of this machine)")
    return [
        "**An estimate, not a measurement** (no 16-core machine was used).", "",
        f"- measured here ({which}): 1 worker {w1[use]:.3f} Mpx/s, 2 workers {w2[use]:.3f} Mpx/s, "
        f"efficiency {eff:.2f}.",
        f"- 16 workers ≈ per-worker rate × 16 × efficiency = {w1[use]:.3f} × 16 × {eff:.2f} "
        f"= **{node:.1f} Mpx/s** (= 8 × the 2-worker rate: this machine's 2 cores, scaled to 16 cores).",
        "- Read the efficiency with care: the 1-worker run already had both cores (its torch threads are set by "
        "the CLI's worker plugin to the cores per worker thread), so on 2 cores an efficiency near 0.5 only says "
        "that 2 workers get no more from 2 cores than 1 worker does; it does not measure how dask scales. How "
        "much of the per-core rate survives at 16 cores is an assumption:", "", *table, "",
        "- This assumes one worker per core with one torch thread each: what the CLI's worker plugin sets "
        "(`engine/batch/cluster.py`: on a LocalCluster, the cores ÷ its task threads; on a scheduler's workers, one "
        "per task thread, so start them one per core or with --nthreads = cores).",
        "- What limits it: **memory bandwidth** (every tile runs a convolutional network: 16 workers share the "
        "node's memory channels; not measured here, 2 cores cannot show it); **disk**: "
        f"{tp['bytes_per_px']:.2f} bytes per pixel in + out → {node * tp['bytes_per_px']:.1f} MB/s at {node:.1f} "
        "Mpx/s, small for a local disk, more of a concern on a network file system with many small files; "
        f"**scheduler overhead per task** {over} — a big image's blocks are larger tasks, so it weighs less there; "
        "**start-up**: each worker imports torch and builds the model once "
        f"(start-up here {w1['startup']:.0f} s with 1 worker, {w2['startup']:.0f} s with 2); **memory**: 16 workers × "
        f"{gb(peak_w)} GB (largest worker VmHWM here) = {16 * peak_w / GB:.0f} GB plus the client.",
    ]


def header(args, quick: bool, load0: tuple, source_key: str) -> list[str]:
    import torch

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO, capture_output=True,
                           text=True).stdout.strip()
    lines = report_header("napari-fewcell scale benchmark (issue 13)", quick)
    return lines + [
        f"- machine: {os.cpu_count()} cores (`os.cpu_count()`), RAM {psutil.virtual_memory().total / GB:.1f} GB; "
        f"torch threads {torch.get_num_threads()} (this process; the single-process CLI uses torch's default too; "
        "cluster workers set their own in the CLI's worker plugin, `engine/batch/cluster.py`)",
        f"- git commit {commit.stdout.strip() or '?'}{' (working tree with uncommitted changes)' if dirty else ''}",
        f"- run alone on the machine: **{'yes' if args.alone else 'no'}**; load average at start "
        f"{' / '.join(f'{v:.2f}' for v in load0)}, at end {' / '.join(f'{v:.2f}' for v in os.getloadavg())}",
        f"- prompt: sample_data/nuclei.tif, box {json.loads((SAMPLE / 'nuclei_prompt.json').read_text())['box']} "
        f"(sample_data/nuclei_prompt_labels.tif); big image and crop: {source_key} mirror-tiled",
        f"- wall time of the benchmark {elapsed():.0f} s; target: peak RSS ≤ {TARGET_GB:g} GB per process",
    ]


def report(args, res: dict, load0: tuple, commands: list[str], work: Path) -> list[str]:
    quick = args.size < 16384 or args.n_small < 100 or args.skip_big or args.skip_throughput
    rep = header(args, quick, load0, res["source"])
    r = rates(args, res["tp"]) if "tp" in res else None
    start = {k: m["startup"] for k, m in r["modes"].items()} if r else None
    if "big" in res:
        rep += ["", f"## 1. Big image: {args.size}×{args.size} zarr (chunks {BIG_CHUNK}²), block by block", "",
                *big_lines(args, res["big"], start)]
    if "bw" in res:
        rep += ["", "## 2. Block by block from zarr vs in memory, bit for bit", "", *bitwise_lines(res["bw"])]
    if r:
        rep += ["", "## 3. Throughput on small images", "", *throughput_lines(args, res["tp"], r), "",
                "## 4. What a 16-core node would give", "", *estimate_lines(args, res["tp"], r, res.get("big"))]
    rep += ["", f"## Commands (WORK = {work}{', removed after the run' if not args.keep else ''})", "", "```"]
    rep += [c.replace(str(work), "$WORK").replace(str(REPO) + "/", "") for c in commands]
    return rep + ["```", ""]


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="/work/shared/data", help="data root (falls back to sample_data/nuclei.tif)")
    ap.add_argument("--size", type=int, default=16384, help="edge of the big image (pixels)")
    ap.add_argument("--big-source", default="032", help=f"{SOURCE_SET} test image tiled into the big image")
    ap.add_argument("--n-small", type=int, default=100, help="small images for the throughput runs")
    ap.add_argument("--small-size", type=int, default=512, help="edge of the small images")
    ap.add_argument("--work", help="folder for the large files (a fresh sub-folder is made; default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    ap.add_argument("--out", default="benchmarks/results/scale.md")
    ap.add_argument("--alone", action="store_true", help="say in the report that nothing else ran on the machine")
    ap.add_argument("--skip-big", action="store_true", help="skip sections 1 and 2 (big image, bit for bit)")
    ap.add_argument("--skip-throughput", action="store_true", help="skip sections 3 and 4")
    args = ap.parse_args()
    if args.n_small < 2 and not args.skip_throughput:
        ap.error("--n-small must be at least 2 (one image alone gives the start-up)")
    return args


def main() -> None:
    args = parse_args()
    load0 = os.getloadavg()
    if args.work:
        Path(args.work).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="fewcell_scale_", dir=args.work))
    commands: list[str] = []
    res: dict = {}
    try:
        sources = test_images(Path(args.data)) or {"sample_data/nuclei.tif": tifffile.imread(SAMPLE / "nuclei.tif")}
        res["source"], src = big_source(sources, args.big_source)
        if not args.skip_big:
            log("1/3 big image")
            res["big"] = big_runs(args, work, src, commands)
            if not args.keep:
                shutil.rmtree(work / "big.zarr")  # the disk it takes, before the next runs
        if not args.skip_throughput:
            log("2/3 throughput")
            res["tp"] = throughput(args, work, sources, commands)
        if not args.skip_big:
            log("3/3 bit for bit (in memory in this process, last: it loads torch here)")
            res["bw"] = bitwise(args, work, src, commands)
        write_report(report(args, res, load0, commands, work), args.out)
        log(f"wrote {args.out} ({command_line()})")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
