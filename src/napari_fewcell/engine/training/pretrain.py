"""Pre-training the embedding network with a chosen strategy, resumable from checkpoints.

    run(pretrain_iter(PretrainParams(strategy="episodic", exclude=("isbi2012_membrane",)), "noisbi.pt"))

A strategy (:class:`.episodic.Episodic`, :class:`.reptile.Reptile`, :class:`.moco.MoCo`) owns its
optimiser and does one step at a time; this driver owns the network, the random generators, the
checkpoints and the weights file. A checkpoint (``OUT.ckpt`` unless named) is written atomically
at least every ``checkpoint_minutes`` and at the end; ``resume`` continues a run from one at the
step it holds, with the same random state, so a run can span several sessions of a few hours.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Generator

import numpy as np
import torch

from ..core import modelfile
from ..core.errors import FewcellError
from ..core.progress import Progress
from ..nets.unet import EmbedNet, NetConfig, load_model, save_weights
from .bank import load_any
from .episodic import Episodic
from .params import PretrainParams

#: parameters that must match between a checkpoint and the run resuming it
FIXED = ("strategy", "datasets", "dataset_weights", "exclude", "steps", "cpu_minutes", "base", "embed_dim", "tau",
         "seed")


def strategy_class(name: str):
    if name == "reptile":
        from .reptile import Reptile

        return Reptile
    if name == "moco":
        from .moco import MoCo

        return MoCo
    return Episodic


def checkpoint_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".ckpt")


def initial_model(p: PretrainParams) -> EmbedNet:
    config = NetConfig(base=p.base, embed_dim=p.embed_dim, tau=p.tau)
    model = load_model(p.init) if p.init else EmbedNet(config)
    if model.config != config:
        raise FewcellError(f"{p.init} has another network layout than the one asked for; drop --init or match it.")
    return model


def read_checkpoint(path: str | Path, p: PretrainParams) -> dict:
    """A checkpoint's state, checked to belong to a run with the same fixed parameters as ``p``."""
    state = modelfile.read(path, modelfile.CHECKPOINT)
    theirs = state.get("params", {})
    ours = p.as_card()
    differ = [k for k in FIXED if theirs.get(k) != ours.get(k)]
    if differ:
        values = ", ".join(f"{k}={theirs.get(k)}" for k in differ)
        raise FewcellError(f"{path} is a checkpoint of a run with other settings ({values}); resume with the same "
                           "settings, or start a new run without --resume.")
    return state


class Checkpointer:
    """Writes the run's state atomically to ``path`` when ``every`` seconds have passed (and when asked)."""

    def __init__(self, path: Path, every_minutes: float):
        self.path, self.every, self.last = Path(path), every_minutes * 60, time.time()

    def due(self) -> bool:
        return time.time() - self.last >= self.every

    def save(self, state: dict) -> None:
        modelfile.save(self.path, modelfile.CHECKPOINT, state)
        self.last = time.time()


class Clock:
    """CPU time (all threads) and wall time of the training loop only (not of reading the data), over resumes."""

    def __init__(self, cpu: float = 0.0, loop: float = 0.0):
        self.c0, self.t0, self.cpu0, self.loop0 = time.process_time(), time.time(), cpu, loop

    def cpu(self) -> float:
        return self.cpu0 + time.process_time() - self.c0

    def loop(self) -> float:
        return self.loop0 + time.time() - self.t0


def restore(state: dict | None, resume, model: EmbedNet, strategy, rng: np.random.Generator,
            gen: torch.Generator) -> tuple[int, float, float, float, list, list]:
    """Load a checkpoint's state into the run (nothing for a new run); returns where the run stands: (step, wall
    seconds, CPU seconds, training-loop seconds, loss history, the steps it was resumed at)."""
    if state is None:
        return 0, 0.0, 0.0, 0.0, [], []
    modelfile.build(resume, modelfile.CHECKPOINT, lambda: (model.load_state_dict(state["model"]),
                                                           strategy.load_state_dict(state["strategy"])))
    rng.bit_generator.state = state["numpy_rng"]
    gen.set_state(state["torch_gen"])
    torch.set_rng_state(state["torch_rng"])
    start = int(state["step"])
    return (start, float(state["elapsed"]), float(state.get("cpu_seconds", 0.0)),
            float(state.get("train_seconds", 0.0)), list(state.get("history", [])),
            [*state.get("resumes", []), start])


def pretrain_iter(p: PretrainParams, out: str | Path, resume: str | Path | None = None,
                  checkpoint: str | Path | None = None) -> Generator[Progress, None, EmbedNet]:
    """Train (or continue training) and save the embedding network; yields Progress after every step.

    Closing the generator (a Cancel, or the CLI's SIGTERM handler) writes a checkpoint of the last finished
    step before it stops, so ``resume`` loses nothing."""
    p.check()
    t0 = time.time()
    if p.threads:
        torch.set_num_threads(p.threads)
    state = read_checkpoint(resume, p) if resume else None  # a bad checkpoint fails before any data is read
    tasks = load_any(p.data, p.datasets, p.exclude)
    torch.manual_seed(p.seed)
    gen = torch.Generator().manual_seed(p.seed)
    rng = np.random.default_rng(p.seed)
    model = initial_model(p)
    strategy = strategy_class(p.strategy)(model, tasks, p, rng, gen)
    start, elapsed, cpu, trained, history, resumes = restore(state, resume, model, strategy, rng, gen)
    ckpt = Checkpointer(checkpoint or checkpoint_path(out), p.checkpoint_minutes)

    cpu_used, wall_used = (clock := Clock(cpu, trained)).cpu, clock.loop

    def snapshot(step: int) -> dict:
        return {"params": p.as_card(), "step": step, "elapsed": elapsed + time.time() - t0, "history": history,
                "cpu_seconds": cpu_used(), "train_seconds": wall_used(),
                "resumes": resumes, "model": modelfile.state_dict(model), "strategy": strategy.state_dict(),
                "numpy_rng": rng.bit_generator.state, "torch_gen": gen.get_state(), "torch_rng": torch.get_rng_state()}

    running: dict[str, float] = {}
    done = start
    budget, wall = p.cpu_minutes * 60, p.wall_minutes * 60
    yield Progress(start, p.steps, f"{p.strategy}: from step {start}" if start else f"{p.strategy}: starting")
    try:
        for step in range(start, p.steps):
            if (budget and cpu_used() >= budget) or (wall and wall_used() >= wall):  # a budget is spent:
                break  # ``done`` steps is where the run ends
            strategy.progress = max(step / p.steps, wall_used() / wall if wall else 0.0)
            losses = strategy.step()
            done = step + 1
            running = {k: v if k not in running else 0.98 * running[k] + 0.02 * v for k, v in losses.items()}
            if done % 10 == 0 or done == p.steps:
                history.append({"step": done, **{k: round(v, 5) for k, v in running.items()}})
            if ckpt.due() and done < p.steps:
                ckpt.save(snapshot(done))
            # a yield after every step: a stop request (Cancel, SIGTERM in the CLI) lands between two steps
            yield Progress(done, p.steps, " ".join(f"{k} {v:.4f}" for k, v in running.items()))
    except GeneratorExit:  # stopped between two steps: keep everything done so far
        ckpt.save(snapshot(done))
        raise
    if done < p.steps:
        history.append({"step": done, **{k: round(v, 5) for k, v in running.items()}})
        what = f"CPU budget of {p.cpu_minutes:g}" if budget and cpu_used() >= budget else \
            f"wall-time budget of {p.wall_minutes:g}"
        yield Progress(p.steps, p.steps, f"{what} min spent after {done} steps")
    ckpt.save(snapshot(done))
    model.eval()
    spent = {"wall_seconds": round(elapsed + time.time() - t0, 1), "cpu_seconds": round(cpu_used(), 1),
             "train_seconds": round(wall_used(), 1), "steps_done": done, "resumed_at_steps": resumes}
    save_weights(model, out, weights_card(p, model, tasks, running, spent))
    return model


def weights_card(p: PretrainParams, model: EmbedNet, tasks, running: dict, spent: dict) -> dict:
    """The card saved in the weights file: recipe, images trained on, final losses, time spent."""
    return {
        "init_card": getattr(model, "card", None) if p.init else None,
        "strategy": p.strategy,
        "params": p.as_card(),
        "training_images": {t.name: list(dict.fromkeys(t.ids)) for t in tasks},  # a crop bank repeats an id
        "excluded": list(p.exclude),
        "final_loss": running.get("loss"),
        "final_losses": running,
        **spent,
        "torch": str(torch.__version__),
        "threads": torch.get_num_threads(),
        "device": torch.cuda.get_device_name() if str(p.device) != "cpu" and torch.cuda.is_available() else "cpu",
    }


def describe(p: PretrainParams) -> str:
    """One line for logs: the strategy and what it trains on."""
    excluded = f", without {', '.join(p.exclude)}" if p.exclude else ""
    return f"{p.strategy} on {', '.join(p.datasets)}{excluded}, {p.steps} steps"

